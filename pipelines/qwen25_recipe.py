"""The whole Qwen2.5 recipe as one KFP pipeline:

start_run -> prepare_data -> validate_data -> tokenizer -> pretrain -> long_context -> sft -> reward -> dpo -> grpo
-> eval -> gate -> [if passed] register -> build_bento -> deploy; finish_run closes the MLflow parent run.
The tasks, their wiring and the on/off parameters are derived from the stage registry (qwenflow.stages).

`build_pipeline(recipe)` bakes the recipe's per-stage cluster resources into the tasks (kfp-kubernetes) and uses
the recipe's values as the defaults of the parameters a user edits in the Kubeflow UI. Local runs
(`qwenflow run`) call the same pipeline under kfp.local with `kubernetes=False`.
"""
# No `from __future__ import annotations`: KFP reads the pipeline signature's annotations as real types.

import inspect

from kfp import dsl

from qwenflow.components import component
from qwenflow.pipelines.compiled_guard import fingerprint
from qwenflow.pipelines.kubernetes import (
    ClusterSettings,
    apply,
)  # absolute: `kfp dsl compile --py` imports this file alone
from qwenflow.recipe import Recipe, load_recipe
from qwenflow.recipe.base import Resources
from qwenflow.stages import FINISH, STAGES, START, STEPS, SWITCHES

PIPELINE_NAME = "qwen25-recipe"
LIGHT = Resources(cpu="1", memory="4Gi")  # bookkeeping steps: run parent, gate, registry, Helm values


def build_pipeline(
    recipe: Recipe,
    overrides: list[str] | None = None,
    *,
    kubernetes: bool = True,
    cluster: ClusterSettings | None = None,
):
    """The pipeline function for `recipe` (loaded with `overrides`, which also become the UI default)."""
    image = recipe.base_image
    cluster = cluster or ClusterSettings(image=image)
    if not cluster.image:
        cluster = ClusterSettings(**{**cluster.__dict__, "image": image})
    op = {name: component(name, image) for name in STEPS}

    def k8s(task, resources, name):
        if resources.nodes > 1:
            # The step only launches and follows a PyTorchJob that gets the GPUs: it needs none itself.
            resources = LIGHT.model_copy(update={"retries": resources.retries, "timeout_s": resources.timeout_s})
        task.set_display_name(name)
        task.set_caching_options(False)  # stages cache by content themselves; KFP's URI cache would skip wrongly
        return apply(task, resources, cluster) if kubernetes else task

    def step_resources(stage):
        if stage.resources is None:
            return LIGHT
        res = getattr(recipe, stage.resources).resources
        return res if stage.gpus else res.model_copy(update={"gpus": 0})

    def add(tasks: dict, stage, common: dict) -> None:
        """The stage's task, fed by the main outputs of the stages its inputs name (qwenflow.stages)."""
        feeds = {param: tasks[src].outputs[STAGES[src].output] for param, src in stage.inputs}
        task = k8s(op[stage.name](**feeds, **common), step_resources(stage), stage.name)
        for before in stage.after:
            task.after(tasks[before])
        tasks[stage.name] = task

    # The UI's parameters: the run's recipe, overrides, size and sources, and one on/off per switchable stage.
    # Built as a signature because the switches come from qwenflow.stages (KFP reads names, types and defaults).
    params = [
        ("recipe_name", str, recipe.name),
        ("overrides", list, list(overrides or [])),
        ("model_size", str, ""),
        ("data_sources", list, []),
        *((name, bool, getattr(recipe, name).enabled) for name in SWITCHES),
    ]
    signature = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d, annotation=t) for n, t, d in params]
    )

    def qwen25_recipe(*args, **kwargs):
        p = signature.bind(*args, **kwargs).arguments
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        finish = op[FINISH](kfp_run_id=run_id)
        k8s(finish, LIGHT, FINISH)
        with dsl.ExitHandler(finish, name="qwen25-recipe-stages"):
            start = k8s(
                op[START](
                    **p,
                    kfp_run_id=run_id,
                    compiled_for=fingerprint(recipe) if kubernetes else "",
                ),
                LIGHT,
                START,
            )
            common = dict(recipe=start.outputs["recipe"], parent_run_id=start.outputs["Output"], kfp_run_id=run_id)
            tasks: dict = {}
            for stage in STAGES.values():
                if not stage.gated:
                    add(tasks, stage, common)
            # One condition on the gate's single bool output (kfp.local resolves neither NamedTuple fields nor
            # nested conditions here). The `deploy` switch is applied inside the recipe and the deploy stage honours it.
            with dsl.If(tasks["gate"].outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition)
                for stage in STAGES.values():
                    if stage.gated:
                        add(tasks, stage, common)

    qwen25_recipe.__signature__ = signature
    qwen25_recipe.__doc__ = """Train a Qwen2.5-family model end to end.

        Args:
            recipe_name: Shipped recipe (tiny, qwen2.5-0.5b ... qwen2.5-72b, qwen2.5-moe-a2.7b). Cluster resources are
                compiled in from the recipe this pipeline was compiled with.
            overrides: Recipe overrides, KEY=VALUE, e.g. ["sft.learning_rate=1e-5", "sft.init_from=models:/m/3"].
            model_size: Swap in the model section of a shipped size (0.5b, 1.5b, 3b, 7b, 14b, 32b, 72b, moe-a2.7b).
            data_sources: Replace the recipe's data sources (named sources or paths); empty keeps them.
""" + "".join(f"            {name}: {STAGES[name].doc}\n" for name in SWITCHES)
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description=f"Qwen2.5 recipe end to end, compiled from recipe '{recipe.name}': "
        "data -> tokenizer -> pre-training -> long context -> SFT -> reward -> DPO -> GRPO -> eval -> gate "
        "-> registry -> Bento -> deploy, tracked in MLflow.",
    )(qwen25_recipe)


def compile_pipeline(
    recipe_name: str, out_path: str, overrides: list[str] | None = None, cluster: ClusterSettings | None = None
) -> str:
    """Write the pipeline YAML for a recipe (what you upload in the Kubeflow UI)."""
    from kfp import compiler

    recipe = load_recipe(recipe_name, overrides)
    compiler.Compiler().compile(build_pipeline(recipe, overrides, cluster=cluster), out_path)
    return out_path


def __getattr__(name: str):
    """`qwen25_recipe`, the default pipeline (tiny recipe), so `kfp dsl compile --py pipelines/qwen25_recipe.py` works
    out of the box (kfp finds it through dir()). Built on first use, not at import: kfp's task setters call
    inspect.stack(), which costs ~20 s per build once torch is loaded, and `qwenflow run` builds its own."""
    if name == "qwen25_recipe":
        globals()[name] = pipeline = build_pipeline(load_recipe("tiny"))
        return pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "qwen25_recipe"})
