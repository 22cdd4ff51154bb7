"""GRPO with TRL's GRPOTrainer: rewards are a weighted sum of a reward model's score and the verifiers' scores
(recipe `grpo.reward_weights`), prompts are visited in order of their reward variance, highest first, recomputed
each epoch (the report's ordering), and KL to the reference uses the recipe's beta.

Why a custom sampler: TRL's RepeatSampler only shuffles. Prompts whose group rewards all agree give zero
advantage, so no gradient; visiting high-variance prompts first spends compute where the signal is. The variance
comes from the rewards GRPO already computes (recorded as the reward functions run), so it costs nothing extra.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Sampler

from qwenflow.artifacts import read_lineage
from qwenflow.models import io
from qwenflow.tracking import main_mlflow as mlflow
from qwenflow.tracking import stage_run
from qwenflow.verifiers.format import format_reward
from qwenflow.verifiers.guard import GuardedReward
from qwenflow.verifiers.tasks import TaskVerifier

from . import common
from .checkpoints import atomic_checkpoints, read_extra_state, resume_point
from .fused_head import compact_fused_lm_head
from .heldout_gain import HeldoutExactMatch
from .scoring import RewardScorer

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- prompt ordering by reward variance


class VarianceTracker:
    """Per-prompt variance of the total (weighted) reward over its latest group of generations."""

    def __init__(self, weights: dict[str, float]):
        self.weights = weights
        self.variance: dict[int, float] = {}
        self._batch: dict[str, tuple[list[int], list[float | None]]] = {}

    def record(self, name: str, prompt_idx: list[int], values: list[float | None]) -> None:
        self._batch[name] = (list(prompt_idx), values)
        if len(self._batch) < len(self.weights):
            return
        idx = self._batch[name][0]
        total = np.zeros(len(idx))
        for fname, (_, vals) in self._batch.items():
            total += self.weights[fname] * np.array([np.nan if v is None else v for v in vals], dtype=float)
        self._batch = {}
        groups: dict[int, list[float]] = {}
        for i, r in zip(idx, total):
            groups.setdefault(int(i), []).append(r)
        for i, rs in groups.items():
            finite = [r for r in rs if math.isfinite(r)]
            self.variance[i] = float(np.var(finite)) if len(finite) > 1 else 0.0

    def zero_variance_share(self) -> float:
        return float(np.mean([v == 0.0 for v in self.variance.values()])) if self.variance else float("nan")


class Recorded:
    """A reward function that also reports its scores to the tracker (keyed by the dataset's prompt_idx)."""

    def __init__(self, fn: Callable, tracker: VarianceTracker):
        self.fn, self.tracker, self.__name__ = fn, tracker, fn.__name__

    def __call__(self, completions, prompt_idx, **kwargs):
        out = self.fn(completions, prompt_idx=prompt_idx, **kwargs)
        self.tracker.record(self.__name__, prompt_idx, out)
        return out


class VarianceOrderedSampler(Sampler):
    """RepeatSampler's layout (each prompt num_generations times, each chunk repeated for the steps that reuse
    it), but the prompt order is: never-scored prompts first (shuffled), then by last reward variance, highest first."""

    def __init__(
        self,
        n: int,
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int,
        tracker: VarianceTracker | None,
        seed: int = 0,
    ):
        self.n, self.mini, self.bs, self.rep, self.tracker, self.seed = (
            n,
            mini_repeat_count,
            batch_size,
            repeat_count,
            tracker,
            seed,
        )
        self.epoch = 0
        self.current: tuple[int, list[int]] | None = None  # (epoch, its prompt order): what a checkpoint keeps
        self._resumed: dict[int, list[int]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        epoch = self.epoch
        self.epoch += 1
        if epoch in self._resumed:
            # Resumed mid-epoch: the order was fixed from the variances at the epoch's start, which have moved since.
            perm = self._resumed.pop(epoch)
        else:
            g = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
            if self.tracker is not None:
                var = self.tracker.variance
                perm.sort(key=lambda i: -var.get(i, math.inf))  # stable: ties keep the random order
        self.current = (epoch, perm)
        return perm

    def state(self) -> dict:
        """The current epoch's prompt order and the per-prompt variances (JSON): saved with each checkpoint."""
        variance = self.tracker.variance if self.tracker is not None else {}
        return {
            "epoch": self.current[0] if self.current else None,
            "order": self.current[1] if self.current else None,
            "variance": {str(k): v for k, v in variance.items()},
        }

    def restore(self, state: dict) -> None:
        if state.get("order") is not None:
            self._resumed[int(state["epoch"])] = [int(i) for i in state["order"]]
        if self.tracker is not None:
            self.tracker.variance = {int(k): float(v) for k, v in state.get("variance", {}).items()}

    def __iter__(self):
        perm = self.order()
        for start in range(0, self.n - self.bs + 1, self.bs):
            chunk = perm[start : start + self.bs]
            for _ in range(self.rep):
                for i in chunk:
                    for _ in range(self.mini):
                        yield i

    def __len__(self) -> int:
        return (self.n // self.bs) * self.bs * self.mini * self.rep


def _trainer_class():
    # lazy: imports mlflow, transformers, trl (seconds to import)
    from trl import GRPOTrainer

    compact_fused_lm_head()

    class QwenflowGRPOTrainer(GRPOTrainer):
        """GRPOTrainer with the variance-ordered sampler and a generation-time counter (for the benchmark)."""

        tracker: VarianceTracker | None = None
        gen_seconds = 0.0
        gen_tokens = 0
        sampler: VarianceOrderedSampler | None = None
        resume_state: dict | None = None  # the sampler's state from the checkpoint being resumed
        prompt_log: Path | None = None  # rank 0 appends {step, prompt_idx} per generation batch

        def _get_train_sampler(self, dataset=None):
            if self.tracker is None:
                return super()._get_train_sampler(dataset)
            dataset = dataset if dataset is not None else self.train_dataset
            self.sampler = VarianceOrderedSampler(
                len(dataset),
                self.num_generations,
                self.args.generation_batch_size // self.num_generations,
                self.num_iterations * self.args.steps_per_generation,
                self.tracker,
                seed=self.args.seed,
            )
            if self.resume_state:
                self.sampler.restore(self.resume_state)
            return self.sampler

        def sampler_state(self) -> dict:
            return self.sampler.state() if self.sampler is not None else {}

        def _generate_and_score_completions(self, inputs):
            if self.prompt_log is not None and self.model.training and self.accelerator.is_main_process:
                with open(self.prompt_log, "a", encoding="utf-8") as f:
                    f.write(
                        json.dumps(
                            {"step": self.state.global_step + 1, "prompt_idx": [int(x["prompt_idx"]) for x in inputs]}
                        )
                        + "\n"
                    )
            return super()._generate_and_score_completions(inputs)

        def _generate(self, prompts):
            t = time.perf_counter()
            out = super()._generate(prompts)
            self.gen_seconds += time.perf_counter() - t
            self.gen_tokens += sum(len(ids) for ids in out[1])
            return out

    return QwenflowGRPOTrainer


# ---------------------------------------------------------------- rewards


class RewardModelScore:
    """Score of a sequence-classification reward model (the reward stage's output) on prompt + completion, squashed
    to (0, 1) by a sigmoid: the verifier's rewards are 0/1, and a raw logit (its scale is arbitrary, often several
    units) would outweigh them whatever grpo.reward_weights says. Rankings are unchanged."""

    __name__ = "reward_model"

    def __init__(self, model_dir: str | Path, batch_size: int = 64):
        self.scorer = RewardScorer(model_dir, batch_size=batch_size, max_length=None)

    def __call__(self, completions, prompts, **kwargs) -> list[float]:
        conversations = [
            list(p) + (list(c) if isinstance(c, list) else [{"role": "assistant", "content": str(c)}])
            for p, c in zip(prompts, completions)
        ]
        return torch.sigmoid(torch.tensor(self.scorer(conversations))).tolist()


def reward_model_trusted(reward_model_dir, min_accuracy: float) -> bool:
    """False (with a warning) when the reward model's recorded held-out pairwise accuracy is below `min_accuracy`.

    Measured on the tiny chain: a reward model at 0.545 accuracy, weighted like the verifier, took GRPO's reward from
    0.12 to 0.50 while exact match fell 8% -> 2.5% (the policy learned the reward model's noise)."""
    acc = read_lineage(reward_model_dir).get("reward/pairwise_accuracy")
    if acc is None or acc >= min_accuracy:
        return True
    log.warning(
        "reward model %s: held-out pairwise accuracy %.3f < grpo.min_reward_model_accuracy %.2f; GRPO leaves "
        "it out and uses the verifiers only (set the minimum to 0 to use it anyway)",
        reward_model_dir,
        acc,
        min_accuracy,
    )
    return False


def reward_functions(spec, reward_model_dir=None, tracker: VarianceTracker | None = None):
    """(functions, weights, guards) for the sources with non-zero weight; reward_model needs a reward model dir."""
    sources: dict[str, Callable] = {}
    for name, w in spec.reward_weights.items():
        if w == 0:
            continue
        if name == "reward_model":
            if reward_model_dir is None:
                log.warning("grpo.reward_weights has reward_model but no reward model was given: verifiers only")
                continue
            if not reward_model_trusted(reward_model_dir, spec.min_reward_model_accuracy):
                continue
            sources[name] = RewardModelScore(reward_model_dir)
        elif name == "verifier":
            sources[name] = TaskVerifier()
        elif name == "format":
            sources[name] = format_reward
    if not sources:
        raise ValueError("GRPO has no reward source: give a reward model or a non-zero verifier/format weight")
    guards = {n: GuardedReward(f, n, spec.reward_on_error, spec.reward_timeout_s) for n, f in sources.items()}
    weights = {n: spec.reward_weights[n] for n in guards}
    if tracker is not None:
        tracker.weights = weights
    funcs = [Recorded(g, tracker) if tracker is not None else g for g in guards.values()]
    return funcs, [weights[n] for n in guards], guards


# ---------------------------------------------------------------- data


def load_prompts(data_dir, tok, max_prompt_tokens: int) -> tuple[pd.DataFrame, int]:
    """rl/prompts.parquet with a prompt_idx column; prompts too long for the context are dropped and counted."""
    rows = common.read_dataset(data_dir, "rl")
    lengths = [common.chat_token_count(tok, p, add_generation_prompt=True) for p in rows["prompt"]]
    rows, dropped = common.drop_too_long(
        rows,
        lengths,
        max_prompt_tokens,
        str(data_dir),
        what="RL prompts",
        fix="the limit is the context minus grpo.max_completion_length: shorten the prompts or raise grpo.max_seq_len",
    )
    rows["prompt_idx"] = np.arange(len(rows))
    return rows, dropped


def grpo_config(spec, out_dir, stops: list[int], weights: list[float]):
    # lazy: imports transformers, trl, peft (844 ms)
    from trl import GRPOConfig

    kw = common.trainer_defaults(spec, out_dir)
    return GRPOConfig(
        **kw,
        num_generations=spec.num_generations,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        beta=spec.beta,
        reward_weights=weights,
        # Advantages divided by the batch's reward std, not each group's: per-group scaling blew the reward model's
        # small score differences up to full-size advantages in groups where the verifier's rewards all agreed, and on
        # the test chain took the verifier's reward 0.43 -> 0.375 while the reward model's rose (reward hacking).
        scale_rewards="batch",
        lr_scheduler_type="cosine",
        # `<|im_end|>` must stop generation: without it the tiny model's completions ran on to the length limit and
        # the exact-answer verifier scored them 0
        generation_kwargs={"eos_token_id": stops},
        shuffle_dataset=True,
        log_completions=False,
    )


def _sampled(model, tok, data_dir, spec) -> dict[str, float]:
    return common.sampled_reward(
        model,
        tok,
        data_dir,
        samples=spec.num_generations,
        temperature=spec.temperature,
        max_new_tokens=spec.max_completion_length,
        seed=spec.seed,
    )


def _phase_mean(history: list[dict], key: str, first: bool, share: float = 0.1) -> float:
    vals = [h[key] for h in history if key in h]
    if not vals:
        return float("nan")
    k = max(1, int(len(vals) * share))
    return float(np.mean(vals[:k] if first else vals[-k:]))


def run_grpo(recipe, data_dir, model_dir, out_dir, reward_model_dir=None, *, resume: bool = False) -> Path:
    """GRPO on `data_dir/rl`; exact match on `data_dir/eval` before and after; returns the model dir.

    resume: continue from the newest complete checkpoint under out_dir/trainer, with the prompt order, variances and
    RNG streams it saved. Every generation batch's prompts are appended to out_dir/trainer/prompt_order.jsonl."""
    # lazy: imports datasets, pyarrow (354 ms)
    from datasets import Dataset

    spec = recipe.grpo
    out_dir = Path(out_dir)
    model, tok, start = common.starting_model(spec.init_from or model_dir, distributed=spec.distributed)
    max_prompt = min(spec.max_seq_len, common.max_context(model)) - spec.max_completion_length
    rows, dropped = load_prompts(data_dir, tok, max_prompt)
    tracker = VarianceTracker(dict(spec.reward_weights)) if spec.order_by_variance else None
    funcs, weights, guards = reward_functions(spec, reward_model_dir, tracker)
    lineage = common.model_lineage(
        "grpo", start, data_dir, ["rl", "eval"], **({"reward_model": str(reward_model_dir)} if reward_model_dir else {})
    )
    has_eval = (Path(data_dir) / "eval").is_dir()
    heldout = HeldoutExactMatch(data_dir, max_new_tokens=spec.max_completion_length)
    cfg = grpo_config(spec, out_dir / "trainer", common.stop_token_ids(tok), weights)
    ds = Dataset.from_pandas(rows, preserve_index=False)

    with stage_run(
        "grpo",
        recipe,
        params={
            **lineage,
            "data.rl.rows": len(rows),
            "data.rl.dropped_too_long": dropped,
            "reward_sources": ",".join(guards),
        },
    ):
        mlflow.log_metric("data/dropped_too_long", dropped)
        # beta > 0 needs a reference model: TRL 1.16 builds it only from a saved model directory (a model id string).
        trainer = _trainer_class()(
            model=str(start) if spec.beta > 0 else model,
            reward_funcs=funcs,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            callbacks=[
                common.mlflow_metrics("grpo"),
                atomic_checkpoints(spec.keep_checkpoints, lambda: trainer.sampler_state()),
            ],
        )
        trainer.tracker = tracker
        trainer.prompt_log = out_dir / "trainer" / "prompt_order.jsonl"
        result: dict = {}
        if has_eval:
            result.update(heldout.before(trainer.model, tok))
            result["sampled_reward_before"] = _sampled(trainer.model, tok, data_dir, spec)
            mlflow.log_metrics(
                {f"eval/{t}/sampled_reward_before": v for t, v in result["sampled_reward_before"].items()}
            )
        t0 = time.perf_counter()
        start_from = resume_point(out_dir / "trainer", resume)
        trainer.resume_state = read_extra_state(start_from)
        trainer.prompt_log.parent.mkdir(parents=True, exist_ok=True)
        trainer.train(resume_from_checkpoint=start_from)
        train_s = time.perf_counter() - t0
        hist = trainer.state.log_history
        # Each source's training reward at the start and end: the verifier's must not fall while the reward model's
        # rises (that would be the policy exploiting the reward model, not solving the task).
        for n in guards:
            result[f"reward_{n}_start"] = _phase_mean(hist, f"rewards/{n}/mean", True)
            result[f"reward_{n}_end"] = _phase_mean(hist, f"rewards/{n}/mean", False)
        result.update(
            reward_start=_phase_mean(hist, "reward", True),
            reward_end=_phase_mean(hist, "reward", False),
            zero_variance_start=_phase_mean(hist, "frac_reward_zero_std", True),
            zero_variance_end=_phase_mean(hist, "frac_reward_zero_std", False),
            generation_seconds=trainer.gen_seconds,
            train_seconds=train_s,
            generated_tokens=trainer.gen_tokens,
            reward_failures={n: dict(g.failures) for n, g in guards.items()},
        )
        if tracker is not None:
            result["zero_variance_prompts"] = tracker.zero_variance_share()
        mlflow.log_metrics({k: v for k, v in result.items() if isinstance(v, float) and math.isfinite(v)})
        for n, g in guards.items():
            for kind, c in g.failures.items():
                mlflow.log_metric(f"reward_failures/{n}/{kind}", c)
        if has_eval:
            result.update(heldout.after(trainer.model, tok))
            if "reward_model" in guards:  # the reward model's mean score of the greedy held-out answers
                for when, tab in heldout.tables.items():
                    result[f"heldout_reward_model_{when}"] = float(
                        np.mean(
                            guards["reward_model"].fn(
                                list(tab["completion"]), [[{"role": "user", "content": q}] for q in tab["prompt"]]
                            )
                        )
                    )
                    mlflow.log_metric(f"eval/heldout_reward_model_{when}", result[f"heldout_reward_model_{when}"])
            result["sampled_reward_after"] = _sampled(trainer.model, tok, data_dir, spec)
            mlflow.log_metrics({f"eval/{t}/sampled_reward_after": v for t, v in result["sampled_reward_after"].items()})
        model_out = out_dir / "model"
        io.save(trainer.model, tokenizer=tok, out_dir=model_out, recipe=recipe, lineage={**lineage, **result})
        mlflow.set_tag("qwenflow.model_dir", str(model_out.resolve()))
        common.log_json(result, "grpo_result.json")
    return model_out
