"""DPO: TRL's DPOTrainer on rejection-sampled pairs, optimised with AdamW or an Online Merging Optimizer.

The starting model samples answers to `data_dir/rl` prompts; verifiers make (pass, fail) pairs, ranked by the reward
model when one is given; too few pairs falls back to `data_dir/preferences` (logged as the run's
`dpo.pairs_source`). The reference model is the starting model; the merging optimizer's reference delta is
start - base, the base being `dpo.merge_base` or the starting model's lineage parent.

What it is judged by: held-out pairs built the same way from the held-out eval prompts (never trained on), scored
before and after by the policy's implicit reward and its log-likelihood (preference_eval.py), and exact match.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from qwenflow.artifacts import read_lineage
from qwenflow.models import io
from qwenflow.tracking.model_source import resolve

from .checkpoints import atomic_checkpoints, resume_point
from .common import (
    DataError,
    load_causal_lm,
    log_json,
    mlflow_metrics,
    model_lineage,
    read_dataset,
    read_eval,
    starting_model,
    trainer_defaults,
)
from .fused_head import compact_fused_lm_head
from .heldout_gain import HeldoutExactMatch
from .online_merging import build_optimizer
from .preference_eval import completion_logprobs, preference_accuracy
from .rejection_sampling import rejection_sample, write_sampled
from .reward import clean_pairs, trl_pairs

log = logging.getLogger(__name__)


def merge_base_dir(spec, start: Path) -> Path | None:
    """The model the starting model was tuned from: dpo.merge_base, else its lineage parent, else None."""
    if spec.merge_base:
        return resolve(spec.merge_base)
    parent = read_lineage(start).get("parent_model")
    if parent and (Path(parent) / "config.json").is_file():
        return Path(parent)
    return None


def _base_state(base: Path | None):
    if base is None:
        return None
    return {k: v.detach() for k, v in load_causal_lm(base).state_dict().items()}


def _has_eval(data_dir: Path) -> bool:
    return (data_dir / "eval").is_dir() and any((data_dir / "eval").glob("*.parquet"))


def dpo_pairs(spec, model, tok, data_dir: Path, work: Path, scorer=None) -> tuple[pd.DataFrame, str, dict]:
    """(pairs, source, counts): rejection-sampled pairs, or preferences/ when sampling yields fewer than min_pairs."""
    prompts = read_dataset(data_dir, "rl")
    if spec.max_prompts and len(prompts) > spec.max_prompts:
        prompts = prompts.sample(n=spec.max_prompts, random_state=spec.seed).reset_index(drop=True)
    sampled = rejection_sample(
        model,
        tok,
        prompts,
        samples_per_prompt=spec.samples_per_prompt,
        max_new_tokens=spec.max_new_tokens,
        temperature=spec.sample_temperature,
        scorer=scorer,
    )
    write_sampled(sampled, work, source_prompts=len(prompts))
    counts = {f"rs/{k}": v for k, v in sampled.counts.items()}
    pairs = sampled.pairs
    if len(pairs):
        pairs, dropped = clean_pairs(pairs, "rejection-sampled pairs")
        counts["rs/dropped_identical"] = dropped
    if len(pairs) >= spec.min_pairs:
        return pairs, "rejection_sampling", counts
    pref = data_dir / "preferences"
    if (pref / "train.parquet").is_file():
        log.warning(
            "rejection sampling gave %d pairs (< dpo.min_pairs=%d): training on %s instead",
            len(pairs),
            spec.min_pairs,
            pref,
        )
        prefs, dropped = clean_pairs(read_dataset(data_dir, "preferences"), str(pref / "train.parquet"))
        counts["preferences/dropped_identical"] = dropped
        return prefs, "preferences", counts
    if len(pairs) == 0:
        raise DataError(
            f"rejection sampling of {len(prompts)} prompts gave no (pass, fail) pairs and {pref} does "
            "not exist; add preference data, sample more prompts (dpo.max_prompts, "
            "dpo.samples_per_prompt) or raise dpo.sample_temperature"
        )
    log.warning(
        "rejection sampling gave only %d pairs (< dpo.min_pairs=%d) and there is no %s: using them",
        len(pairs),
        spec.min_pairs,
        pref,
    )
    return pairs, "rejection_sampling", counts


def heldout_pairs(spec, model, tok, data_dir: Path, scorer=None) -> pd.DataFrame:
    """(pass, fail) pairs of the starting model's own samples on the held-out eval prompts, built as the training
    pairs are: what DPO's preference accuracy is measured on."""
    rows = pd.concat([df for df in read_eval(data_dir).values()], ignore_index=True)
    sampled = rejection_sample(
        model,
        tok,
        rows,
        samples_per_prompt=spec.samples_per_prompt,
        max_new_tokens=spec.max_new_tokens,
        temperature=spec.sample_temperature,
        scorer=scorer,
    )
    return sampled.pairs


def _pair_logprobs(model, tok, pairs: pd.DataFrame) -> tuple[list[float], list[float]]:
    prompts = list(pairs["prompt"])
    return (
        completion_logprobs(model, tok, prompts, [c[-1]["content"] for c in pairs["chosen"]]),
        completion_logprobs(model, tok, prompts, [r[-1]["content"] for r in pairs["rejected"]]),
    )


def with_optimizer(trainer_cls, optimizer):
    """`trainer_cls` using `optimizer` (the merging optimizer, built here with its reference deltas) through its own
    create_optimizer: HF Trainer refuses `optimizers=` under FSDP, and FSDP2 then swaps in the sharded parameters."""

    class Trainer(trainer_cls):
        def create_optimizer(self, *args, **kwargs):
            self.optimizer = optimizer
            return optimizer

    return Trainer


def run_dpo(
    recipe,
    data_dir: str | Path,
    model_dir: str | Path,
    out_dir: str | Path,
    reward_model_dir: str | Path | None = None,
    *,
    resume: bool = False,
) -> Path:
    """DPO from `model_dir`; exact match and held-out preference accuracy before and after; returns out_dir/model.

    reward_model_dir: the reward stage's model; it ranks the sampled answers on each side of the verifier's split."""
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from qwenflow.tracking import main_mlflow as mlflow
    from qwenflow.tracking import stage_run

    compact_fused_lm_head()

    spec = recipe.dpo
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    set_seed(spec.seed)
    model, tok, start = starting_model(spec.init_from or model_dir, distributed=spec.distributed)
    base = merge_base_dir(spec, start)
    lineage = model_lineage(
        "dpo",
        start,
        data_dir,
        ["rl", "preferences", "eval"],
        merge_base_model=str(base) if base else None,
        **({"reward_model": str(reward_model_dir)} if reward_model_dir else {}),
    )
    scorer = None
    if reward_model_dir is not None:
        from .grpo import RewardModelScore

        scorer = RewardModelScore(reward_model_dir)
    with stage_run("dpo", recipe, params=lineage):
        result: dict = {}
        held = pd.DataFrame()
        if _has_eval(data_dir):
            heldout = HeldoutExactMatch(data_dir)
            result.update(heldout.before(model, tok))
            held = heldout_pairs(spec, model, tok, data_dir, scorer)
            if len(held):  # the policy is its own reference here: implicit-reward accuracy 0.5 by construction
                ref_c, ref_r = _pair_logprobs(model, tok, held)
                result["heldout_before"] = preference_accuracy(ref_c, ref_r, ref_c, ref_r)

        # Sampled data is kept beside the model (out_dir/rejection_sampled) and logged with the run.
        pairs, source, counts = dpo_pairs(spec, model, tok, data_dir, out_dir / "rejection_sampled", scorer)
        mlflow.set_tag("dpo.pairs_source", source)
        mlflow.log_metrics({k: float(v) for k, v in counts.items()})
        mlflow.log_artifacts(str(out_dir / "rejection_sampled"), "rejection_sampled")
        if source == "preferences":
            mlflow.log_params({"dpo.pairs_source": "preferences (rejection sampling gave too few pairs)"})

        if spec.optimizer != "adamw" and base is None:
            log.warning("no base model for %s (set dpo.merge_base): its reference delta is zero", spec.optimizer)
        optimizer = build_optimizer(
            model,
            spec.optimizer,
            lr=spec.learning_rate,
            weight_decay=spec.weight_decay,
            reserve_p=spec.merge_reserve_p,
            alpha=spec.merge_alpha,
            base_state=_base_state(base) if spec.optimizer != "adamw" else None,
            seed=spec.seed,
        )
        ref_model = load_causal_lm(
            start, distributed=spec.distributed
        )  # explicit: DPOTrainer cannot derive one from a model object
        nll = spec.sft_loss_weight > 0  # RPO: the chosen answers' NLL beside the sigmoid DPO loss
        args = DPOConfig(
            **trainer_defaults(spec, out_dir / "trainer"),
            beta=spec.beta,
            max_length=spec.max_seq_len,
            loss_type=["sigmoid", "sft"] if nll else ["sigmoid"],
            loss_weights=[1.0, spec.sft_loss_weight] if nll else None,
        )
        trainer = with_optimizer(DPOTrainer, optimizer)(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=trl_pairs(pairs),
            processing_class=tok,
            callbacks=[mlflow_metrics("dpo"), atomic_checkpoints(spec.keep_checkpoints)],
        )
        # resume: the merging optimizer's state (tau_ref, moments, DARE generator) comes back with the checkpoint
        trainer.train(resume_from_checkpoint=resume_point(out_dir / "trainer", resume))

        if _has_eval(data_dir):
            result.update(heldout.after(model, tok))
            if len(held):
                pol_c, pol_r = _pair_logprobs(model, tok, held)
                result["heldout_after"] = preference_accuracy(pol_c, pol_r, ref_c, ref_r, beta=spec.beta)
                for when in ("before", "after"):
                    mlflow.log_metrics({f"heldout_pairs/{k}_{when}": v for k, v in result[f"heldout_{when}"].items()})
                log.info(
                    "DPO held-out pairs (%d): implicit-reward accuracy %.3f -> %.3f, log-likelihood accuracy "
                    "%.3f -> %.3f",
                    len(held),
                    result["heldout_before"]["implicit_reward_accuracy"],
                    result["heldout_after"]["implicit_reward_accuracy"],
                    result["heldout_before"]["loglik_accuracy"],
                    result["heldout_after"]["loglik_accuracy"],
                )
        mlflow.log_metric("data/dpo_pairs", len(pairs))
        result.update({"pairs_source": source, "pairs": len(pairs), **counts})
        log_json(result, "dpo_result.json")
        model_out = out_dir / "model"
        io.save(model, tokenizer=tok, out_dir=model_out, recipe=recipe, lineage={**lineage, **result})
        mlflow.set_tag("qwenflow.model_dir", str(model_out.resolve()))
    return model_out
