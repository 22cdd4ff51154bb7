"""The whole Qwen2.5 recipe as one KFP pipeline:

start-run -> prepare-data -> validate-data -> tokenizer -> pretrain -> long-context -> sft -> reward -> dpo -> grpo
-> evaluate -> gate -> [if passed] register -> build-bento -> deploy; finish-run closes the MLflow parent run.

`build_pipeline(recipe)` bakes the recipe's per-stage cluster resources into the tasks (kfp-kubernetes) and uses
the recipe's values as the defaults of the parameters a user edits in the Kubeflow UI. Local runs
(`qwenflow run`) call the same pipeline under kfp.local with `kubernetes=False`.
"""
# No `from __future__ import annotations`: KFP reads the pipeline signature's annotations as real types.

from kfp import dsl

from qwenflow.components import component
from qwenflow.pipelines.compiled_guard import fingerprint
from qwenflow.pipelines.kubernetes import (
    ClusterSettings,
    apply,
)  # absolute: `kfp dsl compile --py` imports this file alone
from qwenflow.recipe import Recipe, load_recipe
from qwenflow.recipe.base import Resources

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
    op = {
        name: component(name, image)
        for name in (
            "start_run",
            "prepare_data",
            "validate_data",
            "tokenizer",
            "pretrain",
            "long_context",
            "sft",
            "reward_model",
            "dpo",
            "grpo",
            "evaluate",
            "gate",
            "register",
            "build_bento",
            "deploy",
            "finish_run",
        )
    }

    def k8s(task, resources, name):
        if resources.nodes > 1:
            # The step only launches and follows a PyTorchJob that gets the GPUs: it needs none itself.
            resources = LIGHT.model_copy(update={"retries": resources.retries, "timeout_s": resources.timeout_s})
        task.set_display_name(name)
        task.set_caching_options(False)  # stages cache by content themselves; KFP's URI cache would skip wrongly
        return apply(task, resources, cluster) if kubernetes else task

    default_overrides = list(overrides or [])

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=f"Qwen2.5 recipe end to end, compiled from recipe '{recipe.name}': "
        "data -> tokenizer -> pre-training -> long context -> SFT -> reward -> DPO -> GRPO -> eval -> gate "
        "-> registry -> Bento -> deploy, tracked in MLflow.",
    )
    def qwen25_recipe(
        recipe_name: str = recipe.name,
        overrides: list = default_overrides,
        model_size: str = "",
        data_sources: list = [],  # noqa: B006 - KFP reads it as the parameter's default; the body runs once, at compile
        pretrain: bool = recipe.pretrain.enabled,
        long_context: bool = recipe.long_context.enabled,
        sft: bool = recipe.sft.enabled,
        reward: bool = recipe.reward.enabled,
        dpo: bool = recipe.dpo.enabled,
        grpo: bool = recipe.grpo.enabled,
        deploy: bool = recipe.deploy.enabled,
    ):
        """Train a Qwen2.5-family model end to end.

        Args:
            recipe_name: Shipped recipe (tiny, qwen2.5-0.5b ... qwen2.5-72b, qwen2.5-moe-a2.7b). Cluster resources are
                compiled in from the recipe this pipeline was compiled with.
            overrides: Recipe overrides, KEY=VALUE, e.g. ["sft.learning_rate=1e-5", "sft.init_from=models:/m/3"].
            model_size: Swap in the model section of a shipped size (0.5b, 1.5b, 3b, 7b, 14b, 32b, 72b, moe-a2.7b).
            data_sources: Replace the recipe's data sources (named sources or paths); empty keeps them.
            pretrain: Run pre-training (off: set pretrain.init_from to start from an existing model).
            long_context: Run long-context extension.
            sft: Run supervised fine-tuning.
            reward: Train the reward model for GRPO.
            dpo: Run DPO with the Online Merging Optimizer.
            grpo: Run GRPO.
            deploy: Write the release (Helm values) when the gate passes; registration and the Bento follow the gate.
        """
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        finish = op["finish_run"](kfp_run_id=run_id)
        k8s(finish, LIGHT, "finish-run")
        with dsl.ExitHandler(finish, name="qwen25-recipe-stages"):
            start = k8s(
                op["start_run"](
                    recipe_name=recipe_name,
                    overrides=overrides,
                    model_size=model_size,
                    data_sources=data_sources,
                    pretrain=pretrain,
                    long_context=long_context,
                    sft=sft,
                    reward=reward,
                    dpo=dpo,
                    grpo=grpo,
                    deploy=deploy,
                    kfp_run_id=run_id,
                    compiled_for=fingerprint(recipe) if kubernetes else "",
                ),
                LIGHT,
                "start-run",
            )
            common = dict(recipe=start.outputs["recipe"], parent_run_id=start.outputs["Output"], kfp_run_id=run_id)

            data = k8s(op["prepare_data"](**common), recipe.data.resources, "prepare-data")
            dataset = data.outputs["data"]
            valid = k8s(op["validate_data"](data=dataset, **common), recipe.data.resources, "validate-data")
            tok = k8s(op["tokenizer"](data=dataset, **common), recipe.data.resources, "tokenizer").after(valid)
            base = k8s(
                op["pretrain"](data=dataset, tokenizer_dir=tok.outputs["tokenizer_dir"], **common),
                recipe.pretrain.resources,
                "pretrain",
            )
            longc = k8s(
                op["long_context"](data=dataset, model=base.outputs["model"], **common),
                recipe.long_context.resources,
                "long-context",
            )
            sft_t = k8s(
                op["sft"](data=dataset, model=longc.outputs["long_model"], **common), recipe.sft.resources, "sft"
            )
            rm = k8s(
                op["reward_model"](data=dataset, model=sft_t.outputs["sft_model"], **common),
                recipe.reward.resources,
                "reward",
            )
            dpo_t = k8s(
                op["dpo"](
                    data=dataset, model=sft_t.outputs["sft_model"], reward_model=rm.outputs["reward_model"], **common
                ),
                recipe.dpo.resources,
                "dpo",
            )
            grpo_t = k8s(
                op["grpo"](
                    data=dataset, model=dpo_t.outputs["dpo_model"], reward_model=rm.outputs["reward_model"], **common
                ),
                recipe.grpo.resources,
                "grpo",
            )
            final = grpo_t.outputs["grpo_model"]
            ev = k8s(op["evaluate"](data=dataset, model=final, **common), recipe.eval.resources, "evaluate")
            gate = k8s(op["gate"](report=ev.outputs["report"], **common), LIGHT, "gate")
            # One condition on the gate's single bool output (kfp.local resolves neither NamedTuple fields nor
            # nested conditions here). The `deploy` switch is applied inside the recipe and the deploy stage honours it.
            with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition)
                reg = k8s(op["register"](model=final, report=ev.outputs["report"], **common), LIGHT, "register")
                bento = k8s(
                    op["build_bento"](model_uri=reg.outputs["Output"], **common),
                    recipe.deploy.resources.model_copy(update={"gpus": 0}),
                    "build-bento",
                )
                k8s(
                    op["deploy"](model_uri=reg.outputs["Output"], bento=bento.outputs["Output"], **common),
                    LIGHT,
                    "deploy",
                )

    return qwen25_recipe


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
