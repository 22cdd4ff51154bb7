"""`qwenflow eval` end to end on the tiny model: report, MLflow logging, decontamination, bad inputs."""

import json
import shutil

import mlflow
import pandas as pd
from typer.testing import CliRunner

from qwenflow.cli.main import app
from qwenflow.data.benchmarks import load_gsm8k

runner = CliRunner()
FAST = [
    "--limit",
    "2",
    "--set",
    "eval.long_context.lengths=[48,2100]",
    "--set",
    "eval.long_context.depths=[0.0,1.0]",
    "--set",
    "eval.long_context.settings=[none,yarn]",
]


def make_data(root):
    """A data-stage-shaped directory: held-out corpus per domain, a training corpus, one held-out task."""
    (root / "corpus").mkdir(parents=True)
    (root / "eval").mkdir()
    leaked = load_gsm8k().items[50]
    pd.DataFrame(
        {
            "text": ["def f(x):\n    return x + 1\n" * 5, "The cat sat on the mat. " * 10],
            "source": ["py", "prose"],
            "domain": ["code", "english"],
            "license": ["PSF", "PD"],
        }
    ).to_parquet(root / "corpus" / "val.parquet")
    pd.DataFrame(
        {
            "text": [
                "Some unrelated text about rivers and mountains. " * 20,
                f"Homework: {leaked.question}\n{leaked.solution}",
            ],
            "source": ["a", "b"],
            "domain": ["english", "english"],
            "license": ["PD", "PD"],
        }
    ).to_parquet(root / "corpus" / "train.parquet")
    pd.DataFrame(
        {
            "prompt": [
                [{"role": "user", "content": "What is 12 + 30?"}],
                [{"role": "user", "content": "What is 50 - 8?"}],
            ],
            "task": ["arithmetic"] * 2,
            "answer": ["42", "42"],
        }
    ).to_parquet(root / "eval" / "arithmetic.parquet")
    return root


def test_quick_eval_writes_report_and_logs_to_mlflow(tracking, tiny_model_dir, tmp_path):
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["eval", "--model", str(tiny_model_dir), "--suite", "quick", "--data", str(data), "--out", str(out), *FAST]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    for metric in (
        "mmlu/accuracy",
        "gsm8k/exact_match",
        "hellaswag/accuracy",
        "truthfulqa_mc1/accuracy",
        "humaneval/pass_at_1",
        "arithmetic/exact_match",
        "perplexity/code_ppl",
        "passkey_yarn/accuracy",
        "multi_needle_none/accuracy_beyond_trained",
    ):
        assert metric in report["metrics"], metric
    mmlu = report["tasks"]["mmlu"]
    assert mmlu["n"] == 2 and mmlu["shots"] == 5 and len(mmlu["dataset"]["sha256"]) == 64
    assert 0.0 <= mmlu["metrics"]["accuracy"] <= 1.0 and "accuracy" in mmlu["stderr"]
    # the leaked GSM8K problem in the training corpus is found; MMLU has no overlap
    assert report["tasks"]["gsm8k"]["dataset"]["decontam"]["overlapping_train_docs"] == 1
    assert report["tasks"]["mmlu"]["dataset"]["decontam"]["overlapping_train_docs"] == 0
    assert report["metrics"]["perplexity/code_ppl"] > 1
    assert (out / "long_context_heatmap.png").stat().st_size > 1000
    run = mlflow.get_run(report["mlflow_run_id"])
    assert abs(run.data.metrics["mmlu/accuracy"] - report["metrics"]["mmlu/accuracy"]) < 1e-9
    assert run.data.tags["qwenflow.stage"] == "eval"
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    assert {"eval/report.json", "eval/long_context_heatmap.png"} <= arts


def test_model_dir_without_tokenizer_is_a_clear_error(tiny_model_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / f, bare / f)
    res = runner.invoke(app, ["eval", "--model", str(bare), "--no-track", "--out", str(tmp_path / "o")])
    assert (
        res.exit_code == 2
        and "no tokenizer files" in " ".join(res.output.split())
        and "Traceback" not in " ".join(res.output.split())
    )


def test_tokenizer_without_chat_template_is_reported(tiny_model_dir, tmp_path):
    model = tmp_path / "nochat"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    data = make_data(tmp_path / "data")
    res = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(model),
            "--no-track",
            "--data",
            str(data),
            "--task",
            "heldout",
            "--out",
            str(tmp_path / "o"),
            "--limit",
            "2",
        ],
    )
    assert res.exit_code == 1 and "no chat_template" in " ".join(res.output.split())
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "no chat_template" in report["errors"]["arithmetic"]


def test_compare_prints_a_table_and_saves_a_plot(tmp_path):
    for label, acc in [("base", 0.25), ("sft", 0.4), ("grpo", 0.5)]:
        d = tmp_path / label
        d.mkdir()
        (d / "report.json").write_text(
            json.dumps(
                {
                    "label": label,
                    "model": {"path": str(d)},
                    "metrics": {"arithmetic/exact_match": acc, "mmlu/accuracy": 0.25},
                }
            )
        )
    res = runner.invoke(
        app,
        ["eval", "compare", *(str(tmp_path / x) for x in ("base", "sft", "grpo")), "--plot", str(tmp_path / "cmp.png")],
    )
    assert res.exit_code == 0, res.output
    assert (
        "arithmetic/exact_match" in " ".join(res.output.split())
        and "0.4000" in " ".join(res.output.split())
        and "grpo" in " ".join(res.output.split())
    )
    assert (tmp_path / "cmp.png").stat().st_size > 1000
