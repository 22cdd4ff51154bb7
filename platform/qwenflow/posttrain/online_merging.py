"""Online Merging Optimizers (OnDARE-AdamW, OnTIES-AdamW) from "Online Merging Optimizers for Boosting Rewards
and Mitigating Tax in Alignment" (Lu et al., Qwen team, 2024; reference code
github.com/QwenLM/online_merging_optimizers).

Hand-written because no library ships it. At every step the AdamW update `delta` is merged with the reference
task vector tau_ref = theta_ref - theta_base (the SFT model's difference from the pre-trained model it came from):

    OnDARE:  delta' = Bernoulli(p) mask * delta / p                       (random sparsify, rescale by 1/p)
             theta += alpha * tau_ref + (1 - alpha) * delta'
    OnTIES:  delta' = delta on its top-p share of entries by magnitude     (magnitude sparsify)
             s = sign(tau_ref + delta');  keep only entries of tau_ref and delta' whose sign equals s
             theta += alpha * tau_ref_kept + (1 - alpha) * delta'_kept

tau_ref is sparsified once, when it is set, the same way (DARE: random keep-p and 1/p, clamped to +-clip_val;
TIES: magnitude top-p). Defaults follow the reference: reserve_p 0.01, alpha 1e-7, no extra L1 rescale.
Two deliberate differences from the reference code, so that p = 1 and alpha = 0 is exactly torch.optim.AdamW:
epsilon is added after bias correction, and decoupled weight decay is applied before the update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import torch
from torch import nn

Method = Literal["dare", "ties"]


def dare_sparsify(t: torch.Tensor, reserve_p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep each entry with probability reserve_p and scale kept entries by 1/reserve_p (unbiased: E = t)."""
    if reserve_p >= 1:
        return t.clone()
    keep = torch.rand(t.shape, generator=generator, device=t.device) < reserve_p
    return t * keep / reserve_p


def magnitude_sparsify(t: torch.Tensor, reserve_p: float) -> torch.Tensor:
    """Keep the reserve_p share of entries with the largest magnitude (at least one), zero the rest."""
    if reserve_p >= 1:
        return t.clone()
    k = max(1, int(reserve_p * t.numel()))
    flat = t.reshape(-1)
    idx = torch.topk(flat.abs(), k, sorted=False).indices
    out = torch.zeros_like(flat)
    out[idx] = flat[idx]
    return out.view_as(t)


def _l1_rescale(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Optional rescale (the reference's `rescale`): give the sparse tensor the L1 mass of the dense one."""
    new_sum = new.abs().sum()
    return new * (old.abs().sum() / new_sum) if new_sum > 0 else new


class OnlineMergingAdamW(torch.optim.Optimizer):
    """AdamW merged online with the reference task vector; `method` is "dare" (OnDARE) or "ties" (OnTIES).

    Call `set_reference_delta` before the first step; until then tau_ref is zero (OnDARE is then a sparsified
    AdamW and OnTIES a magnitude-sparsified AdamW).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        method: Method = "ties",
        reserve_p: float = 0.01,
        alpha: float = 1e-7,
        rescale: bool = False,
        clip_val: float = 1.0,
        seed: int | None = None,
    ):
        if method not in ("dare", "ties"):
            raise ValueError(f"online merging method must be 'dare' or 'ties', got {method!r}")
        if not 0 < reserve_p <= 1:
            raise ValueError(f"reserve_p must be in (0, 1], got {reserve_p}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.method, self.reserve_p, self.alpha, self.rescale, self.clip_val = (
            method,
            reserve_p,
            alpha,
            rescale,
            clip_val,
        )
        self._tau_at: dict[tuple[int, int], torch.Tensor] = {}  # sparsified tau_ref by (group, index), whole
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(seed)

    def state_dict(self) -> dict:
        """AdamW's state (tau_ref per parameter lives in `state` too) plus the DARE generator, so a resumed run
        draws the same sparsification masks as an uninterrupted one."""
        out = super().state_dict()
        if self.generator is not None:
            out["merge_generator"] = self.generator.get_state()
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        gen = state_dict.pop("merge_generator", None)
        super().load_state_dict(state_dict)
        if gen is not None and self.generator is not None:
            # accelerate's optimizer wrapper moves every state tensor to the device; a generator state is CPU-only
            self.generator.set_state(gen.cpu())

    def _sparsify(self, t: torch.Tensor) -> torch.Tensor:
        if self.method == "dare":
            out = dare_sparsify(t, self.reserve_p, self._gen(t))
        else:
            out = magnitude_sparsify(t, self.reserve_p)
        return _l1_rescale(out, t) if self.rescale else out

    def _gen(self, t: torch.Tensor) -> torch.Generator | None:
        return self.generator if self.generator is not None and t.device.type == "cpu" else None

    @torch.no_grad()
    def set_reference_delta(self, deltas: Mapping[nn.Parameter, torch.Tensor]) -> None:
        """tau_ref per parameter (theta_ref - theta_base), sparsified once here; parameters left out get none."""
        known = {p for g in self.param_groups for p in g["params"]}
        for p, d in deltas.items():
            if p not in known:
                raise ValueError("set_reference_delta got a tensor for a parameter this optimizer does not update")
            if d.shape != p.shape:
                raise ValueError(f"reference delta has shape {tuple(d.shape)}, parameter has {tuple(p.shape)}")
            tau = self._sparsify(_full(d.detach()).to(dtype=p.dtype))
            if self.method == "dare":
                tau = tau.clamp_(-self.clip_val, self.clip_val)  # the 1/p rescale can blow single entries up
            self.state[p]["tau_ref"] = _like(tau, p)
            self._tau_at[self._position(p)] = tau  # FSDP2/accelerate may swap p for a sharded copy before step 1

    def _position(self, p) -> tuple[int, int]:
        for gi, g in enumerate(self.param_groups):
            for pi, q in enumerate(g["params"]):
                if q is p:
                    return gi, pi
        raise KeyError("parameter not in this optimizer")

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            for pi, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("OnlineMergingAdamW does not support sparse gradients")
                state = self.state[p]
                if "tau_ref" not in state and (gi, pi) in self._tau_at:  # p was swapped for its sharded self
                    state["tau_ref"] = _like(self._tau_at.pop((gi, pi)), p)
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                bc1 = 1 - beta1 ** state["step"]
                bc2 = 1 - beta2 ** state["step"]
                denom = (v.sqrt() / math.sqrt(bc2)).add_(group["eps"])
                delta = (m / denom) * -(group["lr"] / bc1)  # the plain AdamW update

                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(self._merge(delta, state.get("tau_ref")))
        return loss

    def _merge(self, delta: torch.Tensor, tau: torch.Tensor | None) -> torch.Tensor:
        """The merged update. Top-k and sign election need the whole parameter: a sharded (FSDP2 DTensor) update is
        gathered, merged exactly as unsharded, and each rank keeps its own shard of the result."""
        # lazy: imports torch (seconds to import)
        from torch.distributed.tensor import DTensor

        if isinstance(delta, DTensor):
            merged = self._merge(delta.full_tensor(), None if tau is None else _full(tau))
            return _like(merged, delta)
        delta = self._sparsify(delta)
        if tau is None:
            tau = torch.zeros_like(delta)
        if self.method == "ties":
            # Sign consensus: the elected sign is that of the (unweighted) sum, as in TIES merging; ties go to +.
            elected = torch.where(tau + delta >= 0, 1.0, -1.0).to(delta.dtype)
            tau = tau * (torch.sign(tau) == elected)
            delta = delta * (torch.sign(delta) == elected)
        return self.alpha * tau + (1 - self.alpha) * delta


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly FSDP2-sharded) DTensor; plain tensors as they are."""
    # lazy: imports torch (seconds to import)
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`full` laid out like `ref`: this rank's shard of it when ref is a DTensor (no communication: every rank
    holds the same full tensor), else on ref's device."""
    # lazy: imports torch (seconds to import)
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(ref, DTensor):
        return distribute_tensor(full.detach().to(ref.device), ref.device_mesh, ref.placements, src_data_rank=None)
    return full.to(ref.device)


def split_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups as HF Trainer makes them: no weight decay on biases and norm weights."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def reference_deltas(
    model: nn.Module, base_state: Mapping[str, torch.Tensor] | None
) -> dict[nn.Parameter, torch.Tensor]:
    """tau_ref = the model's current weights (the reference = initial policy) minus the base model's.

    Parameters the base lacks or shapes that differ (e.g. a resized vocabulary) get no delta; with no base at all
    every delta is zero.
    """
    out = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        b = None if base_state is None else base_state.get(name)
        out[p] = p.detach() - b.to(p.device, p.dtype) if b is not None and b.shape == p.shape else torch.zeros_like(p)
    return out


def build_optimizer(
    model: nn.Module,
    name: str,
    *,
    lr: float,
    weight_decay: float,
    reserve_p: float,
    alpha: float,
    base_state: Mapping[str, torch.Tensor] | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    seed: int = 0,
) -> torch.optim.Optimizer:
    """The recipe's `dpo.optimizer`: "adamw", "ondare_adamw" or "onties_adamw"."""
    groups = split_decay_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    if name not in ("ondare_adamw", "onties_adamw"):
        raise ValueError(f"unknown optimizer {name!r}: use adamw, ondare_adamw or onties_adamw")
    opt = OnlineMergingAdamW(
        groups,
        lr=lr,
        betas=betas,
        eps=eps,
        method="dare" if name == "ondare_adamw" else "ties",
        reserve_p=reserve_p,
        alpha=alpha,
        seed=seed,
    )
    opt.set_reference_delta(reference_deltas(model, base_state))
    return opt
