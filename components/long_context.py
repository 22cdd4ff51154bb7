from kfp.dsl import Artifact, Dataset, Input, Model, Output


def long_context(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], parent_run_id: str, kfp_run_id: str,
       long_model: Output[Model]):
    """Extend the context: raise the RoPE base (ABF) and train on long sequences, progressively when the
    recipe lists several lengths; writes the YaRN option into the config. Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data.
        model: Starting model (the previous stage's output; the recipe's long_context.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        long_model: Long-context model directory.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("long-context", recipe_path=recipe.path, inputs={"data": data.path, "model": model.path}, output=long_model.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
