from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output


def validate_data(
    recipe: Input[Artifact],
    data: Input[Dataset],
    parent_run_id: str,
    kfp_run_id: str,
    report: Output[Artifact],
    data_docs: Output[HTML],
    summary: Output[Markdown],
):
    """Check every dataset against its contract with Great Expectations; stop the pipeline with a readable report
    when one breaks it.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        report: Validation reports (HTML and JSON per dataset kind).
        data_docs: Great Expectations Data Docs for every dataset as one self-contained HTML page (KFP UI).
        summary: The step's card: MLflow run link and per-dataset verdicts.
    """
    from qwenflow.pipelines.data_docs import render
    from qwenflow.pipelines.step import run_step

    run_step("validate_data", recipe, parent_run_id, kfp_run_id, report, {"data": data}, summary=summary)
    render(report.path, data_docs.path)
