"""Where a model comes from, in one place (`resolve`): a local save_pretrained directory, or an MLflow URI
(`models:/NAME@ALIAS|VERSION`, `runs:/`, `mlflow-artifacts:/`) downloaded once per machine and checked against the
sha256 recorded at registration (a mismatch is refused). Training, evaluation, the stage runner, the Bento build,
`qwenflow deploy serve` and the server all resolve through it. No torch import: the CLI checks a source before it
loads anything."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qwenflow import dist, tracking
from qwenflow.artifacts import sha256_path

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

SHA256_TAG = "sha256"  # model-version tag: the registered directory's qwenflow.artifacts.sha256_path
REGISTRY_PREFIX = "models:/"
MLFLOW_PREFIXES = (REGISTRY_PREFIX, "runs:/", "mlflow-artifacts:/")
RUN_SHA256_TAG = "qwenflow.model_sha256"  # run tag: the hash of the model a run logged (checked for runs:/ URIs)
VERIFIED = ".qwenflow_verified"  # in a download directory: the pinned URI and the verified model directory


class ModelIntegrityError(ValueError):
    """The downloaded model does not hash to what the registry recorded: refuse to serve it."""


class ModelNotFoundError(FileNotFoundError):
    """Not a model directory (no config.json), or a download that holds none."""


def is_registry_uri(source: str) -> bool:
    return str(source).startswith(REGISTRY_PREFIX)


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/NAME@ALIAS or models:/NAME/VERSION -> (name, alias, version)."""
    rest = uri[len(REGISTRY_PREFIX) :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, version
    raise ValueError(
        f"{uri!r} is not a registry URI; use models:/NAME@ALIAS (e.g. models:/qwenflow-tiny@champion) "
        "or models:/NAME/VERSION"
    )


def model_version(uri: str) -> ModelVersion:
    """The MLflow ModelVersion a registry URI points at (clear error when the name/alias/version is unknown)."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_registry_uri(uri)
    client = tracking.client()
    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as e:
        raise ValueError(
            f"{uri}: not found in the MLflow registry at {client._registry_uri} "
            f"({e.message.splitlines()[0]}); check the name and alias with `mlflow models` "
            "or the MLflow UI"
        ) from None


def fetch_registered_model(uri: str, dest: str | Path | None = None) -> tuple[Path, ModelVersion]:
    """Download a registered model and verify its sha256 against the version's tag before anyone serves it."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    mv = model_version(uri)
    expected = (mv.tags or {}).get(SHA256_TAG)
    if not expected:
        raise ModelIntegrityError(
            f"{uri} (version {mv.version}) has no {SHA256_TAG!r} tag; register it with "
            "`qwenflow eval register` so its artifact hash is recorded"
        )
    dest = Path(dest or tempfile.mkdtemp(prefix="qwenflow-model-"))
    dest.mkdir(parents=True, exist_ok=True)
    local = hf_dir(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dest)))
    got = sha256_path(local)
    if got != expected:
        raise ModelIntegrityError(
            f"{uri} (version {mv.version}): downloaded files hash to {got}, the registry "
            f"recorded {expected}; the artifact was changed after registration, refusing to serve"
        )
    return local, mv


def hf_dir(downloaded: str | Path) -> Path:
    """The save_pretrained directory inside a downloaded registry version (its sha256 is the version's tag): a pyfunc
    chat model holds it under artifacts/."""
    from qwenflow.tracking.chat_model import HF_ARTIFACT  # imports mlflow (3.7 s): only when a download needs it

    downloaded = Path(downloaded)
    inner = downloaded / "artifacts" / HF_ARTIFACT
    return inner if (downloaded / "MLmodel").is_file() and inner.is_dir() else downloaded


def resolve(source: str | Path, dest: str | Path | None = None) -> Path:
    """A local model directory for `source`: a directory as is (it must hold a config.json), an MLflow URI
    downloaded into `dest` (default: under QWENFLOW_HOME/models) and verified, once per machine."""
    s = str(source)
    if s.startswith(MLFLOW_PREFIXES):
        return _download(s, dest)
    path = Path(s)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path}: not a model directory (no config.json); pass a save_pretrained directory or "
            "a registry URI like models:/qwenflow-tiny@champion"
        )
    return path


def _pinned(uri: str) -> str:
    """An alias read as the version it points at now, so a download is reused only while the alias has not moved."""
    if is_registry_uri(uri) and parse_registry_uri(uri)[1]:
        mv = model_version(uri)
        return f"{REGISTRY_PREFIX}{mv.name}/{mv.version}"
    return uri


def _download(uri: str, dest: str | Path | None) -> Path:
    """Local rank 0 downloads and verifies; the other ranks on the node wait for its marker file (no collective)."""
    pinned = _pinned(uri)
    if dest is None:
        dest = tracking.qwenflow_home() / "models" / pinned.replace(":/", "_").replace("/", "_").replace("@", "_")
    marker = Path(dest) / VERIFIED

    def verified() -> Path | None:
        done = json.loads(marker.read_text()) if marker.is_file() else {}
        return Path(done["path"]) if done.get("uri") == pinned and Path(done["path"]).is_dir() else None

    if dist.local_rank() == 0:
        if (local := verified()) is None:
            local = _fetch_verified(pinned, Path(dest))
            marker.write_text(json.dumps({"uri": pinned, "path": str(local)}))
        return local
    for _ in range(24 * 3600):
        if (local := verified()) is not None:
            return local
        time.sleep(1)
    raise TimeoutError(f"{uri}: local rank 0 did not finish downloading it into {dest}")


def _fetch_verified(uri: str, dest: Path) -> Path:
    """Download `uri` into `dest` and check it: a registry version against its sha256 tag, a run's files against the
    run's model hash when it recorded one."""
    import mlflow  # 3.7 s to import: only when a model is downloaded

    if is_registry_uri(uri):
        return fetch_registered_model(uri, dest)[0]
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    configs = sorted(local.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise ModelNotFoundError(
            f"{uri}: downloaded to {local} but it holds no config.json; is it a transformers model?"
        )
    model_dir = configs[0].parent
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
        expected = tracking.client().get_run(run_id).data.tags.get(RUN_SHA256_TAG)
        if expected and sha256_path(model_dir) != expected:
            raise ModelIntegrityError(
                f"{uri}: downloaded files do not hash to the run's {RUN_SHA256_TAG} tag "
                f"({expected}); refusing to use a changed artifact"
            )
    return model_dir
