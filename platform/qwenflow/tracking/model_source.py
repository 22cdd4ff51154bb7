"""Where a served model comes from: a local directory, or an MLflow registry URI checked against its sha256 tag."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qwenflow import tracking
from qwenflow.artifacts import sha256_path

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

SHA256_TAG = "sha256"  # model-version tag: the registered directory's qwenflow.artifacts.sha256_path
REGISTRY_PREFIX = "models:/"


class ModelIntegrityError(ValueError):
    """The downloaded model does not hash to what the registry recorded: refuse to serve it."""


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


def resolve_model(source: str | Path, dest: str | Path | None = None) -> Path:
    """A local model directory for `source` (a directory, or a verified download of a registry URI)."""
    if is_registry_uri(str(source)):
        return fetch_registered_model(str(source), dest)[0]
    path = Path(source)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: not a model directory (no config.json); pass a save_pretrained directory "
            "or a registry URI like models:/qwenflow-tiny@champion"
        )
    return path
