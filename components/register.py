from kfp.dsl import Artifact, Input, Model, Output


def register(recipe: Input[Artifact], model: Input[Model], report: Input[Artifact], parent_run_id: str,
             kfp_run_id: str, record: Output[Artifact]) -> str:
    """Register the evaluated model in the MLflow model registry with its report and lineage; alias `challenger`.

    Args:
        recipe: Resolved recipe from start-run (deploy.registered_model names the registry entry).
        model: Model that passed the gate.
        report: Its evaluation report.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        record: Registration record (name, version, URI).

    Returns:
        The registered model URI, models:/NAME/VERSION.
    """
    from qwenflow.orchestration.stage import run_stage

    result = run_stage("register", recipe_path=recipe.path, inputs={"model": model.path, "report": report.path},
                       output=record.path, parent_run_id=parent_run_id, kfp_run_id=kfp_run_id)
    return result["uri"]
