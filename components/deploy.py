from kfp.dsl import Artifact, Input, Markdown, Output


def deploy(
    recipe: Input[Artifact],
    model_uri: str,
    bento: str,
    parent_run_id: str,
    kfp_run_id: str,
    release: Output[Artifact],
    summary: Output[Markdown],
):
    """Deploy the registered model: Helm values for its service (image, GPU resources, model source), checked
    against the chart's schema, and the `helm upgrade --install` command that releases it.

    Args:
        recipe: Resolved recipe from start_run (deploy section).
        model_uri: Registered model URI from register.
        bento: Bento tag from build_bento.
        parent_run_id: MLflow parent run to nest under.
        kfp_run_id: KFP run id for tagging.
        release: Deployment record and the Helm values file.
        summary: The step's card: the release command and MLflow run link.
    """
    from qwenflow.pipelines.step import run_step

    run_step(
        "deploy", recipe, parent_run_id, kfp_run_id, release, {"model_uri": model_uri, "bento": bento}, summary=summary
    )
