"""Learning-rate schedules as one pure function of the step.

Written out rather than taken from transformers' get_*_schedule so that several long-context length stages share
one LambdaLR (one scheduler state in the checkpoint), each stage with its own warmup and decay.
"""

from __future__ import annotations

import math


def lr_factor(
    step: int, total: int, *, warmup_ratio: float, schedule: str, min_lr_ratio: float, decay_ratio: float = 0.2
) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based) of `total`."""
    warmup = max(1, round(warmup_ratio * total)) if warmup_ratio > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":  # warmup, stable at the peak, then cosine decay over the last decay_ratio of steps
        decay_start = total - max(1, round(decay_ratio * total))
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total - 1 - decay_start)
    else:
        progress = (step - warmup) / max(1, total - warmup)
    progress = min(1.0, progress)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def staged_lr_lambda(steps_per_stage: int, n_stages: int, section):
    """LambdaLR function: the section's schedule, restarted for each of n_stages length stages."""

    def f(step: int) -> float:
        local = step - min(step // steps_per_stage, n_stages - 1) * steps_per_stage
        return lr_factor(
            local,
            steps_per_stage,
            warmup_ratio=section.warmup_ratio,
            schedule=section.schedule,
            min_lr_ratio=section.min_lr_ratio,
            decay_ratio=section.decay_ratio,
        )

    return f
