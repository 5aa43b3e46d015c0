"""The 3-pass fused DPO step on CUDA at real sizes (Triton row kernels, bf16 exp-scaled tiles
for bf16/fp16 heads): loss, d hidden and d weight within 2x of PyTorch's own materialized
path in the same dtype vs float64 (plus a small atol), with every slice kept, some
recomputed and none kept."""

from __future__ import annotations

import pytest
import torch

from fastalign.losses import FusedLinearPreferenceLoss, preference_loss

pytestmark = pytest.mark.gpu


def _naive(hidden, weight, labels, ref_w, ref_l, dtype):
    """Materialized logits in ``dtype`` (as a stock trainer), float64 when asked."""
    logits = (hidden @ weight.t()).to(dtype)
    lp = torch.log_softmax(logits.float() if dtype != torch.float64 else logits, -1)
    lp = lp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    lp = torch.where(labels != -100, lp, torch.zeros_like(lp))
    s = lp.sum(1)
    b = s.shape[0] // 2
    return preference_loss(s[:b], s[b:], ref_w, ref_l, beta=0.1).loss


def _grads(fn, hidden, weight):
    h = hidden.detach().requires_grad_(True)
    w = weight.detach().requires_grad_(True)
    loss = fn(h, w)
    dh, dw = torch.autograd.grad(loss, [h, w])
    return loss.detach(), dh, dw


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("budget", [None, 2**28, 1])
def test_fused_dpo_within_2x_of_torch(dtype, budget):
    b, t, prompt, h, v = 2, 1024, 128, 2048, 128256
    g = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(2 * b, t, h, device="cuda", generator=g).to(dtype)
    weight = (torch.randn(v, h, device="cuda", generator=g) * (2 / h**0.5)).to(dtype)
    labels = torch.randint(0, v, (2 * b, t), device="cuda", generator=g)
    labels[:, :prompt] = -100
    ref_w = -torch.rand(b, device="cuda", generator=g) * 5 * t
    ref_l = -torch.rand(b, device="cuda", generator=g) * 5 * t
    mod = FusedLinearPreferenceLoss("sigmoid", beta=0.1, memory_budget=budget)
    got = _grads(lambda x, w: mod(x, w, labels, ref_w, ref_l).loss, hidden, weight)
    nat = _grads(lambda x, w: _naive(x, w, labels, ref_w, ref_l, dtype), hidden, weight)
    want = _grads(
        lambda x, w: _naive(x, w, labels, ref_w.double(), ref_l.double(), torch.float64),
        hidden.double(),
        weight.double(),
    )
    for name, x, base, r in zip(("loss", "dhidden", "dweight"), got, nat, want, strict=True):
        err = float((x.double() - r).abs().max())
        err_naive = float((base.double() - r).abs().max())
        assert err <= 2 * err_naive + 1e-6 * float(r.abs().max()), (name, err, err_naive)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("budget", [None, 1])
def test_fused_grpo_within_2x_of_torch(dtype, budget):
    from fastalign.losses import FusedLinearGRPOLoss, grpo_loss

    b, t, h, v = 8, 512, 2048, 151936
    g = torch.Generator(device="cuda").manual_seed(1)
    hidden = torch.randn(b, t, h, device="cuda", generator=g).to(dtype)
    weight = (torch.randn(v, h, device="cuda", generator=g) * (2 / h**0.5)).to(dtype)
    labels = torch.randint(0, v, (b, t), device="cuda", generator=g)
    labels[:, 400:] = -100
    adv = torch.randn(b, device="cuda", generator=g)
    mask = labels != -100

    def naive(x, w, dt):
        logits = (x @ w.t()).to(dt)
        lp = torch.log_softmax(logits.float() if dt != torch.float64 else logits, -1)
        lp = lp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        return grpo_loss(lp, None, adv.to(lp.dtype), mask).loss

    mod = FusedLinearGRPOLoss("grpo", memory_budget=budget)
    got = _grads(lambda x, w: mod(x, w, labels, adv).loss, hidden, weight)
    nat = _grads(lambda x, w: naive(x, w, dtype), hidden, weight)
    want = _grads(lambda x, w: naive(x, w, torch.float64), hidden.double(), weight.double())
    for name, x, base, r in zip(("loss", "dhidden", "dweight"), got, nat, want, strict=True):
        err = float((x.double() - r).abs().max())
        err_naive = float((base.double() - r).abs().max())
        assert err <= 2 * err_naive + 1e-6 * float(r.abs().max()), (name, err, err_naive)
