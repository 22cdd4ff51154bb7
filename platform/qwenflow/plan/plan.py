"""The memory plan of a recipe: per training stage, the estimated peak per GPU against what the GPU has, and for a
stage that does not fit, the smallest change to the recipe that makes it fit.

Stages without GPUs (the tiny recipe) are planned on CPU against the pod's memory over its processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenflow.stages import TRAINING

from .accelerators import GPU_MEMORY_GIB, gpu_memory_gib
from .estimate import Estimate, estimate
from .workload import workload

HEADROOM = 0.95  # the allocator's fragmentation and what the estimate leaves out: plan to 95% of the card


class PlanRefused(ValueError):
    """A stage does not fit its GPUs; the message is one line per stage that does not fit."""


@dataclass
class StagePlan:
    stage: str
    nodes: int
    gpus: int
    strategy: str
    estimate: Estimate
    available_gib: float
    device: str
    fix: str = ""  # for a stage that does not fit: the change that makes it fit, or what is missing

    @property
    def fits(self) -> bool:
        return self.estimate.total <= self.available_gib * HEADROOM

    def reason(self) -> str:
        return (
            f"stage '{self.stage}' needs ~{self.estimate.total:.1f} GiB per GPU ({self.nodes} node(s) x "
            f"{self.gpus} GPU(s), {self.strategy}) but {self.device} has {self.available_gib:.1f} GiB; "
            f"{self.fix}"
        )


def _quantity_gib(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for u in sorted(units, key=len, reverse=True):
        if q.endswith(u):
            return float(q[: -len(u)]) * units[u] / 2**30
    return float(q) / 2**30


def _available(section) -> tuple[float, str, str]:
    res = section.resources
    if res.gpus:
        gib, what = gpu_memory_gib(res)
        return gib, what, "gpu"
    return (
        _quantity_gib(res.memory) / res.processes(),
        f"the pod ({res.memory} over {res.processes()} process(es))",
        "cpu",
    )


def _estimate(recipe, stage: str, section) -> tuple[Estimate, float, str, str]:
    avail, what, device = _available(section)
    return estimate(workload(recipe, stage, device=device, section=section)), avail, what, device


def _candidates(section, stage: str):
    """Changes to try, least disruptive first: (the recipe keys changed, the section with them)."""
    d, r = section.distributed, section.resources
    shard = "fsdp2" if stage in ("dpo", "grpo") else "zero3"  # DPO's merging optimizer and GRPO's generate: FSDP2
    tries: list[dict[str, bool | int | str]] = []
    if not d.gradient_checkpointing:
        tries.append({"distributed.gradient_checkpointing": True})
    if d.strategy != shard and not (d.strategy == "zero3" and stage != "grpo"):
        tries.append({"distributed.strategy": shard, "distributed.gradient_checkpointing": True})
    base = {
        "distributed.strategy": shard if d.strategy == "ddp" or stage == "grpo" else d.strategy,
        "distributed.gradient_checkpointing": True,
    }
    if section.micro_batch_size > 1:
        tries.append({**base, "micro_batch_size": 1})
    gpus = max(r.gpus, 1)
    if r.gpus and gpus < 8:
        tries.append({**base, "resources.gpus": 8})
        gpus = 8
    for nodes in (2, 4, 8, 16, 32, 64, 128):
        if nodes > r.nodes:
            tries.append({**base, "resources.gpus": gpus, "resources.nodes": nodes})
    tries.append({**base, "distributed.cpu_offload": True})
    for change in tries:
        yield change, _apply(section, change)


def _apply(section, change: dict):
    dist = section.distributed.model_copy(
        update={k.split(".", 1)[1]: v for k, v in change.items() if k.startswith("distributed.")}
    )
    res = section.resources.model_copy(
        update={k.split(".", 1)[1]: v for k, v in change.items() if k.startswith("resources.")}
    )
    top = {k: v for k, v in change.items() if "." not in k}
    return section.model_copy(update={"distributed": dist, "resources": res, **top})


def _batch_splits(section) -> bool:
    glob = section.global_batch_size
    return not isinstance(glob, int) or glob % (section.micro_batch_size * section.resources.processes()) == 0


def _first_fit(recipe, stage: str, section) -> tuple[dict, float] | None:
    for change, candidate in _candidates(section, stage):
        if not _batch_splits(candidate):
            continue
        est, avail, _, _ = _estimate(recipe, stage, candidate)
        if est.total <= avail * HEADROOM:
            return change, est.total
    return None


def _fix(recipe, stage: str, section) -> str:
    """The least disruptive change that fits on this GPU, else on the smallest larger GPU of the table."""
    found = _first_fit(recipe, stage, section)
    if found is None and section.resources.gpus:
        mine = _available(section)[0]
        for product, gib in sorted(GPU_MEMORY_GIB.items(), key=lambda kv: kv[1]):
            if gib <= mine:
                continue
            res = section.resources.model_copy(update={"gpu_product": product, "gpu_memory_gib": None})
            found = _first_fit(recipe, stage, section.model_copy(update={"resources": res}))
            if found is not None:
                found = ({"resources.gpu_product": product, **found[0]}, found[1])
                break
    if found is None:
        return "nothing up to 128 nodes x 8 of the largest GPUs known fits; shorten the sequences or the batch"

    def current(key: str):
        obj = section
        for part in key.split("."):
            obj = getattr(obj, part)
        return obj

    sets = " ".join(
        f"{stage}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in found[0].items() if current(k) != v
    )
    return f"it fits with {sets} (~{found[1]:.1f} GiB per GPU)"


def plan_recipe(recipe) -> list[StagePlan]:
    out = []
    for stage in TRAINING:
        section = getattr(recipe, stage)
        if not section.enabled:
            continue
        est, avail, what, _ = _estimate(recipe, stage, section)
        res = section.resources
        p = StagePlan(stage, res.nodes, res.gpus, section.distributed.strategy, est, avail, what)
        if not p.fits:
            p.fix = _fix(recipe, stage, section)
        out.append(p)
    return out


def check(plans: list[StagePlan]) -> None:
    """Raise PlanRefused (one line per stage that does not fit) when any stage does not fit."""
    bad = [p.reason() for p in plans if not p.fits]
    if bad:
        raise PlanRefused("\n".join(bad))
