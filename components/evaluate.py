from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(recipe: Input[Artifact], data: Input[Dataset], model: Input[Model], parent_run_id: str,
             kfp_run_id: str, report: Output[Artifact], scores: Output[Metrics]):
    """Evaluate the final model on the held-out verifiable tasks and real benchmarks of the recipe's suite.

    Args:
        recipe: Resolved recipe from start-run.
        data: Datasets from prepare-data (eval/ holds the held-out tasks).
        model: Model to evaluate (the last training stage's output).
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        report: Evaluation report directory (report.json and plots).
        scores: Headline scores, shown in the KFP UI.
    """
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.orchestration.summary import flat_scores

    result = run_stage("evaluate", recipe_path=recipe.path, inputs={"data": data.path, "model": model.path},
                       output=report.path, parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
    for name, value in flat_scores(result).items():
        scores.log_metric(name, value)
