"""Long-context extension: raise the RoPE base (ABF), then train on a mixture of long and shorter sequences.

Several `seq_lens` give Qwen2.5-Turbo's progressive schedule: one stage per length, each with `long_fraction` of
its sequences at that length and the rest at the previous length.

YaRN: the saved config.json carries `qwenflow_yarn` (qwenflow.longctx.yarn), off until a deployment switches it on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from transformers import AutoConfig, set_seed

from qwenflow.longctx.yarn import YARN_KEY, yarn_parameters
from qwenflow.models import io
from qwenflow.recipe import Recipe
from qwenflow.tokenizer import load_tokenizer
from qwenflow.tracking import ensure_reachable

from .batches import PackedBatches
from .engine import Stage, held_out_loss, is_main_process, train
from .finish import log_checkpoint, log_model_dir, loss_plot, save_model
from .pretrain import flops_counter, pack_on_main, stage_context


def long_context_config(model_dir: str | Path, rope_theta: float, max_len: int):
    """The model's config with the new RoPE base and length. Editing rope_theta on a loaded model changes nothing
    (the rotary embedding caches inv_freq at init), so the model must be built from this config."""

    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    rope = dict(getattr(config, "rope_parameters", None) or {"rope_type": "default"})
    rope["rope_theta"] = float(rope_theta)
    config.rope_parameters = rope
    config.max_position_embeddings = max(int(max_len), int(config.max_position_embeddings or 0))
    return config


def check_rope_base(model, rope_theta: float) -> None:
    """Fail loudly if the rotary embedding does not use the new base: transformers caches inv_freq when the model
    is built, so editing rope_theta on a loaded model silently changes nothing."""

    rotary = model.model.rotary_emb
    dim = rotary.inv_freq.numel() * 2
    want = 1.0 / (rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if not torch.allclose(rotary.inv_freq.float().cpu(), want, rtol=1e-4):
        raise RuntimeError(f"rotary embedding was not rebuilt for rope_theta={rope_theta}")


def run_long_context(
    recipe: Recipe, data_dir: str | Path, model_dir: str | Path, out_dir: str | Path, resume: bool = False
) -> Path:
    """Extend model_dir's context per recipe.long_context; return the new model directory (= out_dir)."""

    ensure_reachable()  # before any compute
    lc = recipe.long_context
    out_dir, model_dir = Path(out_dir), Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json; pass the pre-trained model directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(model_dir)

    stages, manifests, prev = [], [], recipe.pretrain.seq_len
    for i, length in enumerate(lc.seq_lens):
        short = prev if length % prev == 0 else length // 2
        packed = out_dir / ".packed" / f"len{length}"
        manifests.append(
            pack_on_main(
                data_dir,
                model_dir,
                length,
                packed,
                long_fraction=lc.long_fraction,
                short_len=short,
                block_rows=lc.micro_batch_size,
                seed=lc.seed + i,
                retrieval_fraction=lc.retrieval_fraction,
                engine=recipe.data.engine,
                workers=recipe.data.workers,
            )
        )
        stages.append(
            Stage(
                PackedBatches(
                    packed, micro_batch=lc.micro_batch_size, global_batch=lc.global_batch_size, seed=lc.seed + i
                ),
                lc.max_steps,
            )
        )
        prev = length
    final_len = lc.seq_lens[-1]

    set_seed(lc.seed)
    config = long_context_config(model_dir, lc.rope_theta, final_len)
    base_theta = json.loads((model_dir / "config.json").read_text()).get("rope_parameters", {}).get("rope_theta")
    model = io.load_causal_lm(model_dir, config=config, distributed=lc.distributed)
    check_rope_base(model, lc.rope_theta)

    before: dict = {}

    def measure_before(evaluate, bf16, device):
        """Held-out loss at the final length: the base model as it was, and with only the RoPE base raised. The
        first needs a second whole copy of the model, so sharded runs (whose point is not to hold one) skip it."""
        if lc.distributed.strategy in ("ddp", "zero2"):
            base = io.load_causal_lm(model_dir).to(device)
            before["val_loss_base_model"] = held_out_loss(base, stages[-1].batches.val_batches(), bf16, device)
            del base
        before["val_loss_rope_only"] = evaluate(stages[-1])

    params = {
        "base_rope_theta": base_theta,
        "trained_length": final_len,
        "yarn_factor": lc.yarn_factor,
        "progressive_stages": len(lc.seq_lens),
    }
    with stage_context("long_context", recipe, params) as run:
        result, accelerator, state_dict = train(
            model,
            lc,
            stages,
            out_dir,
            name="long_context",
            resume=resume,
            before_train=measure_before,
            flops_per_token=flops_counter(recipe.model),
            on_checkpoint=log_checkpoint,
        )
        if is_main_process():
            unwrapped = accelerator.unwrap_model(model)
            rope = {"rope_type": "default", "rope_theta": float(lc.rope_theta)}
            setattr(unwrapped.config, YARN_KEY, yarn_parameters(rope, final_len, lc.yarn_factor))
            unwrapped.config.qwenflow_trained_context = final_len
            lineage = {
                "stage": "long_context",
                "from_model": str(model_dir),
                "data_manifests": [m["files"] for m in manifests],
                "mlflow_run_id": run.info.run_id if run is not None else None,
            }
            save_model(unwrapped, state_dict, tok, out_dir, recipe=recipe, lineage=lineage)
            loss_plot(out_dir, f"long-context: {recipe.name} ({' -> '.join(map(str, lc.seq_lens))} tokens)")
            final_val = result.val_losses[max(result.val_losses)]
            summary = {
                "first_loss": result.first_loss,
                "last_loss": result.last_loss,
                "final_val_loss": final_val,
                f"val_ppl_at_{final_len}": math.exp(final_val),
                "tokens_seen": result.tokens_seen,
                "mean_tokens_per_s": result.tokens_per_s,
                "mean_mfu": result.mfu,
                "steps": result.steps,
                "rope_theta": lc.rope_theta,
                "trained_length": final_len,
            }
            for k, v in before.items():
                summary[k] = v
                summary[k.replace("val_loss", f"val_ppl_at_{final_len}")] = math.exp(v)
            (out_dir / "long_context_summary.json").write_text(json.dumps(summary, indent=2))
            log_model_dir(out_dir, summary)  # rank 0 hashes and uploads; the others have already returned
    return out_dir
