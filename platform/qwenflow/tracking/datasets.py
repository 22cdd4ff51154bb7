"""Datasets as MLflow run inputs (`mlflow.log_input`): each stage's run lists the prepared datasets it reads, with
the digest of their Parquet files' sha256 (from the dataset's manifest.json), rows and schema, so the MLflow UI's
Datasets column and a run's lineage name the exact data. Metadata only: nothing is re-read or copied."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from qwenflow.artifacts import read_manifest
from qwenflow.stages import DATASET_KINDS, STAGES

DATA_DIR_ENV = "QWENFLOW_DATA_DIR"  # the pipeline's prepared-data directory, set for the stage process
# Which prepared datasets each stage reads (the posttrain/train/eval modules' read_dataset calls).
STAGE_DATASETS: dict[str, tuple[str, ...]] = {s.name: s.datasets for s in STAGES.values() if s.datasets}
CONTEXT = {"eval": "evaluation", "validate_data": "validation"}


def dataset_for(directory: Path, name: str):
    """An MLflow MetaDataset for one prepared dataset directory, or None when it has no manifest."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema, TensorSpec

    try:
        manifest = read_manifest(directory)
    except FileNotFoundError:
        return None
    files = manifest.get("files", {})
    # MLflow keeps at most 36 characters of a digest: the sha256 of the sorted per-file sha256s, cut to 32.
    digest = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()[:32]
    schema = manifest.get("schema")
    cols: list[ColSpec | TensorSpec] | None = (
        [
            ColSpec(t if t in ("string", "long", "double", "float", "integer", "boolean") else "string", c)
            for c, t in schema.items()
        ]
        if isinstance(schema, dict) and schema
        else None
    )

    with warnings.catch_warnings():  # MLflow registers its local-file source twice and warns about the tie
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(directory).resolve()))
    # mlflow's Dataset marks profile abstract without ABCMeta: MetaDataset instantiates (its profile is None)
    return MetaDataset(  # type: ignore[abstract]
        source=source, name=name, digest=digest, schema=Schema(cols) if cols else None
    )


def log_stage_inputs(stage: str, recipe_name: str = "") -> list[str]:
    """Log the datasets `stage` reads as inputs of the active run; returns their names (empty outside a pipeline)."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir or stage not in STAGE_DATASETS:
        return []
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    logged = []
    for kind in STAGE_DATASETS[stage]:
        ds = dataset_for(Path(data_dir) / kind, f"{recipe_name}-{kind}" if recipe_name else kind)
        if ds is not None:
            mlflow.log_input(ds, context=CONTEXT.get(stage, "training"), tags={"qwenflow.kind": kind})
            logged.append(ds.name)
    return logged


def log_inputs_to_run(client, run_id: str, kinds: tuple[str, ...] = DATASET_KINDS, recipe_name: str = "") -> list[str]:
    """Log prepared datasets as inputs of an existing run (the pipeline's parent run), by id."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    from mlflow.entities import DatasetInput, InputTag

    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        return []
    inputs = []
    for kind in kinds:
        ds = dataset_for(Path(data_dir) / kind, f"{recipe_name}-{kind}" if recipe_name else kind)
        if ds is not None:
            inputs.append(
                DatasetInput(
                    ds._to_mlflow_entity(),
                    tags=[InputTag("mlflow.data.context", "pipeline"), InputTag("qwenflow.kind", kind)],
                )
            )
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    return [i.dataset.name for i in inputs]
