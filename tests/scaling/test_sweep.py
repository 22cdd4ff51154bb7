"""A real (micro) sweep through the platform's pre-training engine, tracked in MLflow, reused on rerun,
fitted, and used by a pre-training run with `learning_rate: auto`."""

from __future__ import annotations

import json

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from qwenflow.recipe import load_recipe
from qwenflow.scaling.fit import EXPERIMENT, FIT_TAG, collect_points, fit_scaling
from qwenflow.scaling.grid import load_grid
from qwenflow.scaling.sweep import run_sweep
from tests.conftest import stdlib_texts

MICRO_GRID = {
    "name": "micro",
    "base_recipe": "tiny",
    "seq_len": 32,
    "data_tokens": [2048, 6144],
    "learning_rates": [3e-3, 1e-2],
    "batch_sizes": [4],
    "models": [
        {"name": "a", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64},
        {"name": "b", "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128},
    ],
}


@pytest.fixture
def corpus_dir(tmp_path):
    texts = stdlib_texts(400_000)
    d = tmp_path / "data" / "corpus"
    d.mkdir(parents=True)
    for split, part in (("train", texts[:-3]), ("val", texts[-3:])):
        pq.write_table(
            pa.table(
                {
                    "text": part,
                    "source": ["python_stdlib"] * len(part),
                    "domain": ["code"] * len(part),
                    "license": ["PSF"] * len(part),
                }
            ),
            d / f"{split}.parquet",
        )
    return d.parent


def test_micro_sweep_fit_and_auto_pretrain(tracking, tmp_path, corpus_dir, tiny_tokenizer_dir):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(MICRO_GRID))
    grid = load_grid(grid_file)
    overrides = ["model.vocab_size=1024", "tokenizer.vocab_size=1024"]
    # The micro grid's points run on the tiny recipe with the 1024-token test tokenizer.
    for m in grid.models:
        m.model_config  # noqa: B018 (pydantic model; nothing to do)
    import qwenflow.scaling.grid as grid_mod

    orig = grid_mod.Point.overrides
    grid_mod.Point.overrides = lambda self: orig(self) + overrides
    try:
        first = run_sweep(grid, corpus_dir, tiny_tokenizer_dir, tmp_path / "work")
        assert len(first) == 8 and not any(r["reused"] for r in first)
        assert all(r["val_loss"] < 7.0 for r in first)  # ln(1024) = 6.93 at init: every point learned something
        again = run_sweep(grid, corpus_dir, tiny_tokenizer_dir, tmp_path / "work")
        assert all(r["reused"] for r in again)  # finished points come from MLflow, not reruns
    finally:
        grid_mod.Point.overrides = orig

    mlflow.set_tracking_uri(tracking)
    df = collect_points(EXPERIMENT, "micro")
    assert len(df) == 8 and set(df["arch"]) == {"dense"}
    fit = fit_scaling(df, n_boot=50)
    with mlflow.start_run(
        experiment_id=mlflow.get_experiment_by_name(EXPERIMENT).experiment_id, tags={FIT_TAG: "true"}
    ) as fit_run:
        mlflow.log_text(fit.to_json(), "fit.json")

    from qwenflow.train.pretrain import run_pretrain

    recipe = load_recipe(
        "tiny",
        overrides
        + [
            "pretrain.learning_rate=auto",
            "pretrain.seq_len=32",
            "pretrain.global_batch_size=4",
            "pretrain.micro_batch_size=4",
            "pretrain.max_steps=5",
            "pretrain.eval_every=5",
            "pretrain.checkpoint_every=5",
            "long_context.enabled=false",
        ],
    )
    from qwenflow.orchestration.stages import resolve

    resolved, info = resolve("pretrain", recipe)  # what the pipeline and `qwenflow train pretrain` do first
    out = run_pretrain(resolved, corpus_dir, tiny_tokenizer_dir, tmp_path / "auto", auto_info=info)
    used = yaml.safe_load((out / "qwenflow_recipe.yaml").read_text())["pretrain"]["learning_rate"]
    assert isinstance(used, float) and used > 0
    runs = mlflow.search_runs(
        experiment_names=["qwenflow-tiny"], filter_string="tags.`qwenflow.stage` = 'pretrain'", output_format="list"
    )
    auto = json.loads(mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/scaling_auto.json"))
    assert auto["scaling_fit_run_id"] == fit_run.info.run_id and auto["auto_learning_rate"] == pytest.approx(used)
