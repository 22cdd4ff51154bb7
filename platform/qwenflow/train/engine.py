"""The one training loop behind pre-training and long-context extension.

accelerate runs it unchanged as one process, under `torchrun --nproc_per_node=N` (gloo on CPU, NCCL on GPU) and
with DeepSpeed ZeRO-2/3 (config from the recipe); bf16 autocast where the hardware has it. The loop itself is
plain: micro-batches -> backward -> clip -> AdamW step -> LR step, checkpoint every N steps, metrics every step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from qwenflow import dist
from qwenflow.dist import grad_accum

from . import checkpoint as ckpt
from .batches import PackedBatches
from .deepspeed_config import validate, world_size
from .hardware import gpu_peak, probe
from .schedule import staged_lr_lambda
from .strategy import accelerate_plugins

if TYPE_CHECKING:
    from accelerate import Accelerator

METRICS = "metrics.jsonl"


@dataclass
class Stage:
    """A run of `steps` optimizer steps over one packed dataset (long context: one per length)."""

    batches: PackedBatches
    steps: int


@dataclass
class Result:
    first_loss: float
    last_loss: float
    val_losses: dict[int, float] = field(default_factory=dict)
    tokens_seen: int = 0
    steps: int = 0
    tokens_per_s: float = 0.0
    mfu: float = 0.0
    resumed_from: int | None = None


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def mean_over_ranks(x: torch.Tensor, world: int) -> float:
    if world > 1 and torch.distributed.is_initialized():
        x = x.clone()
        torch.distributed.all_reduce(x)
        x /= world
    return float(x)


def make_accelerator(section, device_probe: dict):
    """The accelerate engine for the section's strategy: plain (DDP under torchrun), DeepSpeed ZeRO-2/3 or FSDP2."""
    # lazy: imports accelerate (484 ms)
    from accelerate import Accelerator

    on_cpu = not torch.cuda.is_available()
    strategy = section.distributed.strategy
    accum = grad_accum(section.global_batch_size, section.micro_batch_size, world_size())
    if strategy != "ddp":
        dist.single_process_env()
    plugins = accelerate_plugins(section, bf16=device_probe["bf16"])
    # cpu=True would make accelerate drop DeepSpeed/FSDP; without CUDA the device is the CPU either way.
    acc = Accelerator(
        mixed_precision="bf16" if device_probe["bf16"] else "no",
        cpu=on_cpu and not plugins,
        gradient_accumulation_steps=accum,
        step_scheduler_with_optimizer=False,
        **plugins,
    )
    ds_cfg = plugins["deepspeed_plugin"].deepspeed_config if "deepspeed_plugin" in plugins else None
    expected = {"zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp2": "FSDP"}.get(strategy)
    if expected and acc.distributed_type.value != expected:
        raise RuntimeError(f"distributed.strategy={strategy} but accelerate runs {acc.distributed_type.value}")
    if ds_cfg is not None:
        validate(ds_cfg)  # after the process group exists, so DeepSpeed checks the batch against the real world size
    return acc, accum, ds_cfg


def adamw(model, section, fused: bool):
    """AdamW with weight decay on matrices only (norm scales and biases are not decayed)."""

    def ndim(p):  # ZeRO-3 parameters built partitioned are empty 1-D tensors that remember their shape
        return len(getattr(p, "ds_shape", p.shape))

    decay = [p for p in model.parameters() if p.requires_grad and ndim(p) >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and ndim(p) < 2]
    groups = [{"params": decay, "weight_decay": section.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kw = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=section.learning_rate, betas=(section.beta1, section.beta2), **kw)


@torch.no_grad()
def held_out_loss(model, batches, bf16: bool, device) -> float:
    """Mean next-token loss over held-out rows (token-weighted; every row has the same length)."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for rows in batches:
            total += float(model(input_ids=rows.to(device), labels=rows.to(device)).loss) * len(rows)
            n += len(rows)
    model.train(was_training)
    return total / max(n, 1)


def memory_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


class _Log:
    """Per-step metrics to metrics.jsonl (for plots and tests) and to the active MLflow run, main process only."""

    def __init__(self, out_dir: Path, main: bool, resume_step: int | None):
        self.path, self.main = out_dir / METRICS, main
        self.mlflow = None
        if main:
            # lazy: imports mlflow, pandas, pyarrow (seconds to import)
            import mlflow

            self.mlflow = mlflow if mlflow.active_run() else None
            kept = []
            if resume_step is not None and self.path.is_file():  # drop steps the resumed run will redo
                kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def __call__(self, step: int, metrics: dict) -> None:
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.mlflow:
            self.mlflow.log_metrics(
                {k: v for k, v in metrics.items() if v is not None and math.isfinite(v)}, step=step, synchronous=False
            )


def _progress(main: bool, total: int):
    if not main:
        return contextlib.nullcontext(None)
    # lazy: 371 ms to import, needed only here
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def train_step(accelerator, model, optimizer, scheduler, micro_batches: list, grad_clip: float):
    """One optimizer step over the micro-batches (gradient accumulation); returns (mean loss, grad norm, MoE aux
    loss or None) as tensors, so the caller decides when to synchronise. The MoE router's auxiliary loss is already
    inside `loss` (transformers adds router_aux_loss_coef * aux_loss when output_router_logits is on)."""
    loss_sum, aux_sum, grad_norm = 0.0, None, None
    for batch in micro_batches:
        with accelerator.accumulate(model):
            out = model(input_ids=batch, labels=batch)
            accelerator.backward(out.loss)
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum = loss_sum + out.loss.detach().float()
        if getattr(out, "aux_loss", None) is not None:
            aux_sum = out.aux_loss.detach().float() + (0 if aux_sum is None else aux_sum)
    scheduler.step()
    n = len(micro_batches)
    return loss_sum / n, grad_norm, None if aux_sum is None else aux_sum / n


# torch.compile costs a minute or two on a CPU (inductor builds C++ kernels) for a gain per step, so `compile: auto`
# only turns it on for runs whose estimated compute time dwarfs that. The estimate uses a nominal peak, not the
# measured one, so that the choice cannot flip between a run and its resume when the machine is busier.
COMPILE_PAYS_AFTER_S = 1800.0
ASSUMED_MFU = 0.4
CPU_NOMINAL_FLOPS_PER_CORE = 5e10  # fp32 FMA, AVX2, ~2.5 GHz


def compile_decision(section, arch: str, est_flops: float, device_probe: dict) -> tuple[bool, str]:
    """(compile?, why) for the section's `compile` setting: true/false as set; auto compiles dense models outside
    DeepSpeed when the run is estimated to take over COMPILE_PAYS_AFTER_S seconds of compute."""
    setting = section.compile
    if setting is True or setting is False:
        return setting, "set in the recipe"
    if section.distributed.strategy != "ddp":
        return False, f"auto: not with {section.distributed.strategy}"
    if arch != "dense":
        return False, "auto: dense models only (MoE expert dispatch is data-dependent)"
    if device_probe["device_name"].startswith("cpu:"):
        nominal = CPU_NOMINAL_FLOPS_PER_CORE * torch.get_num_threads()
    else:
        nominal = gpu_peak(device_probe["device_name"]) or device_probe["peak_flops"]
    nominal *= world_size()
    est_s = est_flops / (nominal * ASSUMED_MFU)
    if est_s < COMPILE_PAYS_AFTER_S:
        return False, f"auto: ~{est_s:,.0f} s of compute, too short to amortise compiling"
    return True, f"auto: ~{est_s:,.0f} s of compute"


@dataclass
class Prepared:
    """What a training step needs, built the same way for train() and benchmarks/train_throughput.py."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accum: int
    ds_cfg: dict | None
    device_probe: dict
    compiled: bool
    compile_reason: str


def prepare(
    model, section, lr_lambda, *, arch: str = "dense", est_flops: float = 0.0, device_probe: dict | None = None
) -> Prepared:
    """Accelerator (plain, DDP or DeepSpeed), optional torch.compile, AdamW and the LR schedule around `model`."""
    if device_probe is None:
        device_probe = probe(section.bf16, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    accelerator, accum, ds_cfg = make_accelerator(section, device_probe)
    compiled, why = compile_decision(section, arch, est_flops, device_probe)
    if compiled:
        model.compile()  # in place: state-dict keys, checkpoints and accelerate's unwrapping stay as without it
    if section.distributed.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = adamw(model, section, fused=section.distributed.strategy == "ddp")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    return Prepared(accelerator, model, optimizer, scheduler, accum, ds_cfg, device_probe, compiled, why)


def train(
    model,
    section,
    stages: list[Stage],
    out_dir: Path,
    *,
    name: str,
    flops_per_token,
    resume: bool = False,
    on_checkpoint=None,
    before_train=None,
) -> tuple[Result, Accelerator, dict | None]:
    """Train `model` through `stages`; returns (result, accelerator, unwrapped model state dict on main or None).

    flops_per_token(seq_len) gives training FLOPs per token for MFU. before_train(eval_fn) runs once before the
    first step of a fresh run as before_train(evaluate, bf16, device) (long context measures the model before it
    trains).
    """
    total = sum(s.steps for s in stages)
    est_flops = sum(s.steps * s.batches.tokens_per_step() * flops_per_token(s.batches.seq_len) for s in stages)
    arch = "moe" if getattr(model.config, "num_experts", None) else "dense"
    prep = prepare(
        model, section, staged_lr_lambda(stages[0].steps, len(stages), section), arch=arch, est_flops=est_flops
    )
    accelerator, model, optimizer, scheduler = prep.accelerator, prep.model, prep.optimizer, prep.scheduler
    accum, ds_cfg, device_probe = prep.accum, prep.ds_cfg, prep.device_probe
    # Ranks from torchrun's environment: accelerate 1.15 reports process_index 0 on every rank under DeepSpeed on CPU.
    main, device, world, rank = is_main_process(), accelerator.device, world_size(), int(os.environ.get("RANK", "0"))
    bf16 = device_probe["bf16"]

    ckpt_root = out_dir / "checkpoints"
    start, resumed_from = 0, None
    latest = ckpt.latest_checkpoint(ckpt_root)
    if latest is not None and not resume:
        raise FileExistsError(
            f"{out_dir} holds checkpoints of an earlier run (newest {latest.name}); pass --resume "
            "to continue it or choose a new output directory"
        )
    if resume and latest is not None:
        state = ckpt.load_checkpoint(accelerator, latest)
        scheduler.load_state_dict(state["scheduler"])
        start = resumed_from = state["step"]
    log = _Log(out_dir, main, resumed_from)
    if main:
        # lazy: imports mlflow, pandas, pyarrow (seconds to import)
        import mlflow

        if mlflow.active_run():
            mlflow.log_params(
                {
                    "device": device_probe["device_name"],
                    "bf16_autocast": bf16,
                    "world_size": world,
                    "engine": accelerator.distributed_type.value,
                    "grad_accum_steps": accum,
                    "peak_flops": f"{device_probe['peak_flops']:.4g}",
                    "compiled": prep.compiled,
                    "compile_reason": prep.compile_reason,
                    "torch_threads": torch.get_num_threads(),
                    "resumed_from_step": resumed_from if resumed_from is not None else "none",
                }
            )
            if ds_cfg is not None:
                mlflow.log_dict(ds_cfg, "deepspeed_config.json")

    def stage_at(step: int) -> tuple[Stage, int]:
        for s in stages:
            if step < s.steps:
                return s, step
            step -= s.steps
        raise IndexError(step)

    def evaluate(stage: Stage) -> float:
        return held_out_loss(model, stage.batches.val_batches(), bf16, device)

    if before_train is not None and resumed_from is None:
        before_train(evaluate, bf16, device)

    result = Result(first_loss=math.nan, last_loss=math.nan, resumed_from=resumed_from)
    tokens_seen = sum(stage_at(s)[0].batches.tokens_per_step() for s in range(start))
    eval_every = getattr(section, "eval_every", None)
    t_run, tokens_run = time.perf_counter(), 0
    with _progress(main, total) as progress:
        task = progress.add_task(name, total=total, completed=start, loss=float("nan"), tps=0.0) if progress else None
        for step in range(start, total):
            stage, local = stage_at(step)
            t0 = time.perf_counter()
            micro = [stage.batches.micro_batch(local, a * world + rank).to(device) for a in range(accum)]
            lr = scheduler.get_last_lr()[0]
            loss_t, grad_norm, aux = train_step(accelerator, model, optimizer, scheduler, micro, section.grad_clip)
            loss = mean_over_ranks(loss_t, world)
            batch = micro[-1]
            dt = time.perf_counter() - t0
            tokens = stage.batches.tokens_per_step()
            tokens_seen += tokens
            tokens_run += tokens
            seg = batch.shape[1]
            tps = tokens / dt
            metrics = {
                "loss": loss,
                "lr": lr,
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "tokens_seen": tokens_seen,
                "tokens_per_s": tps,
                "seq_len": seg,
                "mfu": flops_per_token(seg) * tps / (device_probe["peak_flops"] * world),
                "memory_gb": memory_gb(device),
            }
            if aux is not None:
                metrics["moe_aux_loss"] = float(aux)
            done = step + 1
            if eval_every and done % eval_every == 0:
                metrics["val_loss"] = result.val_losses[done] = evaluate(stage)
            log(done, metrics)
            if math.isnan(result.first_loss):
                result.first_loss = loss
            result.last_loss = loss
            if progress:
                progress.update(task, advance=1, loss=loss, tps=tps)
            if done % section.checkpoint_every == 0 and done < total:
                path = ckpt.save_checkpoint(
                    accelerator,
                    main,
                    ckpt_root,
                    done,
                    {
                        "step": done,
                        "scheduler": scheduler.state_dict(),
                        "tokens_seen": tokens_seen,
                        "data_position": {"step": done, "seed": section.seed},
                    },
                )
                if on_checkpoint and main:
                    on_checkpoint(path, done)
    elapsed = time.perf_counter() - t_run
    final_stage = stages[-1]
    if total not in result.val_losses:
        result.val_losses[total] = evaluate(final_stage)
        log(total, {"val_loss": result.val_losses[total]})
    result.tokens_seen, result.steps = tokens_seen, total
    result.tokens_per_s = tokens_run / elapsed if tokens_run else 0.0
    result.mfu = (
        flops_per_token(final_stage.batches.seq_len) * result.tokens_per_s / (device_probe["peak_flops"] * world)
    )
    state_dict = accelerator.get_state_dict(model)  # gathers ZeRO-3 shards; every process must call it
    accelerator.wait_for_everyone()
    return result, accelerator, state_dict if main else None
