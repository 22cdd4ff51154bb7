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
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.pipelines.artifact_refs import input_dir, output_dir
    from qwenflow.tracking.stage_report import publish

    out = output_dir(dpo_model, "dpo", kfp_run_id)  # on the cluster: the shared PVC, the artifact holds a reference
    result = run_stage(
        "dpo",
        recipe_path=recipe.path,
        inputs={"data": input_dir(data), "model": input_dir(model), "reward_model": input_dir(reward_model)},
        output=out,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    publish(
        "dpo",
        result,
        recipe_path=recipe.path,
        parent_run_id=parent_run_id,
        metrics=metrics,
        markdown=summary,
        model_dir=out,
    )
