from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def eval(
    recipe: Input[Artifact],
    data: Input[Dataset],
    model: Input[Model],
    parent_run_id: str,
    kfp_run_id: str,
    report: Output[Artifact],
    scores: Output[Metrics],
    summary: Output[Markdown],
):
    """Evaluate the final model on the held-out verifiable tasks and real benchmarks of the recipe's suite.

    Args:
        recipe: Resolved recipe from start_run.
        data: Datasets from prepare_data (eval/ holds the held-out tasks).
        model: Model to evaluate (the last training stage's output).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        report: Evaluation report directory (report.json and plots).
        scores: Headline scores, shown in the KFP UI.
        summary: The step's card: MLflow run link and scores.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "eval",
        recipe,
        parent_run_id,
        kfp_run_id,
        report,
        {"data": data, "model": model},
        scores=scores,
        summary=summary,
    )
