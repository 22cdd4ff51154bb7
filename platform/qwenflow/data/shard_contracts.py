"""Great Expectations contracts per Parquet shard, aggregated into one result, so validation scales with the data.

Each shard is checked by the dataset kind's own contract (contracts.validate_dataset) over a one-shard view of the
directory (a hard link and that shard's lines of the manifest), in parallel: Ray tasks with engine="ray", else one
after another. The aggregate is every shard's checks (named by shard) plus what only the whole can show: every shard
the manifest lists is there and was checked, and the rows add up to the manifest's split totals.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from qwenflow.artifacts import MANIFEST, read_manifest

from .contracts import ValidationResult, _check, _finish, validate_dataset


def _shard_view(directory: Path, shard: str, manifest: dict, view: Path) -> None:
    try:
        os.link(directory / shard, view / shard)
    except OSError:  # another file system: a link to it reads the same bytes
        os.symlink(directory / shard, view / shard)
    one = {
        **manifest,
        "files": {shard: manifest.get("files", {}).get(shard)},
        "rows": {Path(shard).stem: (manifest.get("rows") or {}).get(Path(shard).stem)},
    }
    one.pop("splits", None)  # split totals are the aggregate's to check
    (view / MANIFEST).write_text(json.dumps(one), encoding="utf-8")


def validate_shard(kind: str, directory: str, shard: str, manifest: dict) -> dict:
    """One shard's contract result (a dict, so it travels from a Ray task)."""
    parent = directory if os.access(directory, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=".shard-", dir=parent) as view:
        _shard_view(Path(directory), shard, manifest, Path(view))
        res = validate_dataset(kind, view, None, raise_on_failure=False)
    return {"rows": res.rows, "checks": [{**c, "file": shard} for c in res.checks], "success": res.success}


def validate_sharded(
    kind: str,
    directory: str | Path,
    report_dir: str | Path | None = None,
    *,
    engine: str = "local",
    workers: int = 0,
    raise_on_failure: bool = True,
) -> ValidationResult:
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = sorted(manifest.get("files") or {})
    present = sorted(p.name for p in directory.glob("*.parquet"))
    if engine == "ray":
        # lazy: 6 ms to import, needed only here
        from .ray_runtime import ray_session

        with ray_session(workers) as ray:
            task = ray.remote(validate_shard)
            parts = ray.get([task.remote(kind, str(directory), s, manifest) for s in listed if s in present])
    else:
        parts = [validate_shard(kind, str(directory), s, manifest) for s in listed if s in present]
    result = ValidationResult(kind=kind, directory=str(directory), success=True)
    for p in parts:
        result.rows.update(p["rows"])
        result.checks += p["checks"]
    missing, unlisted = sorted(set(listed) - set(present)), sorted(set(present) - set(listed))
    result.checks.append(
        _check(
            "",
            "expect_every_listed_shard_to_exist",
            "",
            not missing and not unlisted,
            len(present),
            observed=f"missing {missing}, not in the manifest {unlisted}",
        )
    )
    for split, info in (manifest.get("splits") or {}).items():
        got = sum(n for f, n in result.rows.items() if f.startswith(f"{split}-"))
        result.checks.append(
            _check(
                split,
                "expect_shard_rows_to_sum_to_split_rows",
                "",
                got == info.get("rows"),
                got,
                observed=f"{got} rows in {split} shards, manifest says {info.get('rows')}",
            )
        )
    return _finish(result, report_dir, raise_on_failure)
