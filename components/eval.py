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
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.orchestration.summary import flat_scores
    from qwenflow.pipelines.artifact_refs import input_dir
    from qwenflow.tracking.stage_report import publish

    result = run_stage(
        "eval",
        recipe_path=recipe.path,
        inputs={"data": input_dir(data), "model": input_dir(model)},
        output=report.path,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    for name, value in flat_scores(result).items():
        scores.log_metric(name, value)
    publish(
        "eval",
        result,
        recipe_path=recipe.path,
        parent_run_id=parent_run_id,
        markdown=summary,
        extra=flat_scores(result),
    )
