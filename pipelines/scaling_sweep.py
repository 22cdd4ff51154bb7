"""The hyperparameter scaling-law sweep as a KFP pipeline: prepare once, one task per grid point in a ParallelFor
(points already finished in MLflow are reused), then fit the laws and log the report."""
# No `from __future__ import annotations`: KFP reads the pipeline signature's annotations as real types.

from kfp import dsl

from qwenflow.components import DEFAULT_BASE_IMAGE, component
from qwenflow.recipe.base import Resources

from .kubernetes import ClusterSettings, apply

PIPELINE_NAME = "scaling-sweep"
POINT = Resources(cpu="4", memory="16Gi", gpus=1, gpu_type="nvidia.com/gpu", retries=2)


def build_pipeline(
    image: str = DEFAULT_BASE_IMAGE,
    *,
    kubernetes: bool = True,
    parallelism: int = 8,
    point_resources: Resources = POINT,
    cluster: ClusterSettings | None = None,
):
    cluster = cluster or ClusterSettings(image=image)
    prepare, point, fit = (component(n, image) for n in ("scaling_prepare", "scaling_point", "scaling_fit"))

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Scaling-law sweep: short pre-training runs over a model ladder x "
        "data sizes x learning rates x batch sizes, then fitted LR/batch/loss laws in MLflow.",
    )
    # B006 allowed: KFP reads a list default as the pipeline parameter's default; the body runs once, at compile time
    def scaling_sweep(grid: str = "tiny", models: list = [], sweep_filter: str = ""):  # noqa: B006
        """Sweep a grid and fit the laws.

        Args:
            grid: Shipped grid (tiny) or a grid YAML path in the image.
            models: Only these ladder models (empty: all).
            sweep_filter: Fit only points of this sweep name (empty: every point in MLflow).
        """
        prep = prepare(grid=grid, models=models).set_display_name("scaling-prepare")
        with dsl.ParallelFor(prep.outputs["Output"], parallelism=parallelism) as key:
            p = point(
                grid=grid, point_key=key, data=prep.outputs["data"], tokenizer_dir=prep.outputs["tokenizer_dir"]
            ).set_display_name("scaling-point")
            p.set_caching_options(False)  # reuse is decided by MLflow (points from any machine), not by KFP
            if kubernetes:
                apply(p, point_resources, cluster)
        f = fit(grid=grid, sweep=sweep_filter).after(p).set_display_name("scaling-fit")
        f.set_caching_options(False)
        if kubernetes:
            apply(prep, Resources(cpu="4", memory="16Gi"), cluster)
            apply(f, Resources(cpu="2", memory="8Gi"), cluster)

    return scaling_sweep
