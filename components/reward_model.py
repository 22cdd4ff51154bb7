from kfp.dsl import Artifact, Dataset, Input, Model, Output


def reward_model(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], parent_run_id: str, kfp_run_id: str,
       reward_model: Output[Model]):
    """Train the reward model (a sequence classifier on preference pairs) from the SFT model; reports
    held-out pairwise accuracy. Switched off, GRPO uses its verifiers only.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data.
        model: Starting model (the previous stage's output; the recipe's reward.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        reward_model: Reward model directory.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("reward", recipe_path=recipe.path, inputs={"data": data.path, "model": model.path}, output=reward_model.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
