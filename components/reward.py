from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def reward(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    reward_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Train the reward model (a sequence classifier on preference pairs) from the SFT model; reports
    held-out pairwise accuracy. Switched off, GRPO uses its verifiers only.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data.
        model: Starting model (the previous stage's output; the recipe's reward.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        reward_model: Reward model directory.
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "reward",
        recipe,
        parent_run_id,
        kfp_run_id,
        reward_model,
        {"data": data, "model": model},
        metrics=metrics,
        summary=summary,
    )
