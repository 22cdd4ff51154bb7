"""How the compiled real-size pipelines run their training stages: single-node multi-GPU stages as torchrun in the
step's pod (which asks for the node's GPUs), multi-node stages as Kubeflow Trainer TrainJobs launched by a step that
holds no GPU itself (the job's manifest checked against the Trainer SDK's model)."""

import pytest
import yaml

from qwenflow.orchestration import launch, trainjob
from qwenflow.pipelines.qwen25_recipe import compile_pipeline
from qwenflow.recipe import load_recipe

STAGES = {
    "pretrain": "exec-pretrain",
    "long_context": "exec-long-context",
    "sft": "exec-sft",
    "reward": "exec-reward",
    "dpo": "exec-dpo",
    "grpo": "exec-grpo",
}


@pytest.mark.parametrize("name", ["qwen2.5-7b", "qwen2.5-72b"])
def test_compiled_pipeline_runs_each_training_stage_where_its_resources_say(name, tmp_path):
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    out = tmp_path / f"{name}.yaml"
    compile_pipeline(name, str(out))
    pipeline, _ = yaml.safe_load_all(out.read_text())
    executors = pipeline["deploymentSpec"]["executors"]
    recipe = load_recipe(name)
    seen = set()
    for section, executor in STAGES.items():
        res = getattr(recipe, section).resources
        how, nodes, per_node = launch.placement(res)
        seen.add(how)
        asked = executors[executor]["container"].get("resources", {}).get("accelerator")
        if how == "torchrun":  # the step's pod gets the node's GPUs and runs one process per GPU in it
            assert asked and int(asked["resourceCount"]) == per_node == res.gpus == 8, section
        else:  # a multi-node TrainJob: the launching step holds no GPU
            assert how == "trainjob" and asked is None, section
            pod = trainjob.JobPod(image=recipe.base_image, pvc="qwenflow-work", mount_path="/mnt/qwenflow", env={})
            manifest = trainjob.to_manifest(
                trainjob.train_job(f"qwenflow-{section}-r1", "team", res, [section, "--out", "/mnt/qwenflow/w"], pod)
            )
            job = TrainerV1alpha1TrainJob.from_dict(manifest)
            assert job.spec.trainer.num_nodes == nodes and job.spec.trainer.num_proc_per_node == per_node == 8
    # 7B: pre-training across 4 nodes, the rest on one 8-GPU node; 72B: every training stage needs several nodes
    assert seen == ({"torchrun", "trainjob"} if name == "qwen2.5-7b" else {"trainjob"})


def test_a_stage_runs_as_the_processes_its_resources_give():
    r = load_recipe("qwen2.5-72b")
    assert launch.describe(r.pretrain.resources) == "TrainJob: 32 nodes x 8 processes (torchrun on each node)"
    assert launch.describe(load_recipe("qwen2.5-7b").sft.resources).startswith("torchrun in the step's pod: 8")
    assert launch.describe(load_recipe("tiny").sft.resources) == "one process in the step's pod"
