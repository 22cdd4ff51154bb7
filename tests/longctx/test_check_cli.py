"""`qwenflow eval long-context`: the passkey grid, perplexity with and without a setting, files and MLflow run."""

from __future__ import annotations

import json

import mlflow
from typer.testing import CliRunner

from qwenflow.cli.long_context import SETTINGS as CLI_SETTINGS
from qwenflow.cli.main import app
from qwenflow.longctx import SETTINGS


def test_eval_long_context_writes_table_heatmap_and_mlflow_run(tracking, tiny_model_dir, tmp_path):
    out = tmp_path / "lc"
    # 1/8 and 1/4 of the trained length (2048) keep this fast; DCA without YaRN must not change in-length perplexity
    args = [
        "eval",
        "long-context",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--setting",
        "none",
        "--setting",
        "dca",
        "--multiple",
        "0.125",
        "--multiple",
        "0.25",
        "--depth",
        "0",
        "--depth",
        "1",
        "--samples",
        "1",
        "--ppl-multiple",
        "0.25",
        "--ppl-windows",
        "1",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "passkey_report.json").read_text())
    assert report["lengths"] == [256, 512] and report["trained_length"] == 2048
    assert [len(report["accuracy"][s]) for s in ("none", "dca")] == [2, 2]  # one row per depth
    ppl = report["perplexity"]
    assert abs(ppl["none"]["512"] - ppl["dca"]["512"]) < 1e-3 * ppl["none"]["512"]
    assert (out / "passkey_heatmap.png").stat().st_size > 1000
    assert "| none | " in (out / "passkey_table.md").read_text()

    client = mlflow.MlflowClient(tracking)
    run = client.search_runs(
        [client.get_experiment_by_name("qwenflow").experiment_id], "tags.`qwenflow.stage` = 'long-context-check'"
    )[0]
    assert run.data.metrics["ppl_dca_0.25x"] > 0 and "passkey_none_0.125x" in run.data.metrics
    assert "passkey_heatmap.png" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_bad_setting_is_a_clear_error_and_cli_lists_every_setting(tiny_model_dir, tmp_path):
    assert CLI_SETTINGS == SETTINGS
    res = CliRunner().invoke(app, ["eval", "long-context", "--model", str(tiny_model_dir), "--setting", "dca-please"])
    assert res.exit_code == 2 and "unknown setting(s) dca-please" in res.output
