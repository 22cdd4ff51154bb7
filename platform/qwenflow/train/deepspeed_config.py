"""DeepSpeed config generated from a recipe's training section and checked by DeepSpeed's own validator."""

from __future__ import annotations

from qwenflow.dist import grad_accum, world_size


def deepspeed_config(section, *, bf16: bool, world: int | None = None) -> dict:
    """ZeRO-2/3 config (from section.distributed): batch sizes, clipping, precision, offload. The optimizer and LR
    schedule stay the platform's own (torch AdamW + our LambdaLR, passed through accelerate), so every engine trains
    with the same update rule."""
    world = world or world_size()
    accum = grad_accum(section.global_batch_size, section.micro_batch_size, world)
    stage = int(section.distributed.strategy[-1])
    zero: dict = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # save_pretrained gets full weights
    if section.distributed.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_batch_size": section.global_batch_size,
        "train_micro_batch_size_per_gpu": section.micro_batch_size,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": section.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bool(bf16)},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def validate(config: dict, world: int | None = None) -> None:
    """Raise ValueError with DeepSpeed's own message when the config is not one it accepts."""
    # lazy: imports torch, mlflow, deepspeed (seconds to import)
    from deepspeed import comm
    from deepspeed.runtime.config import DeepSpeedConfig

    check = dict(config)
    world = world or world_size()
    if not comm.is_initialized():  # DeepSpeed then checks the batch as for one process: give it one's share
        if config["train_batch_size"] % world:
            raise ValueError(f"train_batch_size {config['train_batch_size']} does not split over {world} processes")
        check["train_batch_size"] = config["train_batch_size"] // world
    try:
        DeepSpeedConfig(check)
    except Exception as e:  # DeepSpeed raises AssertionError / ValidationError / ValueError
        raise ValueError(f"DeepSpeed rejected the generated config: {e}") from None
