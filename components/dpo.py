from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def dpo(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    reward_model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    dpo_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Offline RL: DPO on rejection-sampled pairs with the Online Merging Optimizer. Switched off, passes the
    model on.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data.
        model: Starting model (the previous stage's output; the recipe's dpo.init_from replaces it).
        reward_model: Reward model from the reward stage: ranks the sampled answers (ignored when that stage was off).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        dpo_model: DPO model directory.
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "dpo",
        recipe,
        parent_run_id,
        kfp_run_id,
        dpo_model,
        {"data": data, "model": model, "reward_model": reward_model},
        metrics=metrics,
        summary=summary,
    )
