from kfp.dsl import Artifact, Output


def start_run(
    recipe_name: str,
    overrides: list,
    model_size: str,
    data_sources: list,
    pretrain: bool,
    long_context: bool,
    sft: bool,
    reward: bool,
    dpo: bool,
    grpo: bool,
    deploy: bool,
    kfp_run_id: str,
    recipe: Output[Artifact],
    compiled_for: str = "",
) -> str:
    """Resolve the recipe for this run and open the MLflow parent run every stage nests under.

    Args:
        recipe_name: Shipped recipe (tiny, qwen2.5-7b, ...) or a recipe YAML path inside the image.
        overrides: Recipe overrides as KEY=VALUE strings, e.g. ["sft.learning_rate=1e-5"].
        model_size: Replace the model section with a shipped size (0.5b, 7b, moe-a2.7b); empty keeps the recipe's.
        data_sources: Replace data.sources (named sources or paths); empty keeps the recipe's.
        pretrain: Run pre-training (off: pass pretrain.init_from on).
        long_context: Run long-context extension.
        sft: Run supervised fine-tuning.
        reward: Train the reward model.
        dpo: Run DPO.
        grpo: Run GRPO.
        deploy: Register, build the Bento and deploy when the gate passes.
        kfp_run_id: KFP run id, tagged on every MLflow run.
        recipe: The resolved recipe (recipe.yaml) every stage reads.
        compiled_for: The model and resources the pipeline's pods were compiled for; the run stops at once when the
            parameters above ask for another model or other resources ('' on local runs: no check).

    Returns:
        The MLflow parent run id.
    """
    # KFP builds a lightweight component from this function's source, so its parameters are written out; one per
    # switchable stage of qwenflow.stages.SWITCHES (tests/pipelines/test_compile.py checks they match).
    args = dict(locals())
    from qwenflow.orchestration.start import resolve_recipe, start_pipeline
    from qwenflow.pipelines.compiled_guard import check
    from qwenflow.stages import SWITCHES

    switches = {name: args[name] for name in SWITCHES}
    resolved = resolve_recipe(recipe_name, overrides, model_size, data_sources, switches)
    check(resolved, compiled_for)
    return start_pipeline(resolved, recipe.path, kfp_run_id)
