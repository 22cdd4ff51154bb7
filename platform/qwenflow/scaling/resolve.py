"""Turn `learning_rate: auto` / `global_batch_size: auto` into numbers from the latest fit in MLflow."""

from __future__ import annotations

from qwenflow.recipe import Recipe

from .fit import EXPERIMENT, FIT_TAG, ScalingFit


class NoScalingFit(RuntimeError):
    """No fit is tracked yet."""


def latest_fit(experiment: str = EXPERIMENT) -> tuple[ScalingFit, str]:
    """The newest fit logged by `qwenflow scaling fit`, and its MLflow run id."""
    # lazy: imports mlflow, pyarrow (seconds to import)
    import mlflow

    from qwenflow.tracking import connect, tracking_uri

    connect()
    exp = mlflow.get_experiment_by_name(experiment)
    runs = (
        []
        if exp is None
        else mlflow.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{FIT_TAG}` = 'true' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
    )
    if not runs:
        raise NoScalingFit(
            f"no scaling-law fit in MLflow at {tracking_uri()} (experiment {experiment!r}): run "
            "`qwenflow scaling sweep` then `qwenflow scaling fit`, or give pretrain.learning_rate / "
            "pretrain.global_batch_size as numbers"
        )
    run = runs[0]
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/fit.json")
    return ScalingFit.from_json(text), run.info.run_id


def resolve_auto(recipe: Recipe) -> tuple[Recipe, dict]:
    """A copy of the recipe with `auto` pre-training hyperparameters replaced, and what was used (for logging)."""
    p = recipe.pretrain
    if p.learning_rate != "auto" and p.global_batch_size != "auto":
        return recipe, {}
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.models import model_size

    fit, run_id = latest_fit()
    size = model_size(recipe.model, p.seq_len)
    n = size.active_params - size.embedding_params
    batch_seqs = p.global_batch_size if isinstance(p.global_batch_size, int) else None  # None: "auto"
    # Tokens the run will see; with an auto batch, iterate once so D uses the predicted batch.
    for _ in range(2):
        seqs = batch_seqs or p.micro_batch_size
        d = float(p.max_steps * seqs * p.seq_len)
        pred = fit.predict(n, d)
        for field_name, key in (("learning_rate", "learning_rate"), ("global_batch_size", "batch_tokens")):
            if getattr(p, field_name) == "auto" and pred[key] is None:
                raise NoScalingFit(
                    f"the scaling fit in run {run_id} cannot give pretrain.{field_name}: "
                    f"{pred['notes'][key]}; widen the sweep grid or set a number"
                )
        if p.global_batch_size == "auto":
            raw = pred["batch_tokens"] / p.seq_len
            batch_seqs = max(p.micro_batch_size, int(round(raw / p.micro_batch_size)) * p.micro_batch_size)
    assert batch_seqs is not None  # a number, or "auto" resolved by the loop
    lr = pred["learning_rate"] if p.learning_rate == "auto" else p.learning_rate
    resolved = recipe.model_copy(deep=True)
    resolved.pretrain.learning_rate = float(lr)
    resolved.pretrain.global_batch_size = int(batch_seqs)
    info = {
        "scaling_fit_run_id": run_id,
        "scaling_n_params": n,
        "scaling_tokens": d,
        "auto_learning_rate": float(lr),
        "auto_global_batch_size": int(batch_seqs),
        "predicted_lr_interval": pred["learning_rate_interval"],
        "predicted_batch_tokens_interval": pred["batch_tokens_interval"],
        "lr_law": pred["learning_rate_law"],
        "batch_law": pred["batch_tokens_law"],
        "fit_notes": pred["notes"],
    }
    return resolved, info
