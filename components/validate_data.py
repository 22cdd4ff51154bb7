from kfp.dsl import Artifact, Dataset, HTML, Input, Output


def validate_data(recipe: Input[Artifact], data: Input[Dataset], parent_run_id: str, kfp_run_id: str,
                  report: Output[HTML]):
    """Check every dataset against its contract with Great Expectations; stop the pipeline with a readable report
    when one breaks it.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        report: Validation reports (HTML and JSON per dataset kind).
    """
    from qwenflow.orchestration.stage import run_stage

    run_stage("validate-data", recipe_path=recipe.path, inputs={"data": data.path}, output=report.path,
              parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
