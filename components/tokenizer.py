from kfp.dsl import Artifact, Dataset, Input, Output


def tokenizer(recipe: Input[Artifact], data: Input[Dataset], parent_run_id: str, kfp_run_id: str,
              tokenizer_dir: Output[Artifact]):
    """Build the tokenizer: the real Qwen2.5 vocabulary, or a byte-level BPE trained on the prepared corpus.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data (corpus/train.parquet trains the BPE).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        tokenizer_dir: Tokenizer directory (AutoTokenizer-loadable, ChatML template).
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("tokenizer", recipe_path=recipe.path, inputs={"data": data.path}, output=tokenizer_dir.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
