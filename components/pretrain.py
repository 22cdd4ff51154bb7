from kfp.dsl import Artifact, Dataset, Input, Model, Output


def pretrain(recipe: Input[Artifact], data: Input[Dataset], tokenizer_dir: Input[Artifact], parent_run_id: str,
             kfp_run_id: str, model: Output[Model]):
    """Pre-train the Qwen2.5-shaped model on the packed corpus (resumes from its last checkpoint; more than one
    node runs as a Kubeflow PyTorchJob with torchrun + DeepSpeed).

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data (corpus/ is packed to pretrain.seq_len).
        tokenizer_dir: Tokenizer from the tokenizer stage.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        model: Base model directory (safetensors + tokenizer + recipe + lineage).
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("pretrain", recipe_path=recipe.path, inputs={"data": data.path, "tokenizer": tokenizer_dir.path},
              output=model.path, parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
