"""A recipe's training stage as the `Workload` one of its processes carries (plan/estimate.py)."""

from __future__ import annotations

from .estimate import Workload


def model_shape(spec) -> dict:
    head_dim = spec.hidden_size // spec.num_heads
    ffn = spec.intermediate_size
    if spec.arch == "moe":
        ffn = spec.moe.top_k * spec.moe.moe_intermediate_size + spec.moe.shared_expert_intermediate_size
    return {
        "params": spec.approx_params(),
        "layers": spec.num_layers,
        "hidden": spec.hidden_size,
        "kv": head_dim * spec.num_kv_heads,
        "ffn": ffn,
        "vocab": spec.vocab_size,
    }


def workload(
    recipe, stage: str, *, device: str = "gpu", world: int | None = None, bf16: bool | None = None, section=None
) -> Workload:
    """`section` replaces the recipe's (the planner tries modified copies); `world` defaults to the resources'.
    A training stage's name is its recipe section (qwenflow.stages)."""
    name = stage
    sec = section if section is not None else getattr(recipe, name)
    res, dist = sec.resources, sec.distributed
    world = world or res.processes()
    micro = sec.micro_batch_size
    accum = max(1, sec.global_batch_size // (micro * world)) if isinstance(sec.global_batch_size, int) else 1
    seq = {"pretrain": lambda: sec.seq_len, "long_context": lambda: max(sec.seq_lens)}.get(
        name, lambda: sec.max_seq_len
    )()
    pairs = 2 if name in ("reward", "dpo") else 1
    return Workload(
        stage=stage,
        **model_shape(recipe.model),
        seq=seq,
        sequences=micro * pairs,
        world=world,
        strategy=dist.strategy,
        checkpointing=dist.gradient_checkpointing,
        offload=dist.cpu_offload,
        offload_params=name
        not in ("pretrain", "long_context"),  # train/deepspeed_config.py offloads the optimizer only
        bf16=sec.bf16 if bf16 is None else bf16,
        device=device,
        full_logits=name in ("pretrain", "long_context"),
        reference=name == "dpo" or (name == "grpo" and sec.beta > 0),
        # TRL generates a process's whole generation batch (micro batch x steps_per_generation = accumulation) at once
        generation_sequences=micro * accum if name == "grpo" else 0,
        accum=accum,
    )
