from kfp.dsl import Artifact, Dataset, Input, Markdown, Output


def prepare_data(
    recipe: Input[Artifact], parent_run_id: str, kfp_run_id: str, data: Output[Dataset], summary: Output[Markdown]
):
    """Build the datasets from the recipe's real sources: clean, deduplicate, mix domains, decontaminate, and write
    corpus/, sft/, rl/, preferences/ and eval/ (Parquet + manifest.json each).

    Args:
        recipe: Resolved recipe from start_run.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        data: Dataset directory with one sub-directory per dataset kind (on the cluster: a reference to the PVC).
        summary: The step's card: MLflow run link and headline numbers.
    """
    from qwenflow.pipelines.step import run_step

    run_step("prepare_data", recipe, parent_run_id, kfp_run_id, data, {}, summary=summary)
