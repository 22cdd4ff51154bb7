"""Content-keyed stage cache for local runs (kfp.local has no caching, and KFP's server-side cache keys on
artifact URIs, which change every run): a stage is skipped when the hash of its inputs, its recipe sections and
its code is unchanged and a completed output for that hash exists.

Layout: <root>/<stage>/<key>/ is the stage's work dir (training checkpoints survive a kill there, so a rerun
resumes), and <root>/<stage>/<key>.done.json marks it complete and stores the stage's result.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from qwenflow.artifacts import atomic_write_text, sha256_path

ENV_ROOT = "QWENFLOW_STAGE_CACHE"
ENV_FORCE = "QWENFLOW_FORCE_STAGES"
DIGEST_FILE = ".qwenflow_digest"  # hidden: sha256_path skips it, so it never changes the content it describes
CACHE_VERSION = "1"


def cache_root() -> Path | None:
    root = os.environ.get(ENV_ROOT)
    return Path(root) if root else None


def forced(stage: str) -> bool:
    names = {s.strip() for s in os.environ.get(ENV_FORCE, "").split(",") if s.strip()}
    return stage in names or "all" in names


def content_digest(path: str | Path) -> str:
    """sha256 of an artifact; reuses the digest its producer stored beside it (outputs here are immutable)."""
    path = Path(path)
    stored = path / DIGEST_FILE
    if stored.is_file():
        return stored.read_text(encoding="utf-8").strip()
    if path.exists():
        return sha256_path(path)
    return f"value:{path}"  # a parameter such as a models:/ URI or a Bento tag: the value is the content


def code_version(packages: tuple[str, ...]) -> str:
    """Hash of the source of the packages/modules a stage runs, plus this table: edit the code, rerun the stage."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    files: list[Path] = [Path(__file__).with_name("stages.py"), Path(__file__).parents[1] / "stages.py"]
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            h.update(f"missing:{name}".encode())
            continue
        origin = Path(spec.origin)
        files += sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def stage_key(stage, recipe, inputs: dict[str, str | None]) -> str:
    sections = {}
    for name in stage.sections:
        value = getattr(recipe, name).model_dump(mode="json")
        if isinstance(value, dict):  # where it runs and whether it is on do not change what it produces
            value = {k: v for k, v in value.items() if k not in ("resources", "enabled")}
        sections[name] = value
    doc = {
        "stage": stage.name,
        "sections": sections,
        "inputs": {k: (content_digest(v) if v else None) for k, v in sorted(inputs.items())},
        "code": code_version(stage.code),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


class StageCache:
    def __init__(self, root: Path, stage: str, key: str):
        self.dir = root / stage / key
        self.marker = root / stage / f"{key}.done.json"

    def lookup(self) -> dict | None:
        if self.marker.is_file() and self.dir.is_dir():
            return json.loads(self.marker.read_text(encoding="utf-8"))
        return None

    def prepare(self, keep_partial: bool) -> Path:
        """The work dir for a run: kept when the stage resumes from checkpoints, emptied otherwise."""
        if self.dir.exists() and not keep_partial:
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.marker.unlink(missing_ok=True)
        return self.dir

    def commit(self, result) -> None:
        atomic_write_text(self.dir / DIGEST_FILE, sha256_path(self.dir))
        atomic_write_text(self.marker, json.dumps({"result": result}, default=str))


def link_tree(src: str | Path, dst: str | Path) -> None:
    """Make dst a copy of src using hard links (free and instant on one filesystem), else real copies."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()

    def _link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=_link, ignore=shutil.ignore_patterns("checkpoints"))
