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
    import os

    from qwenflow.orchestration.stage import run_stage
    from qwenflow.pipelines.artifact_refs import output_dir
    from qwenflow.tracking.stage_report import publish

    out = output_dir(data, "prepare_data", kfp_run_id)
    result = run_stage(
        "prepare_data",
        recipe_path=recipe.path,
        inputs={},
        output=out,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    os.environ["QWENFLOW_DATA_DIR"] = out  # its MLflow run lists the datasets it wrote as inputs
    publish("prepare_data", result, recipe_path=recipe.path, parent_run_id=parent_run_id, markdown=summary)
