from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def pretrain(
    recipe: Input[Artifact],
    data: Input[Dataset],
    tokenizer_dir: Input[Artifact],
    parent_run_id: str,
    kfp_run_id: str,
    model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
):
    """Pre-train the Qwen2.5-shaped model on the packed corpus (resumes from its last checkpoint; more than one
    node runs as a Kubeflow PyTorchJob with torchrun + DeepSpeed).

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data (corpus/ is packed to pretrain.seq_len).
        tokenizer_dir: Tokenizer from the tokenizer stage.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        model: Base model directory (safetensors + tokenizer + recipe + lineage).
        metrics: Headline numbers of the stage's MLflow run, shown in the KFP UI.
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "pretrain",
        recipe,
        parent_run_id,
        kfp_run_id,
        model,
        {"data": data, "tokenizer": tokenizer_dir},
        metrics=metrics,
        summary=summary,
    )
