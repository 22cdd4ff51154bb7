"""Gates (floors, ceilings, no-regression) and the MLflow registry flow: register -> challenger -> promote ->
champion."""

import json

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from qwenflow.artifacts import sha256_path
from qwenflow.cli.main import app
from qwenflow.eval.gates import check_gates
from qwenflow.eval.registry import champion_metrics, promote, register_model

runner = CliRunner()


def report(**metrics):
    return {"metrics": metrics, "suite": "quick", "model": {}}


def test_gates_floor_ceiling_regression_and_missing_metric():
    gates = [
        {"metric": "arithmetic/exact_match", "min": 0.5},
        {"metric": "mmlu/accuracy", "max_regression": 0.01},
        {"metric": "perplexity/all_ppl", "max_regression": 1.0},
    ]
    ok = check_gates(
        report(**{"arithmetic/exact_match": 0.6, "mmlu/accuracy": 0.30, "perplexity/all_ppl": 10.5}),
        gates,
        baseline=report(**{"mmlu/accuracy": 0.305, "perplexity/all_ppl": 10.0}),
    )
    assert ok.passed, ok.reasons
    bad = check_gates(
        report(**{"arithmetic/exact_match": 0.4, "mmlu/accuracy": 0.28, "perplexity/all_ppl": 12.0}),
        gates,
        baseline=report(**{"mmlu/accuracy": 0.305, "perplexity/all_ppl": 10.0}),
    )
    assert not bad.passed
    assert sum(r.startswith("FAIL") for r in bad.reasons) == 3  # floor, accuracy drop, perplexity rise
    missing = check_gates(report(**{"mmlu/accuracy": 0.3}), [{"metric": "gsm8k/exact_match", "min": 0.1}])
    assert not missing.passed and "not in the report" in missing.reasons[0]
    first = check_gates(report(**{"mmlu/accuracy": 0.3}), [{"metric": "mmlu/accuracy", "max_regression": 0.01}])
    assert first.passed and "no baseline" in first.reasons[0]


def test_gate_cli_exit_codes(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(report(**{"arithmetic/exact_match": 0.5})))
    bad.write_text(json.dumps(report(**{"arithmetic/exact_match": 0.01})))
    res = runner.invoke(app, ["eval", "gate", str(good), "--recipe", "tiny"])
    assert res.exit_code == 0 and "PASSED" in " ".join(res.output.split())
    res = runner.invoke(app, ["eval", "gate", str(bad), "--recipe", "tiny"])
    assert res.exit_code == 1 and "FAIL arithmetic/exact_match = 0.01 < min 0.05" in " ".join(res.output.split())
    res = runner.invoke(app, ["eval", "gate", str(tmp_path / "nope.json")])
    assert res.exit_code == 2 and "no evaluation report" in " ".join(res.output.split())


def test_register_challenger_then_promote_champion(tracking, tiny_model_dir):
    from qwenflow.tracking.model_source import fetch_registered_model

    rep = report(**{"mmlu/accuracy": 0.26})
    rep["model"] = {"sha256": sha256_path(tiny_model_dir)}
    v1 = register_model(tiny_model_dir, "qf-test", rep)
    client = MlflowClient()
    mv = client.get_model_version_by_alias("qf-test", "challenger")
    assert mv.version == v1 and mv.tags["sha256"] == sha256_path(tiny_model_dir)
    assert json.loads(mv.tags["qwenflow.metrics"]) == {"mmlu/accuracy": 0.26}
    local, _ = fetch_registered_model("models:/qf-test@challenger")  # the serving side's sha256 check passes
    assert sha256_path(local) == mv.tags["sha256"]
    assert champion_metrics("qf-test") is None
    res = promote("qf-test", reason="first")
    assert res["version"] == v1 and res["previous"] is None
    champ = client.get_model_version_by_alias("qf-test", "champion")
    assert champ.version == v1 and champ.tags["qwenflow.promotion_reason"] == "first"
    assert champion_metrics("qf-test") == {"metrics": {"mmlu/accuracy": 0.26}}
    # a worse model fails the no-regression gate against the champion
    assert not check_gates(
        report(**{"mmlu/accuracy": 0.2}),
        [{"metric": "mmlu/accuracy", "max_regression": 0.01}],
        champion_metrics("qf-test"),
    ).passed
    # a report for another model directory is refused
    with pytest.raises(ValueError, match="evaluate this directory"):
        register_model(tiny_model_dir, "qf-test", {"metrics": {}, "model": {"sha256": "0" * 64}})
    res = runner.invoke(app, ["promote", "qf-test", "--version", "99"])
    assert res.exit_code == 2 and "not in the registry" in " ".join(res.output.split())
