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


# sigmoid with smoothing too: the kernel must ignore it there, as preference_loss (TRL) does
_SMOOTHED = ("sigmoid", "cdpo", "robust", "exo_pair", "aot")


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
        label_smoothing=0.1 if loss_type in _SMOOTHED else 0.0,
    )
    got_l, got_g = run(lp, mask, rw, rl, backend="triton", **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    # fp32: within 1e-5 / 1e-4 of float64, or 2x what PyTorch's fp32 composition makes where
    # the log-ratio s - s_ref cancels
    nat_l, nat_g = run(lp, mask, rw, rl, backend="torch", **kw)
    assert_fp32_contract(got_l, want_l, nat_l, 1e-5, "losses")
    assert_fp32_contract(got_g, want_g, nat_g, 1e-4, "gradient")
    assert torch.all(got_g[~mask] == 0)


@pytest.mark.interpreter
@pytest.mark.parametrize(
    "loss_type", ["sigmoid", "hinge", "ipo", "robust", "sigmoid_norm", "exo_pair", "discopop"]
)
@pytest.mark.parametrize(
    ("f_divergence", "f_alpha"),
    [("forward_kl", 0.5), ("js_divergence", 0.5), ("alpha_divergence", 0.3),
     ("alpha_divergence", 1.8)],
)  # fmt: skip
def test_triton_kernel_f_divergence_scores(loss_type, f_divergence, f_alpha):
    """The kernel's f-divergence scores (and their chain rule) equal preference_loss's, for
    every type whose margin is formed from them; small log-ratios keep forward KL finite."""
    lp, mask, rw, rl = case(11, 4, 12)
    rw = (lp[:4] * mask[:4]).sum(1) + torch.linspace(-0.5, 0.5, 4)  # |rho| <= 0.5
    rl = (lp[4:] * mask[4:]).sum(1) + torch.linspace(0.4, -0.6, 4)
    kw = dict(
        loss_type=loss_type, beta=0.5, f_divergence=f_divergence, f_alpha=f_alpha,
        label_smoothing=0.2 if loss_type in ("sigmoid", "cdpo", "exo_pair") else 0.0,
        discopop_tau=0.3,
    )  # fmt: skip
    got_l, got_g = run(lp, mask, rw, rl, backend="triton", **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    nat_l, nat_g = run(lp, mask, rw, rl, backend="torch", **kw)
    assert_fp32_contract(got_l, want_l, nat_l, 1e-5, "losses")
    assert_fp32_contract(got_g, want_g, nat_g, 1e-4, "gradient")
    plain_l, _ = run(lp, mask, rw, rl, backend="triton", **{**kw, "f_divergence": "reverse_kl"})
    assert not torch.allclose(plain_l, got_l)  # the scores changed the loss


@pytest.mark.interpreter
@pytest.mark.parametrize(
    ("loss_type", "seed", "t", "eps"), [("robust", 174, 34, 0.1), ("exo_pair", 173, 18, 0.1)]
)
def test_triton_kernel_near_a_loss_minimum(loss_type, seed, t, eps):
    """Hypothesis counterexamples (b=1): losses of ~1e-4 from log-ratios of ~50, where the
    fp32 sums s - s_ref lost the digits (robust: 2.5e-7 off, 3x PyTorch's error) and exo's
    two KL terms cancelled (2.5e-8 off on 2.4e-4). The kernel now sums in float64 and forms
    exo's KL without the cancellation."""
    lp, mask, rw, rl = case(seed, 1, t)
    kw = dict(loss_type=loss_type, beta=0.3, normalize="mean", label_smoothing=eps)
    got_l, got_g = run(lp, mask, rw, rl, backend="triton", **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    assert float(want_l.abs().max()) < 1e-3  # the regime of the counterexample
    assert_rel(got_l, want_l, 2e-5, "losses")
    assert_rel(got_g, want_g, 1e-5, "gradient")


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [
        ("torch", torch.float64),
        pytest.param("triton", torch.float32, marks=pytest.mark.interpreter),
    ],
)
def test_alpha_clamp_zeroes_the_gradient_like_torch(backend, dtype):
    lp, mask, rw, rl = case(5, 2, 6, dtype)
    rw = rw - 200.0  # rho ~ +200: (a - 1) rho = 100 beyond the clamp (80) for the chosen
    kw = dict(loss_type="sigmoid", beta=0.1, f_divergence="alpha_divergence", f_alpha=1.5)
    got_l, got_g = run(lp, mask, rw, rl, backend=backend, **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    tol = 1e-14 if dtype == torch.float64 else 1e-5
    assert_rel(got_l, want_l, tol, "losses")
    assert_rel(got_g, want_g, tol, "gradient")


@pytest.mark.interpreter
@pytest.mark.parametrize("f_alpha", [1.0, 1.0 + 1e-5, 1.0 - 1e-4])
def test_triton_kernel_alpha_near_one(f_alpha):
    """alpha -> 1 is the reverse KL: exactly 1 takes it (no 0/0), and near 1 the score
    expm1(u) / (alpha - 1) keeps its digits."""
    lp, mask, rw, rl = case(2, 3, 8)
    kw = dict(loss_type="sigmoid", beta=0.3, f_divergence="alpha_divergence", f_alpha=f_alpha)
    got_l, got_g = run(lp, mask, rw, rl, backend="triton", **kw)
    want_l, want_g = reference(lp, mask, rw, rl, **kw)
    assert torch.isfinite(got_l).all()
    assert_rel(got_l, want_l, 1e-5, "losses")
    assert_rel(got_g, want_g, 1e-4, "gradient")


@pytest.mark.parametrize("loss_type", TOKEN_PREFERENCE_LOSS_TYPES)
def test_torch_path_float64(loss_type):
    lp, mask, rw, rl = case(3, 3, 9, torch.float64)
    eps = 0.1 if loss_type == "exo_pair" else 0.0
    got_l, got_g = run(
        lp, mask, rw, rl, loss_type=loss_type, beta=0.2, label_smoothing=eps, backend="torch"
    )
    want_l, want_g = reference(lp, mask, rw, rl, loss_type=loss_type, beta=0.2, label_smoothing=eps)
    assert_rel(got_l, want_l, 1e-14, "losses")
    assert_rel(got_g, want_g, 1e-14, "gradient")


def test_bad_input():
    lp, mask, rw, rl = case(0, 2, 5)
    with pytest.raises(InvalidInputError, match="loss_type"):
        token_preference_loss(lp, mask, rw, rl, loss_type="sft")
    with pytest.raises(ShapeError, match="mask"):
        token_preference_loss(lp, mask[:, :3], rw, rl)
    with pytest.raises(ShapeError, match="ref_chosen_logps"):
        token_preference_loss(lp, mask, rw[:1], rl)
    with pytest.raises(ShapeError, match="chosen then rejected"):
        token_preference_loss(lp[:3], mask[:3], rw, rl)
    with pytest.raises(InvalidInputError, match="f_divergence"):
        token_preference_loss(lp, mask, rw, rl, f_divergence="kl")
    with pytest.raises(InvalidInputError, match="exo_pair"):
        token_preference_loss(lp, mask, rw, rl, loss_type="exo_pair")
    with pytest.raises(InvalidInputError, match="discopop_tau"):
        token_preference_loss(lp, mask, rw, rl, loss_type="discopop", discopop_tau=0.0)
