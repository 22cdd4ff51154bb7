from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def long_context(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    long_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Extend the context: raise the RoPE base (ABF) and train on long sequences, progressively when the
    recipe lists several lengths; writes the YaRN option into the config. Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data.
        model: Starting model (the previous stage's output; the recipe's long_context.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        long_model: Long-context model directory.
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "long_context",
        recipe,
        parent_run_id,
        kfp_run_id,
        long_model,
        {"data": data, "model": model},
        metrics=metrics,
        summary=summary,
    )
