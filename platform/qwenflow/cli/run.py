"""`qwenflow run | compile | submit | status`: the recipe pipeline locally, as YAML for the Kubeflow UI, or on a
KFP cluster."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from qwenflow.recipe import load_recipe
from qwenflow.stages import STAGES, stage

from .common import RecipeOpt, SetOpt, clean_errors, console, err_console

app = typer.Typer(help="Run the recipe pipeline locally or on Kubeflow.")

STAGE_NAMES = ", ".join(STAGES)  # what --force accepts (qwenflow.stages; `long-context` spelling too)


@app.command("run")
def run_cmd(
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite under QWENFLOW_HOME)")
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where artifacts, cache and logs go (default: QWENFLOW_HOME/runs/RECIPE); reruns here resume"
        ),
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force", help=f"Rerun this stage although it is cached (repeatable; 'all' for every stage): {STAGE_NAMES}"
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every stage; neither read nor write the resume cache")
    ] = False,
    plain: Annotated[bool, typer.Option("--plain", help="No live view (logs still go to the run's log file)")] = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Run every training stage as N processes under torchrun "
            "(CPU: gloo), the launcher a multi-GPU node uses",
        ),
    ] = 1,
):
    """Run the whole recipe pipeline on this machine (kfp.local), tracked in MLflow; rerunning resumes."""
    # lazy: kept out of `qwenflow --help` start-up (79 ms)
    from qwenflow.orchestration.local import LocalRun, PipelineFailed, run_local
    from qwenflow.orchestration.summary import render

    forced = []
    for name in force or []:
        try:
            forced.append(name if name == "all" else stage(name).name)  # `long-context` is `long_context`
        except ValueError:
            err_console.print(f"[bold red]error:[/] --force {name}: no such stage; stages: {STAGE_NAMES}")
            raise typer.Exit(2) from None
    with clean_errors():
        try:
            summary = run_local(
                LocalRun(
                    recipe=recipe,
                    overrides=tuple(set_ or []),
                    run_dir=run_dir,
                    tracking_uri=tracking_uri,
                    force=tuple(forced),
                    no_cache=no_cache,
                    live=not plain,
                    nproc=nproc,
                ),
                console=console,
            )
        except PipelineFailed as e:
            console.print(render(e.summary))
            err_console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(1) from None
    console.print(render(summary))


def _plan_or_exit(recipe: str, set_) -> None:
    """Print the recipe's memory plan; a stage that does not fit its GPUs stops here (exit 1, one line per stage)."""
    # lazy: kept out of `qwenflow --help` start-up (32 ms)
    from qwenflow.plan import PlanRefused, check, plan_recipe, render

    with clean_errors():
        r = load_recipe(recipe, list(set_ or []))
        plans = plan_recipe(r)
    console.print(render(plans, r.name))
    try:
        check(plans)
    except PlanRefused as e:
        for line in str(e).splitlines():
            err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command("compile")
def compile_cmd(
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Pipeline YAML to write")] = Path("qwen25_recipe.yaml"),
    pvc: Annotated[str, typer.Option(help="Existing ReadWriteMany PVC shared by every stage")] = "qwenflow-work",
    mlflow_secret: Annotated[
        str, typer.Option(help="Secret with MLFLOW_TRACKING_URI/USERNAME/PASSWORD")
    ] = "mlflow-credentials",
):
    """Write the pipeline YAML for a recipe; upload it in the Kubeflow UI (Pipelines -> Upload pipeline)."""
    # lazy: imports kfp, kubernetes (seconds to import)
    from qwenflow.pipelines.kubernetes import ClusterSettings
    from qwenflow.pipelines.qwen25_recipe import compile_pipeline

    _plan_or_exit(recipe, set_)
    with clean_errors():
        compile_pipeline(recipe, str(out), list(set_ or []), ClusterSettings(pvc=pvc, mlflow_secret=mlflow_secret))
    console.print(f"wrote {out} (recipe {recipe}); upload it in the Kubeflow UI or run `qwenflow submit`")


@app.command("submit")
def submit_cmd(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline")],
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment")] = "qwenflow",
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
    pvc: Annotated[str, typer.Option(help="Existing ReadWriteMany PVC shared by every stage")] = "qwenflow-work",
    mlflow_secret: Annotated[
        str, typer.Option(help="Secret with MLFLOW_TRACKING_URI/USERNAME/PASSWORD")
    ] = "mlflow-credentials",
    service_account: Annotated[
        str, typer.Option(help="Service account the steps run as (infra/ defines it; it may launch TrainJobs/RayJobs)")
    ] = "qwenflow-pipeline",
):
    """Compile and start a run on a KFP cluster; prints the run id for `qwenflow status`."""

    # lazy: imports kfp, kubernetes (seconds to import)
    import kfp

    from qwenflow.pipelines.kubernetes import ClusterSettings
    from qwenflow.pipelines.qwen25_recipe import compile_pipeline

    _plan_or_exit(recipe, set_)
    with clean_errors():
        with tempfile.TemporaryDirectory() as tmp:
            path = compile_pipeline(
                recipe,
                str(Path(tmp) / "pipeline.yaml"),
                list(set_ or []),
                ClusterSettings(pvc=pvc, mlflow_secret=mlflow_secret),
            )
            try:
                client = kfp.Client(host=host, namespace=namespace)
                run = client.create_run_from_pipeline_package(
                    path,
                    arguments={},
                    experiment_name=experiment,
                    run_name=f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}",
                    namespace=namespace,
                    service_account=service_account,
                )
            except Exception as e:  # connection refused, auth, bad host: one readable line
                raise ValueError(f"could not submit to {host}: {type(e).__name__}: {e}") from None
    console.print(
        f"submitted run {run.run_id} to {host} (experiment {experiment}); follow it with "
        f"`qwenflow status {run.run_id} --host {host}`"
    )


@app.command("status")
def status_cmd(
    run_id: Annotated[str, typer.Argument(help="KFP run id")],
    host: Annotated[str, typer.Option(help="KFP API endpoint")],
    follow: Annotated[bool, typer.Option("--follow/--once", help="Poll until the run ends")] = True,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace")] = None,
):
    """Show a cluster run's state and its tasks; with --follow, until it ends."""
    # lazy: imports kfp, kubernetes (seconds to import)
    import kfp
    from rich.table import Table

    with clean_errors():
        try:
            client = kfp.Client(host=host, namespace=namespace)
            while True:
                run = client.get_run(run_id)
                table = Table("task", "state", title=f"run {run_id}: {run.state}")
                for t in (run.run_details.task_details if run.run_details else None) or []:
                    table.add_row(t.display_name or t.task_id, str(t.state))
                console.print(table)
                if not follow or run.state in ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"):
                    break
                time.sleep(15)
        except Exception as e:
            raise ValueError(f"could not read run {run_id} from {host}: {type(e).__name__}: {e}") from None
    if run.state == "FAILED":
        raise typer.Exit(1)
