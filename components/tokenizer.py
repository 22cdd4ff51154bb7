from kfp.dsl import Artifact, Dataset, Input, Markdown, Output


def tokenizer(
    recipe: Input[Artifact],
    data: Input[Dataset],
    parent_run_id: str,
    kfp_run_id: str,
    tokenizer_dir: Output[Artifact],
    summary: Output[Markdown],
):
    """Build the tokenizer: the real Qwen2.5 vocabulary, or a byte-level BPE trained on the prepared corpus.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data (corpus/train.parquet trains the BPE).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        tokenizer_dir: Tokenizer directory (AutoTokenizer-loadable, ChatML template).
        summary: The step's card: vocabulary size and MLflow run link.
    """
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.pipelines.artifact_refs import input_dir
    from qwenflow.tracking.stage_report import publish

    result = run_stage(
        "tokenizer",
        recipe_path=recipe.path,
        inputs={"data": input_dir(data)},
        output=tokenizer_dir.path,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    publish("tokenizer", result, recipe_path=recipe.path, parent_run_id=parent_run_id, markdown=summary)
