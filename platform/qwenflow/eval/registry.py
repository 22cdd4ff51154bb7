"""The MLflow model registry: register an evaluated model as `challenger`, promote it to `champion` with evidence.

The model is logged as an MLflow pyfunc ChatModel (qwenflow.tracking.chat_model) whose artifact is the
save_pretrained directory; the version carries the directory's sha256
(qwenflow.artifacts.sha256_path, tag `sha256`, checked by the serving side before it serves), each file's sha256,
the evaluation metrics and the lineage, so a served model can be traced back to its data and its scores.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from qwenflow import tracking
from qwenflow.artifacts import read_lineage, sha256_file, sha256_path
from qwenflow.tracking.model_source import SHA256_TAG
from qwenflow.tracking.stage_report import log_chat_model

CHALLENGER, CHAMPION = "challenger", "champion"
_TAG_LIMIT = 5000  # MLflow tag values are bounded; long JSON is cut, the full copy is an artifact


def _client():
    return tracking.client()


def _files(model_dir: Path) -> list[Path]:
    """The files sha256_path hashes (no checkpoints/, no hidden files): exactly what is uploaded."""
    out = []
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = f.relative_to(model_dir).as_posix()
        if not (rel.startswith("checkpoints/") or "/." in f"/{rel}"):
            out.append(f)
    return out


def _tag(value) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return s if len(s) <= _TAG_LIMIT else s[: _TAG_LIMIT - 20] + "...(truncated)"


def register_model(
    model_dir: str | Path, name: str, report: dict, *, gate=None, experiment: str = "qwenflow", alias: str = CHALLENGER
) -> str:
    """Log the model directory as an MLflow pyfunc chat model (qwenflow.tracking.chat_model: signature and input
    example included), register a version with hashes and evidence, alias it; returns the version.

    The registration run nests under the pipeline's parent run when there is one (qwenflow.tracking.stage_run)."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    from qwenflow.tracking.chat_model import HF_ARTIFACT

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a model directory (no config.json)")
    _client()
    digest = sha256_path(model_dir)
    if report.get("model", {}).get("sha256") not in (None, digest):
        raise ValueError(
            f"the report evaluated a model with sha256 {report['model']['sha256'][:12]}..., but "
            f"{model_dir} hashes to {digest[:12]}...: evaluate this directory before registering it"
        )
    files = {f.relative_to(model_dir).as_posix(): sha256_file(f) for f in _files(model_dir)}
    try:
        lineage = read_lineage(model_dir)
    except Exception:  # any HF directory is accepted; lineage is best-effort
        lineage = {}
    with (
        tracking.stage_run(
            "register", experiment=experiment, params={"model_sha256": digest, "model_dir": str(model_dir.resolve())}
        ),
        tempfile.TemporaryDirectory(prefix="qwenflow-register-") as tmp,
    ):
        staged = Path(tmp) / HF_ARTIFACT  # exactly the hashed files (no checkpoints/, no hidden files)
        for f in _files(model_dir):
            (staged / f.relative_to(model_dir)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, staged / f.relative_to(model_dir))
        model_uri = log_chat_model(None, staged, metadata={"qwenflow.sha256": digest}, tags={"qwenflow.sha256": digest})
        mlflow.log_dict(report, "eval/report.json")
        mlflow.log_dict(files, "model_files_sha256.json")
        metrics = {k: float(v) for k, v in report.get("metrics", {}).items() if isinstance(v, (int, float))}
        if metrics:
            mlflow.log_metrics({_metric_key(k): v for k, v in metrics.items()})
    tags = {
        SHA256_TAG: digest,
        "qwenflow.files_sha256": _tag(files),
        "qwenflow.metrics": _tag(report.get("metrics", {})),
        "qwenflow.eval_suite": str(report.get("suite")),
        "qwenflow.eval_run_id": str(report.get("mlflow_run_id", "")),
        "qwenflow.lineage": _tag(lineage),
        "qwenflow.registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if gate is not None:
        tags["qwenflow.gate"] = _tag(gate.to_dict() if hasattr(gate, "to_dict") else gate)
    mv = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=60)
    client = _client()
    client.update_registered_model(
        name,
        description="qwenflow chat model (pyfunc ChatModel); aliases: challenger (passed gates), champion (served)",
    )
    _wait_ready(client, name, mv.version)
    client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def _metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces; report keys may carry others."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def _wait_ready(client, name: str, version: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.get_model_version(name, version).status == "READY":
            return
        time.sleep(0.5)


def version_by_alias(name: str, alias: str):
    """The ModelVersion behind name@alias, or None when the alias is not set (or the model does not exist)."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_metrics(name: str) -> dict | None:
    """The current champion's metrics (the no-regression baseline), or None when there is no champion yet."""
    mv = version_by_alias(name, CHAMPION)
    if mv is None:
        return None
    raw = (mv.tags or {}).get("qwenflow.metrics")
    try:
        return {"metrics": json.loads(raw)} if raw else {"metrics": {}}
    except json.JSONDecodeError:
        raise ValueError(
            f"{name}@champion (version {mv.version}): its qwenflow.metrics tag was truncated or edited; "
            "compare against a report file with --baseline instead"
        ) from None


def promote(name: str, version: str | None = None, *, reason: str = "", report: dict | None = None) -> dict:
    """Move `champion` to `version` (default: the current challenger) and record the evidence as tags."""
    client = _client()
    if version is None:
        mv = version_by_alias(name, CHALLENGER)
        if mv is None:
            raise ValueError(
                f"{name}: no version has the alias {CHALLENGER!r}; register one that passed its gates "
                "(qwenflow eval register) or name a version with --version"
            )
        version = str(mv.version)
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException:
        raise ValueError(f"{name} version {version}: not in the registry") from None
    previous = version_by_alias(name, CHAMPION)
    try:
        gate = json.loads((mv.tags or {}).get("qwenflow.gate") or "{}")
    except json.JSONDecodeError:
        gate = {}
    if gate and not gate.get("passed", False):
        raise ValueError(
            f"{name} version {version} failed its gates at registration ({'; '.join(gate.get('reasons', []))}); "
            "refusing to promote it"
        )
    evidence = {
        "qwenflow.promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "qwenflow.promoted_from": f"version {previous.version}" if previous else "none (first champion)",
        "qwenflow.promotion_reason": reason or "passed the recipe's gates",
        "qwenflow.evidence.report": _tag(report.get("metrics", {}))
        if report
        else (mv.tags or {}).get("qwenflow.metrics", ""),
        "qwenflow.evidence.lineage": (mv.tags or {}).get("qwenflow.lineage", ""),
        "qwenflow.evidence.eval_run_id": (mv.tags or {}).get("qwenflow.eval_run_id", ""),
    }
    for k, v in evidence.items():
        client.set_model_version_tag(name, version, k, v)
    client.set_registered_model_alias(name, CHAMPION, version)
    return {"name": name, "version": version, "previous": previous.version if previous else None, **evidence}
