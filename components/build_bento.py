from kfp.dsl import Artifact, Input, Markdown, Output


def build_bento(
    recipe: Input[Artifact],
    model_uri: str,
    parent_run_id: str,
    kfp_run_id: str,
    record: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Build the BentoML Bento (OpenAI-compatible service) with the registered model inside.

    Args:
        recipe: Resolved recipe from start_run (deploy section).
        model_uri: Registered model URI from register.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        record: Build record (Bento tag).
        summary: The step's card: Bento tag and MLflow run link.

    Returns:
        The Bento tag.
    """
    from qwenflow.orchestration.stage import run_stage
    from qwenflow.tracking.stage_report import publish

    result = run_stage(
        "build_bento",
        recipe_path=recipe.path,
        inputs={"model_uri": model_uri},
        output=record.path,
        parent_run_id=parent_run_id,
        kfp_run_id=kfp_run_id,
    )
    publish("build_bento", result, recipe_path=recipe.path, parent_run_id=parent_run_id, markdown=summary)
    return result["bento"]
