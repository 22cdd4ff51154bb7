from kfp.dsl import Artifact, Dataset, Input, Model, Output


def dpo(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], parent_run_id: str, kfp_run_id: str,
       dpo_model: Output[Model]):
    """Offline RL: DPO on rejection-sampled pairs with the Online Merging Optimizer. Switched off, passes the
    model on.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data.
        model: Starting model (the previous stage's output; the recipe's dpo.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        dpo_model: DPO model directory.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("dpo", recipe_path=recipe.path, inputs={"data": data.path, "model": model.path}, output=dpo_model.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
