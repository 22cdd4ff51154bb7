"""One reader of a prepared dataset file into pandas, for the stages and evaluations that read them: a missing file or
column is refused with a specific error, and Parquet list<struct> cells (conversations) come back as plain lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from .schemas import DATASETS


class DataError(ValueError):
    """A dataset is missing, has the wrong columns, or holds malformed conversations."""


def plain(v: Any) -> Any:
    """Parquet list<struct> cells come back as numpy arrays of dicts: make them plain lists."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def read_frame(
    path: str | Path, kind: str, columns: Sequence[str] | None = None, *, only: bool = False
) -> pd.DataFrame:
    """`path`, a file of a `kind` dataset (qwenflow.data.schemas.DATASETS), that must hold `columns` (default: what a
    stage reads of that kind). only=True reads just those columns (a corpus's other columns are as large as its
    text)."""
    path = Path(path)
    cols = list(DATASETS[kind].needs if columns is None else columns)
    if not path.is_file():
        raise DataError(f"{path}: missing; a {kind} dataset is produced by `qwenflow data prepare` (docs/stages.md)")
    found = [c for c in pq.read_schema(path).names if not c.startswith("__index_level_")]  # pandas' saved index
    missing = [c for c in cols if c not in found]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {found}; a {kind} dataset needs {cols} (docs/stages.md)"
        )
    df = pd.read_parquet(path, columns=cols if only else None)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(plain)
    return df
