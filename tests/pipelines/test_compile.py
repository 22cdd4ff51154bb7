"""Every component and the pipeline compile; the compiled YAML carries the recipe's cluster settings."""

import pytest
import yaml
from kfp import compiler

from qwenflow.components import COMPONENTS, component
from qwenflow.pipelines.qwen25_recipe import compile_pipeline
from qwenflow.stages import STAGES, SWITCHES

TRAINING_EXECUTORS = ("exec-sft", "exec-reward", "exec-dpo", "exec-grpo")


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_compiles_with_its_docstring(name, tmp_path):
    comp = component(name, image="registry.example/qwenflow:test")
    out = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(comp, str(out))
    spec = yaml.safe_load(out.read_text())
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    assert executor["container"]["image"] == "registry.example/qwenflow:test"
    assert "pip install" not in " ".join(executor["container"]["command"])  # the image carries qwenflow and kfp
    # The KFP UI shows the docstring: the summary, and a description for every input.
    first_line = comp.python_func.__doc__.strip().splitlines()[0]
    assert f"# Description: {first_line}" in out.read_text()
    comp_spec = next(iter(spec["components"].values()))
    for kind in ("inputDefinitions",):
        for group in comp_spec.get(kind, {}).values():
            for io_name, io in group.items():
                assert io.get("description"), f"{name}: {io_name} has no description"


@pytest.fixture(scope="module")
def compiled_7b(tmp_path_factory):
    out = tmp_path_factory.mktemp("yaml") / "qwen2.5-7b.yaml"
    compile_pipeline("qwen2.5-7b", str(out))
    pipeline, platform = yaml.safe_load_all(out.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_7b_training_stages_request_eight_h100s(compiled_7b):
    pipeline, k8s = compiled_7b
    executors = pipeline["deploymentSpec"]["executors"]
    for name in TRAINING_EXECUTORS:
        res = executors[name]["container"]["resources"]
        assert res["accelerator"]["resourceType"] == "nvidia.com/gpu" and res["accelerator"]["resourceCount"] == "8", (
            name
        )
        assert res["resourceMemoryLimit"] == "1000Gi" and res["resourceCpuRequest"] == "64"
        assert k8s[name]["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s[name]["tolerations"]
    # pretrain (4 nodes) and long context (2 nodes: the memory plan of its 32K sequences) launch training jobs
    # (test_trainjob) and hold no GPU themselves
    assert "accelerator" not in executors["exec-pretrain"]["container"]["resources"]
    assert "accelerator" not in executors["exec-long-context"]["container"]["resources"]
    # bookkeeping steps get no GPU
    assert "accelerator" not in executors["exec-gate"]["container"].get("resources", {})
    assert "accelerator" not in executors["exec-build-bento"]["container"].get("resources", {})
    # evaluation: one GPU, from the recipe's eval.resources
    assert executors["exec-eval"]["container"]["resources"]["accelerator"]["resourceCount"] == "1"


def test_every_step_mounts_the_shared_pvc_and_the_mlflow_secret(compiled_7b):
    pipeline, k8s = compiled_7b
    assert set(k8s) == set(pipeline["deploymentSpec"]["executors"])
    for name, spec in k8s.items():
        assert spec["pvcMount"][0]["mountPath"] == "/mnt/qwenflow", name
        assert spec["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "qwenflow-work"
        secret = spec["secretAsEnv"][0]
        assert secret["secretName"] == "mlflow-credentials"
        assert {k["envVar"] for k in secret["keyToEnv"]} == {
            "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        }
        assert int(spec["activeDeadlineSeconds"]) > 0


def test_training_tasks_retry_and_bookkeeping_does_not(compiled_7b):
    pipeline, _ = compiled_7b
    tasks = pipeline["root"]["dag"]["tasks"]["exit-handler-1"]
    inner = pipeline["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert inner["pretrain"]["retryPolicy"]["maxRetryCount"] == 3
    assert "retryPolicy" not in inner["prepare-data"]
    assert tasks["componentRef"]["name"] == "comp-exit-handler-1"


def test_ui_parameters_have_recipe_defaults_and_descriptions(compiled_7b):
    pipeline, _ = compiled_7b
    params = pipeline["root"]["inputDefinitions"]["parameters"]
    assert params["recipe_name"]["defaultValue"] == "qwen2.5-7b"
    assert params["pretrain"]["defaultValue"] is True and params["overrides"]["defaultValue"] == []
    # one on/off per switchable stage of the registry, each described in the UI
    assert set(params) == {"recipe_name", "overrides", "model_size", "data_sources", *SWITCHES}
    for name in params:
        assert params[name].get("description"), name


def test_start_run_takes_one_switch_per_switchable_stage():
    """start_run's source is the KFP component, so its switches are written out: they must be the registry's."""
    import inspect

    from qwenflow.components.start_run import start_run

    params = inspect.signature(start_run).parameters
    assert [n for n, p in params.items() if p.annotation in (bool, "bool")] == list(SWITCHES)


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_component_runs_the_stage_of_its_name(name):
    """components/<name>.py defines `name` and runs stage `name`: one name from registry to component to run."""
    import inspect
    import re

    fn = component(name).python_func
    assert fn.__name__ == name
    assert re.findall(r'run_step\(\s*"(\w+)"', inspect.getsource(fn)) == [name]


def test_gate_decides_registration_and_deployment(compiled_7b):
    pipeline, _ = compiled_7b
    text = yaml.safe_dump(pipeline)
    assert "condition-gate-passed" in text or "gate-passed" in text
    inner = pipeline["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    gated = [t for t in inner.values() if "triggerPolicy" in t]
    assert gated and "gate" in gated[0]["triggerPolicy"]["condition"]
    assert "register" not in inner and "deploy" not in inner  # they live inside the condition branch


def test_docs_carry_the_current_compiled_7b_pipeline(compiled_7b, tmp_path):
    """docs/kubeflow/qwen2.5-7b.yaml is what users upload: it must be what the code compiles today."""
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs" / "kubeflow" / "qwen2.5-7b.yaml"
    fresh = tmp_path / "fresh.yaml"
    compile_pipeline("qwen2.5-7b", str(fresh))
    assert list(yaml.safe_load_all(docs.read_text())) == list(yaml.safe_load_all(fresh.read_text())), (
        "docs/kubeflow/qwen2.5-7b.yaml is stale: run `qwenflow compile -r qwen2.5-7b -o docs/kubeflow/qwen2.5-7b.yaml`"
    )


def test_kfp_cli_compiles_the_pipeline_file(tmp_path):
    """`kfp dsl compile --py pipelines/qwen25_recipe.py` (kfp's own CLI) finds the default pipeline in the file."""
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "pipelines" / "qwen25_recipe.py"
    out = tmp_path / "p.yaml"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("kfp")), "dsl", "compile", "--py", str(src), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    spec, platform = yaml.safe_load_all(out.read_text())  # the pipeline, then its Kubernetes platform spec
    assert spec["pipelineInfo"]["name"] == "qwen25-recipe"
    assert "exec-grpo" in spec["deploymentSpec"]["executors"]
    assert "kubernetes" in platform["platforms"]
