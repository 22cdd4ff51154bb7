"""The end of a training stage: the model directory, the loss-curve plot, and what goes to MLflow."""

from __future__ import annotations

import json
from pathlib import Path

from qwenflow.artifacts import sha256_path
from qwenflow.tracking.model_source import RUN_SHA256_TAG

from .engine import METRICS


def save_model(model, state_dict, tokenizer, out_dir: Path, *, recipe, lineage: dict) -> Path:
    """save_pretrained (safetensors) from the gathered state dict, plus tokenizer, recipe and lineage, into the
    engine's output directory (beside its checkpoints and metrics)."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.models import io

    return io.save(
        model, out_dir, tokenizer=tokenizer, recipe=recipe, lineage=lineage, state_dict=state_dict, atomic=False
    )


def loss_plot(out_dir: Path, title: str) -> Path:
    # lazy: imports matplotlib, numpy (228 ms)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: imports matplotlib, numpy (seconds to import)
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out_dir / METRICS).read_text().splitlines()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="held-out loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path = out_dir / "loss_curve.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_checkpoint(path: Path, step: int) -> None:
    """Reference a checkpoint in MLflow by path (the weights stay on disk; they are large). Not hashed: rank 0 would
    hash gigabytes while the other ranks wait in the next step's collective (the NCCL-timeout-on-save failure);
    the final model directory is hashed once training is over."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    if mlflow.active_run():
        mlflow.set_tag(f"checkpoint.{step}", str(path.resolve()))
        mlflow.log_dict({"path": str(path.resolve()), "step": step}, f"checkpoints/step-{step}.json")


def log_model_dir(out_dir: Path, summary: dict) -> None:
    """Log the final model with its tokenizer as run artifacts under model/ (plain files: mlflow.transformers
    needs torchvision or hand-written pip requirements, and the registry stage registers this directory)."""
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    if not mlflow.active_run():
        return
    for f in sorted(out_dir.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name not in (METRICS, "loss_curve.png"):
            mlflow.log_artifact(str(f), "model")
    mlflow.log_artifact(str(out_dir / METRICS))
    mlflow.log_artifact(str(out_dir / "loss_curve.png"))
    mlflow.set_tag(RUN_SHA256_TAG, sha256_path(out_dir))  # what resolve checks a runs:/ download against
    mlflow.log_dict(summary, "summary.json")
    mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
