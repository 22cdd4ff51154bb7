def finish_run(kfp_run_id: str) -> str:
    """Close the MLflow parent run of this pipeline run (FAILED if any stage failed, else FINISHED).

    Args:
        kfp_run_id: KFP run id whose parent MLflow run to close.

    Returns:
        The final MLflow status.
    """
    from qwenflow.orchestration.start import finish_pipeline

    return finish_pipeline(kfp_run_id)
