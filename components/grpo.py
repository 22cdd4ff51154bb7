from kfp.dsl import Artifact, Dataset, Input, Model, Output


def grpo(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], reward_model: Input[Model],
         parent_run_id: str, kfp_run_id: str, grpo_model: Output[Model]):
    """Online RL: GRPO with verifier rewards (and the reward model when trained). Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data (rl/ prompts).
        model: Starting model (the DPO output; the recipe's grpo.init_from replaces it).
        reward_model: Reward model from the reward stage (ignored when that stage was off).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        grpo_model: GRPO model directory.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("grpo", recipe_path=recipe.path,
              inputs={"data": data.path, "model": model.path, "reward_model": reward_model.path},
              output=grpo_model.path, parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
