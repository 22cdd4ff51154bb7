"""The end of a training stage: the model directory, the loss-curve plot, and what goes to MLflow."""
from __future__ import annotations

import json
from pathlib import Path

from qwenflow.artifacts import LINEAGE_FILE, RECIPE_FILE, atomic_write_text, sha256_path

from .engine import METRICS


def save_model(model, state_dict, tokenizer, out_dir: Path, *, recipe, lineage: dict) -> Path:
    """save_pretrained (safetensors) from the gathered state dict, plus tokenizer, recipe and lineage."""
    from qwenflow.recipe import recipe_to_yaml

    model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    atomic_write_text(out_dir / RECIPE_FILE, recipe_to_yaml(recipe))
    atomic_write_text(out_dir / LINEAGE_FILE, json.dumps(lineage, indent=2, default=str))
    return out_dir


def loss_plot(out_dir: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
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
    """Reference a checkpoint in MLflow by path and hash (the weights stay on disk; they are large)."""
    import mlflow

    if mlflow.active_run():
        digest = sha256_path(path)
        mlflow.set_tag(f"checkpoint.{step}", f"{path.resolve()} sha256:{digest}")
        mlflow.log_dict({"path": str(path.resolve()), "sha256": digest, "step": step}, f"checkpoints/step-{step}.json")


def log_model_dir(out_dir: Path, summary: dict) -> None:
    """Log the final model with its tokenizer as run artifacts under model/ (plain files: mlflow.transformers
    needs torchvision or hand-written pip requirements, and the registry stage registers this directory)."""
    import mlflow

    if not mlflow.active_run():
        return
    for f in sorted(out_dir.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name not in (METRICS, "loss_curve.png"):
            mlflow.log_artifact(str(f), "model")
    mlflow.log_artifact(str(out_dir / METRICS))
    mlflow.log_artifact(str(out_dir / "loss_curve.png"))
    mlflow.set_tag("qwenflow.model_sha256", sha256_path(out_dir))
    mlflow.log_dict(summary, "summary.json")
    mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
