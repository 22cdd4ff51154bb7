from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def grpo(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    reward_model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    grpo_model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Online RL: GRPO with verifier rewards (and the reward model when trained). Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data (rl/ prompts).
        model: Starting model (the DPO output; the recipe's grpo.init_from replaces it).
        reward_model: Reward model from the reward stage (ignored when that stage was off).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        grpo_model: GRPO model directory.
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "grpo",
        recipe,
        parent_run_id,
        kfp_run_id,
        grpo_model,
        {"data": data, "model": model, "reward_model": reward_model},
        metrics=metrics,
        summary=summary,
    )
