from kfp.dsl import Artifact, Input, Markdown, Model, Output


def register(
    recipe: Input[Artifact],
    model: Input[Model],
    report: Input[Artifact],
    parent_run_id: str,
    kfp_run_id: str,
    record: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Register the evaluated model in the MLflow model registry with its report and lineage; alias `challenger`.

    Args:
        recipe: Resolved recipe from start_run (deploy.registered_model names the registry entry).
        model: Model that passed the gate.
        report: Its evaluation report.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        record: Registration record (name, version, URI).
        summary: The step's card: registered version and MLflow run link.

    Returns:
        The registered model URI, models:/NAME/VERSION.
    """
    from qwenflow.pipelines.step import run_step

    return run_step(
        "register", recipe, parent_run_id, kfp_run_id, record, {"model": model, "report": report}, summary=summary
    )["uri"]
