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
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.pipelines.artifact_refs import input_dir
    from qwenflow.tracking.stage_report import publish

    result = run_stage(
        "register",
        recipe_path=recipe.path,
        inputs={"model": input_dir(model), "report": report.path},
        output=record.path,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    publish("register", result, recipe_path=recipe.path, parent_run_id=parent_run_id, markdown=summary)
    return result["uri"]
