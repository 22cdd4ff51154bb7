from kfp.dsl import Artifact, Dataset, Input, Output


def prepare_data(recipe: Input[Artifact], parent_run_id: str, kfp_run_id: str, data: Output[Dataset]):
    """Build the datasets from the recipe's real sources: clean, deduplicate, mix domains, decontaminate, and write
    corpus/, sft/, rl/, preferences/ and eval/ (Parquet + manifest.json each).

    Args:
        recipe: Resolved recipe from start-run.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        data: Dataset directory with one sub-directory per dataset kind.
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("prepare-data", recipe_path=recipe.path, inputs={}, output=data.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
