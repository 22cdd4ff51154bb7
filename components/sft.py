from kfp.dsl import Artifact, Dataset, Input, Model, Output


def sft(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], parent_run_id: str, kfp_run_id: str,
       sft_model: Output[Model]):
    """Supervised fine-tuning on the chat data with loss on assistant tokens only (TRL SFTTrainer); reports
    exact match on held-out verifiable tasks before and after. Switched off, passes the model on.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data.
        model: Starting model (the previous stage's output; the recipe's sft.init_from replaces it).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        sft_model: Fine-tuned model directory.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("sft", recipe_path=recipe.path, inputs={"data": data.path, "model": model.path}, output=sft_model.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
