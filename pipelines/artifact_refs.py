"""Large artifacts by reference on the cluster: a stage writes its model or datasets to the shared PVC and its KFP
output artifact holds only a small reference file, so the KFP artifact store never receives a copy of the weights
per stage (a 7B model is ~15 GB) and the next stage reads the PVC directly. Local runs (no PVC) keep the
directory in the artifact itself.

The cluster is recognised by QWENFLOW_PVC_MOUNT, which pipelines/kubernetes.py sets on every step."""

from __future__ import annotations

import json
import os
from pathlib import Path

REF_FILE = "qwenflow_ref.json"
MOUNT_ENV = "QWENFLOW_PVC_MOUNT"


def output_dir(artifact, stage: str, kfp_run_id: str) -> str:
    """Where `stage` writes the directory behind `artifact` (a KFP Output[Model]/Output[Dataset])."""
    mount = os.environ.get(MOUNT_ENV)
    if not mount:
        return artifact.path
    target = Path(mount) / "artifacts" / (kfp_run_id or "no-run-id") / stage / artifact.name
    target.parent.mkdir(parents=True, exist_ok=True)
    ref = Path(artifact.path)
    ref.mkdir(parents=True, exist_ok=True)
    (ref / REF_FILE).write_text(json.dumps({"path": str(target), "stage": stage}), encoding="utf-8")
    artifact.metadata["path"] = str(target)  # shown in the KFP UI beside the artifact
    return str(target)


def input_dir(artifact) -> str:
    """The directory an input artifact stands for: the referenced PVC path, or the artifact's own path."""
    ref = Path(artifact.path) / REF_FILE
    if ref.is_file():
        target = json.loads(ref.read_text(encoding="utf-8"))["path"]
        if not Path(target).exists():
            raise FileNotFoundError(
                f"{artifact.name}: the referenced directory {target} is not on this pod's shared "
                f"volume; mount the same PVC at {Path(target).parents[3]}"
            )
        return target
    return artifact.path
