"""The Online Merging Optimizer's maths on small tensors one can check by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qwenflow.posttrain.online_merging import (
    OnlineMergingAdamW,
    build_optimizer,
    dare_sparsify,
    magnitude_sparsify,
    reference_deltas,
)


def _param(values):
    return nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _one_step(opt, p, grad):
    p.grad = torch.tensor(grad, dtype=torch.float32)
    opt.step()


@pytest.mark.parametrize("method", ["dare", "ties"])
def test_p1_alpha0_is_exactly_adamw(method):
    torch.manual_seed(0)
    init = torch.randn(5, 7)
    a, b = nn.Parameter(init.clone()), nn.Parameter(init.clone())
    ref = torch.optim.AdamW([a], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, foreach=False)
    om = OnlineMergingAdamW(
        [b], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1, method=method, reserve_p=1.0, alpha=0.0
    )
    om.set_reference_delta({b: torch.randn(5, 7)})  # alpha 0: the reference must not matter ... for DARE
    if method == "ties":
        om.set_reference_delta({b: torch.zeros(5, 7)})  # ... TIES still elects signs with it, so give it none
    for _ in range(6):
        g = torch.randn(5, 7)
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        om.step()
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9)


def test_first_step_by_hand_with_merge():
    # First AdamW step: m = 0.1 g, v = 0.001 g^2, bias-corrected -> update = -lr * g/|g| (eps ~ 0).
    p = _param([1.0, 1.0, 1.0])
    opt = OnlineMergingAdamW([p], lr=0.1, eps=0.0, method="dare", reserve_p=1.0, alpha=0.5)
    opt.set_reference_delta({p: torch.tensor([0.2, -0.4, 0.0])})
    _one_step(opt, p, [1.0, -2.0, 3.0])
    # theta + 0.5 * tau + 0.5 * (-0.1 * sign(g))
    torch.testing.assert_close(p.detach(), torch.tensor([1 + 0.1 - 0.05, 1 - 0.2 + 0.05, 1 + 0 - 0.05]))


def test_dare_sparsify_is_unbiased_and_rescales_by_1_over_p():
    t = torch.tensor([1.0, -2.0, 0.5, 4.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([dare_sparsify(t, 0.25, g) for _ in range(20000)])
    # every kept entry is exactly t / p; the mean over draws is t
    assert set(torch.unique(draws / t).tolist()) <= {0.0, 4.0}
    torch.testing.assert_close(draws.mean(0), t, rtol=0.06, atol=0.0)
    assert 0.23 < (draws != 0).float().mean() < 0.27


def test_ondare_expected_update_equals_adamw_update():
    # Many independent one-step runs: the mean sparsified step equals the dense AdamW step.
    g = torch.tensor([1.0, -2.0, 3.0, -0.5])
    dense = _param([0.0] * 4)
    adam = torch.optim.AdamW([dense], lr=0.1, eps=0.0, weight_decay=0.0)
    dense.grad = g.clone()
    adam.step()
    steps = []
    opt_p = _param([0.0] * 4)
    for seed in range(4000):
        with torch.no_grad():
            opt_p.zero_()
        opt = OnlineMergingAdamW([opt_p], lr=0.1, eps=0.0, method="dare", reserve_p=0.2, alpha=0.0, seed=seed)
        _one_step(opt, opt_p, g.tolist())
        steps.append(opt_p.detach().clone())
    steps = torch.stack(steps)
    assert set(torch.unique(steps / dense.detach()).tolist()) <= {0.0, 5.0}
    torch.testing.assert_close(steps.mean(0), dense.detach(), rtol=0.1, atol=0.0)


def test_magnitude_sparsify_keeps_top_share():
    t = torch.tensor([0.1, -5.0, 0.3, 2.0, -0.2, 0.0, 1.0, -0.05, 0.4, 0.6])
    torch.testing.assert_close(magnitude_sparsify(t, 0.2), torch.tensor([0, -5.0, 0, 2.0, 0, 0, 0, 0, 0, 0]))
    assert magnitude_sparsify(t, 0.01).count_nonzero() == 1  # at least one entry survives


def test_onties_keeps_only_sign_consistent_entries():
    # Update = -lr * sign(g) = [-1, -1, +1, +1] * 0.1; tau = [+0.05, -0.3, -0.3, +0.2].
    # Elected sign of tau + delta: [-, -, -, +]. Entry 0: tau disagrees -> dropped; entry 2: delta disagrees -> dropped.
    p = _param([0.0, 0.0, 0.0, 0.0])
    opt = OnlineMergingAdamW([p], lr=0.1, eps=0.0, method="ties", reserve_p=1.0, alpha=0.5)
    opt.set_reference_delta({p: torch.tensor([0.05, -0.3, -0.3, 0.2])})
    _one_step(opt, p, [1.0, 1.0, -1.0, -1.0])
    expected = 0.5 * torch.tensor([0.0, -0.3, -0.3, 0.2]) + 0.5 * torch.tensor([-0.1, -0.1, 0.0, 0.1])
    torch.testing.assert_close(p.detach(), expected)


def test_onties_sparsifies_update_by_magnitude():
    # Second step: update_i ~ m_i / sqrt(v_i) grows with how consistent g_i was, so the top 20% are known.
    p = _param([0.0] * 10)
    opt = OnlineMergingAdamW([p], lr=1.0, eps=0.0, method="ties", reserve_p=0.2, alpha=0.0)
    _one_step(opt, p, [1.0] * 10)
    assert p.detach().count_nonzero() == 2  # reserve_p 0.2 of 10 entries
    with torch.no_grad():
        p.zero_()
    _one_step(opt, p, [1.0, 1.0] + [-1.0] * 8)  # entries 0, 1 kept their sign: the largest steps
    assert p.detach()[:2].lt(0).all() and p.detach()[2:].eq(0).all()


def test_reference_weights_untouched_and_delta_copied():
    model = nn.Linear(3, 2)
    base = {k: v.clone() - 0.1 for k, v in model.state_dict().items()}
    base_before = {k: v.clone() for k, v in base.items()}
    opt = build_optimizer(model, "onties_adamw", lr=1e-2, weight_decay=0.1, reserve_p=0.5, alpha=0.1, base_state=base)
    ref_before = {k: v.clone() for k, v in model.state_dict().items()}
    taus = {id(p): opt.state[p]["tau_ref"].clone() for p in model.parameters()}
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    for k in base:
        assert torch.equal(base[k], base_before[k])  # the base weights are read, never written
    for p in model.parameters():
        assert torch.equal(opt.state[p]["tau_ref"], taus[id(p)])  # tau_ref is fixed through training
    assert any(not torch.equal(v, ref_before[k]) for k, v in model.state_dict().items())


def test_reference_deltas_is_ref_minus_base():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    d = reference_deltas(model, {"weight": torch.tensor([[0.5, 3.0]])})
    torch.testing.assert_close(d[model.weight], torch.tensor([[0.5, -1.0]]))
    assert reference_deltas(model, None)[model.weight].count_nonzero() == 0


def test_bad_settings_are_rejected():
    p = _param([0.0])
    with pytest.raises(ValueError, match="reserve_p"):
        OnlineMergingAdamW([p], reserve_p=0.0)
    with pytest.raises(ValueError, match="method"):
        OnlineMergingAdamW([p], method="slerp")
    with pytest.raises(ValueError, match="shape"):
        OnlineMergingAdamW([p]).set_reference_delta({p: torch.zeros(2)})
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(nn.Linear(1, 1), "sgd", lr=1, weight_decay=0, reserve_p=1, alpha=0)
