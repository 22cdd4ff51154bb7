"""Reward model: TRL's RewardTrainer on preference pairs, judged by pairwise accuracy on the held-out split.

The result is a save_pretrained AutoModelForSequenceClassification directory (one logit = the reward), which
DPO and GRPO score completions with (through qwenflow.posttrain.scoring, as this stage's held-out accuracy does).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import torch
from transformers import set_seed

from qwenflow.models import io
from qwenflow.tracking import main_mlflow as mlflow
from qwenflow.tracking import stage_run
from qwenflow.tracking.model_source import resolve

from .checkpoints import atomic_checkpoints, resume_point
from .common import (
    DataError,
    load_chat_tokenizer,
    log_json,
    mlflow_metrics,
    model_lineage,
    read_dataset,
    trainer_defaults,
)
from .scoring import score_conversations

log = logging.getLogger(__name__)


def _text_of(messages) -> str:
    return "\n".join(f"{m['role']}:{m['content']}" for m in messages)


def clean_pairs(df: pd.DataFrame, where: str) -> tuple[pd.DataFrame, int]:
    """Drop pairs whose chosen and rejected answers are identical (no preference to learn); return the count."""
    same = [_text_of(c) == _text_of(r) for c, r in zip(df["chosen"], df["rejected"])]
    dropped = int(sum(same))
    if dropped:
        log.warning("%s: dropped %d of %d pairs whose chosen == rejected", where, dropped, len(df))
    kept = df[[not s for s in same]].reset_index(drop=True)
    if len(kept) == 0:
        raise DataError(f"{where}: every one of {len(df)} preference pairs has chosen == rejected; nothing to learn")
    return kept, dropped


def read_preferences(data_dir: str | Path, heldout_fraction: float, seed: int = 0):
    """(train, test, counts): `preferences/test.parquet` is the held-out split; without it, hold out a fraction."""
    d = Path(data_dir)
    pref = d / "preferences" if (d / "preferences").is_dir() else d
    train = read_dataset(data_dir, "preferences")
    if (pref / "test.parquet").is_file():
        test = read_dataset(data_dir, "preferences", split="test")
    else:
        test = train.sample(frac=heldout_fraction, random_state=seed)
        train = train.drop(test.index).reset_index(drop=True)
        test = test.reset_index(drop=True)
        if len(test) == 0 or len(train) == 0:
            raise DataError(f"{pref}: too few pairs ({len(train) + len(test)}) to hold out {heldout_fraction:.0%}")
    train, d_train = clean_pairs(train, str(pref / "train.parquet"))
    test, d_test = clean_pairs(test, str(pref / "test"))
    return (
        train,
        test,
        {"pairs.train": len(train), "pairs.test": len(test), "pairs.dropped_identical": d_train + d_test},
    )


def trl_pairs(df: pd.DataFrame):
    """A datasets.Dataset in TRL's conversational preference format (explicit prompt)."""
    # lazy: imports datasets, pyarrow (484 ms)
    from datasets import Dataset

    return Dataset.from_dict(
        {"prompt": list(df["prompt"]), "chosen": list(df["chosen"]), "rejected": list(df["rejected"])}
    )


def pairwise_wins(model, tok, df: pd.DataFrame, *, max_length: int = 1024) -> list[bool]:
    """Per pair: does the chosen answer score strictly above the rejected one?"""
    chosen = score_conversations(
        model, tok, [list(p) + list(c) for p, c in zip(df["prompt"], df["chosen"])], max_length=max_length
    )
    rejected = score_conversations(
        model, tok, [list(p) + list(r) for p, r in zip(df["prompt"], df["rejected"])], max_length=max_length
    )
    return [c > r for c, r in zip(chosen, rejected)]


def pairwise_accuracy(model, tok, df: pd.DataFrame, *, max_length: int = 1024) -> float:
    """Share of pairs where the chosen answer scores strictly above the rejected one."""
    return float(sum(pairwise_wins(model, tok, df, max_length=max_length))) / max(1, len(df))


def accuracy_by_criterion(model, tok, df: pd.DataFrame, *, max_length: int = 1024) -> dict[str, dict]:
    """{"all": {accuracy, stderr, n}, <criterion>: {...}} over the pairs' `criterion` column (all only without it)."""

    wins = pairwise_wins(model, tok, df, max_length=max_length)
    groups = {"all": wins}
    if "criterion" in df.columns:
        for c in sorted(set(df["criterion"])):
            groups[str(c)] = [w for w, k in zip(wins, df["criterion"]) if k == c]
    out = {}
    for name, ws in groups.items():
        acc = sum(ws) / max(1, len(ws))
        out[name] = {"accuracy": acc, "stderr": math.sqrt(acc * (1 - acc) / max(1, len(ws))), "n": len(ws)}
    return out


def load_reward_model(model_dir: str | Path, distributed=None):
    """(model, tokenizer) of a reward model directory (or a causal LM to start one from: a fresh 1-logit head)."""

    path = resolve(model_dir)
    tok = load_chat_tokenizer(path)
    model = io.load_reward_model(path, num_labels=1, dtype=torch.float32, distributed=distributed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


def run_reward(
    recipe, data_dir: str | Path, model_dir: str | Path, out_dir: str | Path, *, resume: bool = False
) -> Path:
    """Train a reward model from `model_dir` on `data_dir/preferences`; returns out_dir/model. resume: continue from
    the newest complete checkpoint under out_dir/trainer."""
    # lazy: imports transformers, trl, datasets (seconds to import)
    from trl import RewardConfig, RewardTrainer

    spec = recipe.reward
    out_dir = Path(out_dir)
    start = resolve(spec.init_from or model_dir)
    train, test, counts = read_preferences(data_dir, spec.heldout_fraction, spec.seed)
    lineage = model_lineage("reward", start, data_dir, ["preferences"], **counts)
    set_seed(spec.seed)  # the new score head is random: seed it
    with stage_run("reward", recipe, params=lineage):
        model, tok = load_reward_model(start, distributed=spec.distributed)
        before = accuracy_by_criterion(model, tok, test, max_length=spec.max_seq_len)
        args = RewardConfig(
            **trainer_defaults(spec, out_dir / "trainer"), max_length=spec.max_seq_len, disable_dropout=True
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=trl_pairs(train),
            processing_class=tok,
            callbacks=[mlflow_metrics("reward"), atomic_checkpoints(spec.keep_checkpoints)],
        )
        trainer.train(resume_from_checkpoint=resume_point(out_dir / "trainer", resume))
        after = accuracy_by_criterion(model, tok, test, max_length=spec.max_seq_len)
        train_acc = pairwise_accuracy(model, tok, train.head(len(test)), max_length=spec.max_seq_len)
        acc = after["all"]["accuracy"]
        metrics = {
            "reward/pairwise_accuracy": acc,
            "reward/pairwise_accuracy_stderr": after["all"]["stderr"],
            "reward/pairwise_accuracy_before": before["all"]["accuracy"],
            "reward/pairwise_accuracy_train": train_acc,
        }
        # Per criterion (correct, concise, on_topic, format): the table people look at, and the lineage's record.
        for c in after:
            if c != "all":
                metrics[f"reward/pairwise_accuracy/{c}"] = after[c]["accuracy"]
                metrics[f"reward/pairwise_accuracy_before/{c}"] = before[c]["accuracy"]
        mlflow.log_metrics(metrics)
        if mlflow.active_run() is not None:
            mlflow.log_table(
                data=pd.DataFrame(
                    [
                        {
                            "criterion": c,
                            "n": after[c]["n"],
                            "accuracy_before": before[c]["accuracy"],
                            "accuracy": after[c]["accuracy"],
                            "stderr": after[c]["stderr"],
                        }
                        for c in after
                    ]
                ),
                artifact_file="reward_accuracy_by_criterion.json",
            )
        log_json({**counts, **metrics, "by_criterion": after}, "reward_report.json")
        log.info(
            "reward model: held-out pairwise accuracy %.3f +- %.3f (untrained head %.3f); by criterion: %s",
            acc,
            after["all"]["stderr"],
            before["all"]["accuracy"],
            ", ".join(f"{c} {v['accuracy']:.3f}" for c, v in after.items() if c != "all"),
        )
        model_out = out_dir / "model"
        io.save(model, tokenizer=tok, out_dir=model_out, recipe=recipe, lineage={**lineage, **metrics})
        mlflow.log_artifacts(str(model_out), "model")  # versioned with the run
        mlflow.set_tag("qwenflow.model_dir", str(model_out.resolve()))
    return model_out
