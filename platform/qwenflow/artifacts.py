"""Self-describing artifacts: hashes, dataset manifests, model directories with their recipe and lineage."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
RECIPE_FILE = "qwenflow_recipe.yaml"
LINEAGE_FILE = "qwenflow_lineage.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    """Hash of a file, or of a directory's files (relative names + contents, sorted) so it is stable across machines."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith("checkpoints/") or "/." in f"/{rel}" or "/checkpoint-" in f"/{rel}":
            continue  # checkpoints (the engine's checkpoints/, the trainers' checkpoint-N/) and hidden files are not
            # part of the artifact
        h.update(rel.encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(directory: str | Path, **fields: Any) -> dict:
    """manifest.json beside a dataset's Parquet files: rows, tokens, sha256 of each file, schema, and whatever else."""
    directory = Path(directory)
    files = {p.name: sha256_file(p) for p in sorted(directory.glob("*.parquet"))}
    manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files, **fields}
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {MANIFEST}; is this a dataset produced by `qwenflow data prepare`?")
    return json.loads(path.read_text(encoding="utf-8"))


def read_lineage(model_dir: str | Path) -> dict:
    path = Path(model_dir) / LINEAGE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
