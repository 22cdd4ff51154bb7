"""The compiled qwen2.5-7b pipeline schedules on a GPU cluster as users run it: every GPU step tolerates the GPU
taint, has a node selector, /dev/shm and a sized scratch volume; steps use the stage cache on the PVC; large outputs
travel by reference; the run form cannot swap in a model the pods were not sized for; submit sets the step
service account that infra/ defines; every training step shows metrics and a Markdown card in the KFP UI."""

import json
from pathlib import Path

import pytest
import yaml

from qwenflow.pipelines.qwen25_recipe import compile_pipeline

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def compiled_7b(tmp_path_factory):
    out = tmp_path_factory.mktemp("yaml") / "qwen2.5-7b.yaml"
    compile_pipeline("qwen2.5-7b", str(out))
    pipeline, platform = yaml.safe_load_all(out.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_gpu_step_schedules_on_tainted_gpu_nodes_with_shm_and_scratch(compiled_7b):
    pipeline, k8s = compiled_7b
    executors = pipeline["deploymentSpec"]["executors"]
    gpu_steps = [n for n, e in executors.items() if "accelerator" in e["container"].get("resources", {})]
    assert {"exec-sft", "exec-dpo", "exec-grpo", "exec-eval"} <= set(gpu_steps)
    for name in gpu_steps:
        spec = k8s[name]
        assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in spec["tolerations"]), name
        assert spec["nodeSelector"]["labels"], name
        shm = [m for m in spec["emptyDirMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm and shm[0]["medium"] == "Memory", name
    for name, spec in k8s.items():  # every step, GPU or not, asks the scheduler for its scratch disk
        scratch = spec["genericEphemeralVolume"][0]
        assert scratch["mountPath"] == "/scratch" and scratch["size"].endswith("Gi"), name
        env = {e["name"]: e["value"] for e in executors[name]["container"].get("env", [])}
        assert env["QWENFLOW_STAGE_CACHE"] == "/mnt/qwenflow/cache" and env["TMPDIR"] == "/scratch", name


def test_training_steps_publish_metrics_and_a_markdown_card(compiled_7b):
    pipeline, _ = compiled_7b
    comps = pipeline["components"]
    for comp in ("comp-pretrain", "comp-long-context", "comp-sft", "comp-reward", "comp-dpo", "comp-grpo"):
        outs = comps[comp]["outputDefinitions"]["artifacts"]
        assert outs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics", comp
        assert outs["summary"]["artifactType"]["schemaTitle"] == "system.Markdown", comp
    docs = comps["comp-validate-data"]["outputDefinitions"]["artifacts"]["data_docs"]
    assert docs["artifactType"]["schemaTitle"] == "system.HTML"


def test_large_outputs_go_by_reference_on_the_cluster(tmp_path, monkeypatch):
    from kfp.dsl import Model

    from qwenflow.pipelines.artifact_refs import REF_FILE, input_dir, output_dir

    artifact = Model(name="sft_model", uri="", metadata={})
    artifact.path = str(tmp_path / "kfp-outputs" / "sft_model")  # what KFP uploads to its artifact store
    monkeypatch.delenv("QWENFLOW_PVC_MOUNT", raising=False)
    assert output_dir(artifact, "sft", "run-1") == artifact.path  # local runs: the artifact is the directory
    monkeypatch.setenv("QWENFLOW_PVC_MOUNT", str(tmp_path / "pvc"))
    target = Path(output_dir(artifact, "sft", "run-1"))
    assert target.is_relative_to(tmp_path / "pvc") and artifact.metadata["path"] == str(target)
    (target / "model.safetensors").parent.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"\0" * 4096)
    uploaded = [p for p in Path(artifact.path).rglob("*") if p.is_file()]
    assert [p.name for p in uploaded] == [REF_FILE] and uploaded[0].stat().st_size < 500  # no weights in KFP
    assert input_dir(artifact) == str(target)  # the next step reads the PVC directly
    (target / "model.safetensors").unlink()
    target.rmdir()
    with pytest.raises(FileNotFoundError, match="mount the same PVC"):
        input_dir(artifact)


def test_a_step_sends_models_by_reference_and_reads_references(tracking, tmp_path, monkeypatch):
    """run_step (every stage component's body): a model output goes to the PVC with a reference in the artifact,
    an input reference is read from the PVC, and the step's card is written."""
    from kfp.dsl import Artifact, Markdown, Model

    from qwenflow.pipelines.artifact_refs import output_dir
    from qwenflow.pipelines.step import run_step
    from qwenflow.recipe import load_recipe, recipe_to_yaml

    def artifact(kind, name):
        a = kind(name=name, uri="", metadata={})
        a.path = str(tmp_path / "kfp-outputs" / name)
        return a

    monkeypatch.setenv("QWENFLOW_PVC_MOUNT", str(tmp_path / "pvc"))
    recipe = artifact(Artifact, "recipe")
    Path(recipe.path).parent.mkdir(parents=True)
    Path(recipe.path).write_text(recipe_to_yaml(load_recipe("tiny", ["sft.enabled=false"])))
    model_in = artifact(Model, "long_model")
    weights = Path(output_dir(model_in, "long_context", "run-1")) / "model.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"\0" * 64)
    sft_model, summary = artifact(Model, "sft_model"), artifact(Markdown, "summary")
    result = run_step("sft", recipe, "", "run-1", sft_model, {"model": model_in}, summary=summary)
    out = Path(result["model_dir"])
    assert out.is_relative_to(tmp_path / "pvc") and (out / "model.safetensors").read_bytes() == b"\0" * 64
    assert [p.name for p in Path(sft_model.path).iterdir()] == ["qwenflow_ref.json"]
    assert Path(summary.path).read_text().startswith("### sft: skipped (switched off)")


def test_run_form_cannot_swap_in_a_model_the_pods_were_not_sized_for(compiled_7b):
    from qwenflow.orchestration.start import resolve_recipe
    from qwenflow.pipelines.compiled_guard import check

    pipeline, _ = compiled_7b
    start = pipeline["components"]["comp-exit-handler-1"]["dag"]["tasks"]["start-run"]
    compiled = start["inputs"]["parameters"]["compiled_for"]["runtimeValue"]["constant"]
    assert json.loads(compiled)["recipe"] == "qwen2.5-7b"
    check(resolve_recipe("qwen2.5-7b", [], "7b"), compiled)  # the same size passes
    with pytest.raises(ValueError, match=r"model.hidden_size = 3584.*8192.*recompile"):
        check(resolve_recipe("qwen2.5-7b", [], "72b"), compiled)
    with pytest.raises(ValueError, match=r"resources\.\w+\.gpus = 8.*4"):
        check(resolve_recipe("qwen2.5-7b", ["grpo.resources.gpus=4"]), compiled)


def test_submit_runs_steps_as_the_service_account_infra_defines(monkeypatch, tmp_path):
    import kfp
    from typer.testing import CliRunner

    from qwenflow.cli.main import app
    from qwenflow.pipelines.kubernetes import JOB_SERVICE_ACCOUNT, RUN_SERVICE_ACCOUNT

    rbac = list(yaml.safe_load_all((ROOT / "infra/k8s/base/rbac/pipeline-steps.yaml").read_text()))
    accounts = {d["metadata"]["name"] for d in rbac if d and d["kind"] == "ServiceAccount"}
    assert {RUN_SERVICE_ACCOUNT, JOB_SERVICE_ACCOUNT} <= accounts
    bound = {s["name"] for d in rbac if d and d["kind"] == "RoleBinding" for s in d["subjects"]}
    assert RUN_SERVICE_ACCOUNT in bound  # the run's steps may launch TrainJobs / RayJobs
    calls = {}

    class FakeClient:  # no KFP API server can run here
        def __init__(self, host, namespace=None):
            pass

        def create_run_from_pipeline_package(self, path, **kwargs):
            calls.update(kwargs)
            return type("Run", (), {"run_id": "r-1"})()

    monkeypatch.setattr(kfp, "Client", FakeClient)
    res = CliRunner().invoke(app, ["submit", "--host", "http://kfp.invalid", "--recipe", "tiny"])
    assert res.exit_code == 0, res.output
    assert calls["service_account"] == RUN_SERVICE_ACCOUNT


def test_validate_data_docs_are_one_self_contained_html_page(tmp_path):
    import re

    from qwenflow.pipelines.data_docs import render

    checks = [
        {
            "file": "train.parquet",
            "expectation": "expect_column_values_to_not_be_null",
            "column": "text",
            "kwargs": {"column": "text"},
            "success": False,
            "rows": 10,
            "unexpected_count": 2,
            "observed": None,
            "examples": [],
        },
        {
            "file": "train.parquet",
            "expectation": "expect_sha256_to_match_manifest",
            "column": "",
            "success": True,
            "rows": 10,
            "observed": "sha256 ab..., manifest says ab...",
        },
    ]
    (tmp_path / "reports" / "corpus").mkdir(parents=True)
    (tmp_path / "reports" / "corpus" / "validation_corpus.json").write_text(
        json.dumps(
            {
                "kind": "corpus",
                "directory": "/data/corpus",
                "success": False,
                "rows": {"train.parquet": 10},
                "checks": checks,
            }
        )
    )
    page = render(tmp_path / "reports", tmp_path / "docs.html").read_text()
    assert "corpus dataset: FAILED" in page
    assert "must never be null" in page  # rendered by Great Expectations' own Data Docs renderer
    assert "expect_sha256_to_match_manifest" in page  # qwenflow's own checks beside them
    assert "{%" not in page and "<style>" in page  # GX's stylesheet inlined, its template rendered
    assert not re.search(r"<(script|link|img)\b[^>]*(src|href)=\"(https?:|\.\./)", page)  # nothing fetched
    with pytest.raises(FileNotFoundError, match="no validation"):
        render(tmp_path / "empty", tmp_path / "x.html")
