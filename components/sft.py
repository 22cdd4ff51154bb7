from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def sft(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    sft_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Supervised fine-tuning on the chat data with loss on assistant tokens only (TRL SFTTrainer); reports
    exact match on held-out verifiable tasks before and after. Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data.
        model: Starting model (the previous stage's output; the recipe's sft.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        sft_model: Fine-tuned model directory.
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "sft",
        recipe,
        parent_run_id,
        kfp_run_id,
        sft_model,
        {"data": data, "model": model},
        metrics=metrics,
        summary=summary,
    )
