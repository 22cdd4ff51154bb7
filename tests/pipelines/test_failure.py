"""A failing stage stops the run with the stage's name and the cause, and the MLflow parent run says FAILED."""

import mlflow
from pipeline_smoke import SMOKE, run_qwenflow


def _pipeline_runs(tracking) -> dict:
    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string="tags.`qwenflow.stage` = 'pipeline'"
    )
    return {r.info.run_id: r for r in runs}


def test_failing_stage_is_named_with_its_reason(tracking, tmp_path):
    before = _pipeline_runs(tracking)  # the session's MLflow server is shared with other pipeline tests
    missing = tmp_path / "no-such-corpus"
    proc = run_qwenflow(
        [
            "run",
            "--recipe",
            "tiny",
            "--plain",
            "--run-dir",
            str(tmp_path / "run"),
            *[a for ov in SMOKE for a in ("--set", ov)],
            "--set",
            f"data.sources=[{missing}]",
        ],
        env={"MLFLOW_TRACKING_URI": tracking},
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    err = " ".join(proc.stderr.split())
    assert "stage 'prepare_data' failed" in err
    assert "no-such-corpus" in err  # the why: the missing source is named
    assert "Traceback" not in proc.stderr
    assert "rerun the same command to resume" in err

    parents = [r for rid, r in _pipeline_runs(tracking).items() if rid not in before]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
