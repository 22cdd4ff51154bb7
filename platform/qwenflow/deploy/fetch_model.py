"""`python -m qwenflow.deploy.fetch_model`: the vLLM pod's init container. Downloads a registered model and
verifies its sha256 against the registry's tag (qwenflow.tracking.model_source), or checks a PVC copy against an
expected sha256, so vLLM (which checks nothing) only ever loads the exact weights that were evaluated."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from qwenflow.artifacts import sha256_path


def fetch(source: str, dest: str, sha256: str = "") -> Path:
    # lazy: 376 ms to import, needed only here
    from qwenflow.tracking.model_source import ModelIntegrityError, fetch_registered_model, is_registry_uri

    if is_registry_uri(source):
        staging = Path(dest).with_name(Path(dest).name + ".download")
        shutil.rmtree(staging, ignore_errors=True)
        local, mv = fetch_registered_model(source, staging)  # raises unless the hash matches the version's tag
        if sha256 and sha256 != (mv.tags or {}).get("sha256"):
            raise ModelIntegrityError(
                f"{source} is version {mv.version} with sha256 {(mv.tags or {}).get('sha256')}, not the pinned {sha256}"
            )
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(local), dest)
        shutil.rmtree(staging, ignore_errors=True)
        return Path(dest)
    path = Path(source)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model directory (no config.json)")
    if sha256 and sha256_path(path) != sha256:
        raise ModelIntegrityError(f"{path} hashes to {sha256_path(path)}, expected {sha256}; refusing to serve it")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a model directory")
    p.add_argument("--dest", required=True, help="directory vLLM loads (a registry download is moved here)")
    p.add_argument("--sha256", default="", help="expected qwenflow sha256 of the model directory")
    args = p.parse_args(argv)
    try:
        path = fetch(args.source, args.dest, args.sha256)
    except (ValueError, FileNotFoundError) as e:
        print(f"fetch-model: {e}", file=sys.stderr)
        return 1
    print(f"fetch-model: {args.source} verified at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
