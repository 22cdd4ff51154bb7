"""What an MLflow user sees of a qwenflow model and run: a registered version that is a standard pyfunc chat model
(loads with mlflow.pyfunc.load_model, answers a chat request, has a signature and an input example), a register
run nested under the pipeline run, datasets as run inputs with their digest, an experiment that opens on its runs
table, and headline numbers on the parent run. Against the real loopback MLflow server."""

import mlflow
import pandas as pd
from mlflow import MlflowClient

from qwenflow.artifacts import write_manifest
from qwenflow.eval.registry import register_model


def test_registered_model_is_a_pyfunc_chat_model_in_a_nested_run(tracking, tiny_model_dir, monkeypatch):
    from qwenflow.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, _setup

    _setup("qwenflow-flavour")
    client = MlflowClient()
    parent = client.create_run(client.get_experiment_by_name("qwenflow-flavour").experiment_id, run_name="pipeline")
    monkeypatch.setenv("QWENFLOW_PARENT_RUN_ID", parent.info.run_id)
    version = register_model(
        tiny_model_dir, "qf-chat", {"metrics": {"arithmetic/exact_match": 0.25}}, experiment="qwenflow-flavour"
    )
    client.set_registered_model_alias("qf-chat", "champion", version)

    exp = client.get_experiment_by_name("qwenflow-flavour")
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND  # the UI opens on the runs table, not the GenAI pages
    mv = client.get_model_version("qf-chat", version)
    reg_run = client.get_run(mv.run_id)
    assert reg_run.data.tags["mlflow.parentRunId"] == parent.info.run_id  # nested under the pipeline run
    assert reg_run.data.metrics["arithmetic/exact_match"] == 0.25

    info = mlflow.models.get_model_info("models:/qf-chat@champion")
    assert "python_function" in info.flavors and info.signature is not None
    assert [i.name for i in info.signature.inputs.inputs][0] == "messages"
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model("models:/qf-chat@champion")
    out = model.predict({"messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 5})
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert 1 <= out["usage"]["completion_tokens"] <= 5 and choice["finish_reason"] in ("stop", "length")


def test_stage_datasets_become_run_inputs_with_their_digest(tracking, tmp_path, monkeypatch):
    from qwenflow.tracking import stage_run
    from qwenflow.tracking.datasets import DATA_DIR_ENV

    for kind, frame in (("sft", pd.DataFrame({"messages": ["[]", "[]"]})), ("eval", pd.DataFrame({"prompt": ["q"]}))):
        (tmp_path / "data" / kind).mkdir(parents=True)
        frame.to_parquet(tmp_path / "data" / kind / "train.parquet")
        write_manifest(tmp_path / "data" / kind, rows={"train": len(frame)}, schema={c: "string" for c in frame})
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    with stage_run("sft", experiment="qwenflow-inputs") as run:
        pass
    inputs = {d.dataset.name: d for d in MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"sft", "eval"}
    first = inputs["sft"].dataset
    assert len(first.digest) == 32 and first.source_type == "local"
    (tmp_path / "data" / "sft" / "train.parquet").write_bytes(b"changed")  # other data, other digest
    write_manifest(tmp_path / "data" / "sft", rows={"train": 2}, schema={"messages": "string"})
    with stage_run("sft", experiment="qwenflow-inputs") as run2:
        pass
    second = {d.dataset.name: d.dataset for d in MlflowClient().get_run(run2.info.run_id).inputs.dataset_inputs}
    assert second["sft"].digest != first.digest and second["eval"].digest == inputs["eval"].dataset.digest


def test_step_report_puts_headline_numbers_on_the_parent_and_in_kfp_outputs(tracking, tmp_path):
    from qwenflow.recipe import load_recipe, recipe_to_yaml
    from qwenflow.tracking import _setup
    from qwenflow.tracking.stage_report import publish

    recipe = load_recipe("tiny", ["tracking.experiment=qwenflow-report"])
    (tmp_path / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    _setup("qwenflow-report")
    client = MlflowClient()
    exp_id = client.get_experiment_by_name("qwenflow-report").experiment_id
    parent = client.create_run(exp_id, run_name="pipeline").info.run_id
    child = client.create_run(exp_id, run_name="sft", tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_metric(child, "eval/arithmetic/exact_match_after", 0.5)
    client.log_metric(child, "train_loss", 1.25)
    client.log_metric(child, "system/cpu_utilization_percentage", 90.0)

    class KfpMetrics:  # the interface of kfp.dsl.Metrics the step uses
        def __init__(self):
            self.logged = {}

        def log_metric(self, k, v):
            self.logged[k] = v

    metrics, md = KfpMetrics(), type("Md", (), {"path": str(tmp_path / "card.md")})()
    numbers = publish(
        "sft",
        {"mlflow_run_id": child},
        recipe_path=str(tmp_path / "recipe.yaml"),
        parent_run_id=parent,
        metrics=metrics,
        markdown=md,
    )
    assert numbers == metrics.logged == {"eval/arithmetic/exact_match_after": 0.5, "train_loss": 1.25}
    assert client.get_run(parent).data.metrics["sft/train_loss"] == 1.25
    card = (tmp_path / "card.md").read_text()
    assert (
        f"#/experiments/{exp_id}/runs/{child}?workflowType=machine_learning" in card and "| train_loss | 1.25 |" in card
    )
