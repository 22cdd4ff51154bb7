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
    from qwenflow.pipelines.step import run_step

    return run_step(
        "build_bento", recipe, parent_run_id, kfp_run_id, record, {"model_uri": model_uri}, summary=summary
    )["bento"]
