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
    from qwenflow.pipelines.step import run_step

    run_step("tokenizer", recipe, parent_run_id, kfp_run_id, tokenizer_dir, {"data": data}, summary=summary)
