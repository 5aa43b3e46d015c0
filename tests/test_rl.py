"""fastalign.rl: the GAE / reward-to-go scan against the frameworks' loop in float64 (masks
with interior gaps, T = 1, huge and tiny gammas, bootstrap values), the low-precision rule,
RLOO against an explicit leave-one-out loop, and the KL estimators' gradients against the
exact KL by enumerating every sequence of a small policy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastalign import rl
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference.rl import gae_loop, rloo_loop


def _inputs(seed: int, b: int, t: int, p_valid: float, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(b, t, generator=g, dtype=torch.float64)
    v = torch.randn(b, t, generator=g, dtype=torch.float64)
    m = (torch.rand(b, t, generator=g) < p_valid).to(torch.int64)
    last = torch.randn(b, generator=g, dtype=torch.float64)
    return r.to(dtype), v.to(dtype), m, last.to(dtype)


@settings(deadline=None, max_examples=60)
@given(
    st.integers(0, 2**31),
    st.integers(1, 4),
    st.integers(1, 60),
    st.sampled_from([0.0, 1e-6, 0.5, 0.99, 1.0, 1.5]),
    st.sampled_from([0.0, 0.5, 0.95, 1.0]),
    st.sampled_from([1.0, 0.7, 0.3]),
    st.booleans(),
)
@example(seed=0, b=1, t=1, gamma=0.99, lam=0.95, p_valid=1.0, bootstrap=True)
def test_gae_equals_the_loop_in_float64(seed, b, t, gamma, lam, p_valid, bootstrap):
    r, v, m, last = _inputs(seed, b, t, p_valid)
    last = last if bootstrap else None
    adv, ret = rl.gae(r, v, m, gamma=gamma, lam=lam, last_values=last)
    want_adv, want_ret = gae_loop(r, v, m, gamma, lam, last)
    torch.testing.assert_close(adv, want_adv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ret, want_ret, rtol=1e-12, atol=1e-12)
    assert adv.dtype == torch.float64
    assert adv.shape == r.shape


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**31), st.integers(1, 50), st.sampled_from([0.5, 0.99, 1.0]))
def test_discounted_returns_and_gamma_lambda_one(seed, t, gamma):
    r, v, m, _ = _inputs(seed, 3, t, 0.7)
    g = rl.discounted_returns(r, m, gamma=gamma)
    # reward-to-go by hand: the valid tokens of each row, in reverse
    want = torch.zeros_like(r)
    for i in range(3):
        acc = 0.0
        for j in reversed(range(t)):
            if m[i, j]:
                acc = float(r[i, j]) + gamma * acc
                want[i, j] = acc
    torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-12)
    if gamma == 1.0:  # gamma = lambda = 1: GAE is the reward-to-go minus the value
        adv, _ = rl.gae(r, v, m, gamma=1.0, lam=1.0)
        torch.testing.assert_close(adv, (g - v) * m, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_error_at_most_twice_the_loops(dtype):
    """Long rows (T = 4096, gamma = lam = 1: the sums grow), error vs float64 of the scan at
    most 2x the error of the framework loop run in the same dtype."""
    r, v, m, _ = _inputs(1, 4, 4096, 0.9)
    r = r + 0.5  # a drift, so the reward-to-go is large
    want, _ = gae_loop(r, v, m, 1.0, 1.0)
    got, _ = rl.gae(r.to(dtype), v.to(dtype), m, gamma=1.0, lam=1.0)
    naive, _ = gae_loop(r.to(dtype), v.to(dtype), m, 1.0, 1.0)
    err = (got.double() - want).abs().max().item()
    err_naive = (naive.double() - want).abs().max().item()
    assert got.dtype == dtype
    assert err <= 2 * err_naive + 1e-12, (err, err_naive)


def test_masked_tokens_are_zero_and_gaps_are_skipped():
    r = torch.tensor([[1.0, 5.0, 2.0, 7.0]], dtype=torch.float64)
    v = torch.tensor([[0.5, 9.0, 1.0, 3.0]], dtype=torch.float64)
    m = torch.tensor([[True, False, True, False]])
    adv, ret = rl.gae(r, v, m, gamma=0.9, lam=0.8, last_values=torch.tensor([2.0]).double())
    # token 2: delta = 2 + 0.9 * 2 (bootstrap) - 1 = 2.8; token 0 sees token 2 as next
    a2 = 2.0 + 0.9 * 2.0 - 1.0
    a0 = 1.0 + 0.9 * 1.0 - 0.5 + 0.9 * 0.8 * a2
    torch.testing.assert_close(adv, torch.tensor([[a0, 0.0, a2, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[a0 + 0.5, 0.0, a2 + 1.0, 0.0]]).double())


def test_large_batch_rows_in_parallel_equal_one_at_a_time():
    r, v, m, last = _inputs(3, 64, 2048, 0.8, torch.float32)
    adv, ret = rl.gae(r, v, m, gamma=0.99, lam=0.95, last_values=last)
    for i in (0, 17, 63):
        a1, r1 = rl.gae(r[i : i + 1], v[i : i + 1], m[i : i + 1], gamma=0.99, lam=0.95,
                        last_values=last[i : i + 1])  # fmt: skip
        assert torch.equal(adv[i], a1[0])
        assert torch.equal(ret[i], r1[0])


def test_scan_bad_input_is_named():
    r, v, m, _ = _inputs(0, 2, 5, 1.0)
    r_nan = r.clone()
    r_nan[1, 3] = float("nan")
    with pytest.raises(InvalidInputError, match=r"rewards\[1, 3\] = nan"):
        rl.gae(r_nan, v, m)
    m_gap = m.clone()
    m_gap[1, 3] = 0
    rl.gae(r_nan, v, m_gap)  # a NaN on a masked token is ignored
    with pytest.raises(ShapeError, match="mask must have shape"):
        rl.gae(r, v, m[:, :4])
    with pytest.raises(ShapeError, match="values must have shape"):
        rl.gae(r, v[:1], m)
    with pytest.raises(ShapeError, match="last_values must have shape"):
        rl.gae(r, v, m, last_values=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="gamma"):
        rl.gae(r, v, m, gamma=-0.1)
    with pytest.raises(InvalidInputError, match="lam"):
        rl.gae(r, v, m, lam=1.5)
    with pytest.raises(TypeError, match=r"values must be a torch\.Tensor"):
        rl.gae(r, None, m)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"rewards must be \[B, T\]"):
        rl.discounted_returns(r[0], m[0])
    with pytest.raises(TypeError, match="rewards must be"):
        rl.discounted_returns(r.numpy(), m)  # type: ignore[arg-type]


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**31), st.integers(2, 6), st.integers(1, 5))
def test_rloo_equals_leave_one_out(seed, k, groups):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(k * groups, generator=g, dtype=torch.float64) * 3
    got = rl.rloo_advantages(r, k)
    torch.testing.assert_close(got, rloo_loop(r, k), rtol=1e-12, atol=1e-12)
    # the k / (k - 1) form
    mean = r.view(-1, k).mean(dim=1, keepdim=True)
    torch.testing.assert_close(got, (k / (k - 1) * (r.view(-1, k) - mean)).reshape(-1))


def test_rloo_rules():
    with pytest.raises(ShapeError, match="multiple of group_size"):
        rl.rloo_advantages(torch.ones(5), 2)
    with pytest.raises(InvalidInputError, match=r"rewards\[2\] is inf"):
        rl.rloo_advantages(torch.tensor([1.0, 0.0, float("inf"), 1.0]), 2)
    torch.testing.assert_close(rl.rloo_advantages(torch.ones(4), 2), torch.zeros(4))
    # a group of one, and a lone scorable completion: no sibling, advantage 0
    torch.testing.assert_close(rl.rloo_advantages(torch.tensor([3.0, 1.0]), 1), torch.zeros(2))
    nan = float("nan")
    got = rl.rloo_advantages(torch.tensor([nan, 1.0, nan, 2.0, 4.0, 1.0]), 3)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, 0.0, -0.5, 2.5, -2.0]))


# -- KL estimators: exact expectations over every sequence of a small policy ---------------

V, T = 4, 2  # vocabulary, sequence length: V ** T sequences


def _policy():
    g = torch.Generator().manual_seed(7)
    theta = torch.randn(T, V, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(T, V, generator=g, dtype=torch.float64)
    return theta, ref


def _expected_grad(kind: str, grad: str) -> tuple[torch.Tensor, torch.Tensor]:
    """E_{y ~ pi}[d/dtheta sum_t kl_t(y)], exactly (the probabilities as constant weights),
    and the gradient of the exact KL(pi || pi_ref) of the sequence distribution."""
    theta, ref = _policy()
    logp = torch.log_softmax(theta, dim=-1)
    ref_logp = torch.log_softmax(ref, dim=-1)
    total = torch.zeros((), dtype=torch.float64)
    for seq in itertools.product(range(V), repeat=T):
        idx = torch.tensor(seq)
        lp = logp[torch.arange(T), idx]
        rlp = ref_logp[torch.arange(T), idx]
        weight = lp.sum().exp().detach()
        total = total + weight * rl.kl(lp, rlp, kind=kind, grad=grad).sum()
    (g_est,) = torch.autograd.grad(total, theta, retain_graph=True)
    exact = (logp.exp() * (logp - ref_logp)).sum()  # tokens independent: a sum over t
    (g_exact,) = torch.autograd.grad(exact, theta)
    return g_est, g_exact


@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "abs"])
def test_unbiased_gradient_is_the_kl_gradient(kind):
    g_est, g_exact = _expected_grad(kind, "unbiased")
    torch.testing.assert_close(g_est, g_exact, rtol=1e-10, atol=1e-12)


def test_k2_naive_gradient_is_unbiased_and_k1_k3_are_not():
    g2, g_exact = _expected_grad("k2", "naive")
    torch.testing.assert_close(g2, g_exact, rtol=1e-10, atol=1e-12)
    g1, _ = _expected_grad("k1", "naive")
    assert g1.abs().max() < 1e-12  # E[d log pi] = 0
    g3, _ = _expected_grad("k3", "naive")
    assert (g3 - g_exact).abs().max() > 1e-3  # k3 in the loss: biased


def test_kl_values_where_and_checks():
    lp = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    d = lp.detach() - ref
    want = {"k1": d, "k2": d * d / 2, "k3": torch.exp(-d) + d - 1, "abs": d.abs()}
    for kind, w in want.items():
        for grad in ("naive", "unbiased"):
            torch.testing.assert_close(rl.kl(lp, ref, kind=kind, grad=grad), w)
        out = rl.kl(lp, ref, kind=kind, where="reward")
        assert not out.requires_grad
        torch.testing.assert_close(out, w)
    assert np.all(rl.kl(lp, ref, kind="k3").detach().numpy() >= 0)
    with pytest.raises(InvalidInputError, match="kind"):
        rl.kl(lp, ref, kind="k4")
    with pytest.raises(InvalidInputError, match="unbiased"):
        rl.kl(lp, ref, where="reward", grad="unbiased")
    with pytest.raises(ShapeError, match="ref_logps must have shape"):
        rl.kl(lp, ref[:1])


# -- the Triton scan, on CPU under TRITON_INTERPRET=1 (tiny shapes) ------------------------


@pytest.mark.interpreter
@settings(deadline=None, max_examples=25)
@given(
    st.integers(0, 2**31),
    st.integers(1, 3),
    st.integers(1, 70),
    st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.5]),
    st.sampled_from([0.0, 0.95, 1.0]),
    st.sampled_from([1.0, 0.6]),
    st.booleans(),
    st.booleans(),
)
def test_triton_scan_matches_the_loop(seed, b, t, gamma, lam, p_valid, bootstrap, with_values):
    """Blocks of 16 tokens: several per row, so the carries between blocks are exercised."""
    from fastalign.kernels import rl_scan

    r, v, m, last = _inputs(seed, b, t, p_valid)
    last = last if bootstrap else None
    vals = v if with_values else None
    adv, ret = rl_scan.gae(r, vals, (m != 0).to(torch.uint8), last, gamma, lam, block_t=16)
    want_adv, want_ret = gae_loop(r, v if with_values else torch.zeros_like(r), m, gamma, lam,
                                  last)  # fmt: skip
    torch.testing.assert_close(adv, want_adv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ret, want_ret, rtol=1e-12, atol=1e-12)


@pytest.mark.interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_backend_through_the_api(dtype):
    r, v, m, last = _inputs(5, 2, 40, 0.7, dtype)
    got = rl.gae(r, v, m, gamma=0.9, lam=0.8, last_values=last, backend="triton")
    want = rl.gae(r, v, m, gamma=0.9, lam=0.8, last_values=last, backend="rust")
    for g, w in zip(got, want, strict=True):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w.double(), rtol=1e-6, atol=1e-6)
    g = rl.discounted_returns(r, m, gamma=0.9, backend="triton")
    torch.testing.assert_close(g, rl.discounted_returns(r, m, gamma=0.9, backend="rust"))


def test_backend_names_and_the_reference():
    r, v, m, _ = _inputs(2, 2, 9, 0.7)
    got = rl.gae(r, v, m, gamma=0.9, lam=0.8, backend="reference")
    want = rl.gae(r, v, m, gamma=0.9, lam=0.8, backend="rust")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(InvalidInputError, match="backend"):
        rl.gae(r, v, m, backend="cuda")
