"""token_preference_loss: the one-launch Triton kernel (interpreter) and the torch path both
equal preference_loss on the masked per-sequence sums, loss and gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses import TOKEN_PREFERENCE_LOSS_TYPES, preference_loss, token_preference_loss

from _numerics import assert_fp32_contract, assert_rel


def case(seed, b, t, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(2 * b, t, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(2 * b, t, generator=g) < 0.7
    mask[:, 0] = True
    ref = -torch.rand(2 * b, generator=g, dtype=torch.float64) * 3 * t
    return lp.to(dtype), mask, ref[:b].to(dtype), ref[b:].to(dtype)


def reference(lp, mask, rw, rl, **kw):
    x = lp.detach().double().requires_grad_(True)
    b = lp.shape[0] // 2
    s = (x * mask).sum(1)
    n = mask.sum(1)
    out = preference_loss(
        s[:b], s[b:], rw.double(), rl.double(), chosen_lengths=n[:b], rejected_lengths=n[b:], **kw
    )
    (g,) = torch.autograd.grad(out.loss, x)
    return out.losses.detach(), g


def run(lp, mask, rw, rl, **kw):
    x = lp.detach().clone().requires_grad_(True)
    out = token_preference_loss(x, mask, rw, rl, **kw)
    (g,) = torch.autograd.grad(out.loss, x)
    return out.losses.detach(), g


@pytest.mark.interpreter
@pytest.mark.parametrize("loss_type", TOKEN_PREFERENCE_LOSS_TYPES)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 4),
    t=st.integers(1, 40),
    normalize=st.sampled_from(["mean", "sum"]),
)
def test_triton_kernel_matches_preference_loss(loss_type, seed, b, t, normalize):
    lp, mask, rw, rl = case(seed, b, t)
    kw = dict(
        loss_type=loss_type,
        beta=0.3,
        normalize=normalize,
        label_smoothing=0.1 if loss_type in ("sigmoid", "robust") else 0.0,
    )
    got_l, got_g = run(lp, mask, rw, rl, backend="triton", **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    # fp32: within 1e-5 / 1e-4 of float64, or 2x what PyTorch's fp32 composition makes where
    # the log-ratio s - s_ref cancels
    nat_l, nat_g = run(lp, mask, rw, rl, backend="torch", **kw)
    assert_fp32_contract(got_l, want_l, nat_l, 1e-5, "losses")
    assert_fp32_contract(got_g, want_g, nat_g, 1e-4, "gradient")
    assert torch.all(got_g[~mask] == 0)


@pytest.mark.parametrize("loss_type", TOKEN_PREFERENCE_LOSS_TYPES)
def test_torch_path_float64(loss_type):
    lp, mask, rw, rl = case(3, 3, 9, torch.float64)
    got_l, got_g = run(lp, mask, rw, rl, loss_type=loss_type, beta=0.2, backend="torch")
    want_l, want_g = reference(lp, mask, rw, rl, loss_type=loss_type, beta=0.2)
    assert_rel(got_l, want_l, 1e-14, "losses")
    assert_rel(got_g, want_g, 1e-14, "gradient")


def test_bad_input():
    lp, mask, rw, rl = case(0, 2, 5)
    with pytest.raises(InvalidInputError, match="loss_type"):
        token_preference_loss(lp, mask, rw, rl, loss_type="aot")
    with pytest.raises(ShapeError, match="mask"):
        token_preference_loss(lp, mask[:, :3], rw, rl)
    with pytest.raises(ShapeError, match="ref_chosen_logps"):
        token_preference_loss(lp, mask, rw[:1], rl)
    with pytest.raises(ShapeError, match="chosen then rejected"):
        token_preference_loss(lp[:3], mask[:3], rw, rl)
