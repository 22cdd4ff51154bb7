"""A stage's `distributed` block (ddp | zero2 | zero3 | fsdp2, gradient checkpointing, CPU offload) turned into what
each engine takes: accelerate plugins for the pre-training engine, TrainingArguments fields for the TRL trainers.

Both engines then run unchanged as one process or under torchrun; the batch maths is the same everywhere:
global batch = micro batch x gradient accumulation x world size.
"""

from __future__ import annotations

from typing import Any

from qwenflow import dist

from .deepspeed_config import deepspeed_config

# The blocks FSDP2 wraps (and shards) one at a time in transformers' Qwen2 and Qwen2-MoE models.
FSDP_WRAP = ["Qwen2DecoderLayer", "Qwen2MoeDecoderLayer"]


def check_supported(strategy: str) -> None:
    """accelerate 1.15 turns FSDP on only for GPU-type devices (on CPU it would silently run DDP instead)."""
    # lazy: imports torch, numpy (seconds to import)
    import torch

    if strategy == "fsdp2" and not torch.cuda.is_available():
        raise ValueError(
            "distributed.strategy=fsdp2 runs on GPUs only (accelerate enables FSDP for GPU devices); "
            "on CPU use ddp, zero2 or zero3"
        )


def trainer_kwargs(distributed, *, bf16: bool) -> dict[str, Any]:
    """TrainingArguments fields for the strategy (HF Trainer, and so TRL's trainers, hand them to accelerate)."""
    check_supported(distributed.strategy)
    kw: dict[str, Any] = {"gradient_checkpointing": distributed.gradient_checkpointing}
    if distributed.gradient_checkpointing:
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    s = distributed.strategy
    if s in ("zero2", "zero3"):
        dist.single_process_env()
        zero: dict[str, Any] = {"stage": int(s[-1]), "overlap_comm": False, "contiguous_gradients": True}
        if s == "zero3":
            zero["stage3_gather_16bit_weights_on_model_save"] = True
        if distributed.cpu_offload:
            zero["offload_optimizer"] = {"device": "cpu"}
            if s == "zero3":
                zero["offload_param"] = {"device": "cpu"}
        # "auto": transformers fills batch sizes, clipping and precision from the TrainingArguments themselves
        kw["deepspeed"] = {
            "train_batch_size": "auto",
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"},
            "zero_optimization": zero,
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
        }
    elif s == "fsdp2":
        kw["fsdp"] = "full_shard offload" if distributed.cpu_offload else "full_shard"
        kw["fsdp_config"] = {
            "fsdp_version": 2,
            "transformer_layer_cls_to_wrap": FSDP_WRAP,
            "reshard_after_forward": True,
            "cpu_ram_efficient_loading": False,
            "activation_checkpointing": False,
        }
    return kw


def accelerate_plugins(section, *, bf16: bool) -> dict[str, Any]:
    """Accelerator(...) keyword arguments for the pre-training engine: a DeepSpeed or FSDP2 plugin, or none (DDP)."""
    s = section.distributed.strategy
    check_supported(s)
    if s in ("zero2", "zero3"):
        # lazy: imports torch, accelerate, numpy (seconds to import)
        from accelerate.utils import DeepSpeedPlugin

        cfg = deepspeed_config(section, bf16=bf16)
        return {"deepspeed_plugin": DeepSpeedPlugin(hf_ds_config=cfg)}
    if s == "fsdp2":
        # lazy: imports torch, accelerate, numpy (seconds to import)
        from accelerate.utils import FullyShardedDataParallelPlugin
        from torch.distributed.fsdp import CPUOffloadPolicy

        return {
            "fsdp_plugin": FullyShardedDataParallelPlugin(
                fsdp_version=2,
                reshard_after_forward=True,
                auto_wrap_policy="transformer_based_wrap",
                transformer_cls_names_to_wrap=FSDP_WRAP,
                state_dict_type="FULL_STATE_DICT",
                cpu_offload=CPUOffloadPolicy() if section.distributed.cpu_offload else None,
            )
        }
    return {}
