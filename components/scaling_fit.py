from kfp.dsl import Artifact, Output


def scaling_fit(grid: str, sweep: str, report: Output[Artifact]) -> str:
    """Fit the learning-rate, batch-size and loss laws from the sweep's runs in MLflow and log the fit.

    Args:
        grid: Shipped grid name or grid YAML path (names the held-out size).
        sweep: Only points of this sweep (empty: every sweep point in MLflow).
        report: HTML/PNG report with fit.json.

    Returns:
        The MLflow run id of the fit (what `learning_rate: auto` resolves from).
    """
    import mlflow

    from qwenflow.scaling.fit import EXPERIMENT, FIT_TAG, collect_points, fit_scaling
    from qwenflow.scaling.report import write_report
    from qwenflow.tracking import connect

    connect()
    df = collect_points(EXPERIMENT, sweep or None)
    fit = fit_scaling(df)
    out = write_report(fit, df, report.path)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="scaling-fit", tags={FIT_TAG: "true", "qwenflow.stage": "scaling-fit"}) as run:
        mlflow.log_text(fit.to_json(), "fit.json")
        mlflow.log_artifacts(str(out), "report")
    return run.info.run_id
