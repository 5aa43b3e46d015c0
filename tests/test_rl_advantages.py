"""fastalign.rl's group and batch estimators against the frameworks' own definitions in
float64 (<= 1e-12): REINFORCE++ and its group baseline and ReMax vs verl's ``core_algos``,
the KL clamps vs verl's ``kl_penalty`` and OpenRLHF's ``compute_approx_kl`` (transcriptions
in :mod:`fastalign.reference.rl`, checked against the packages by
tests/peers/check_rl_transcriptions.py), RLOO vs TRL's RLOOTrainer (its lines, checked
against the installed TRL); the NaN / group-of-one rules; the off-policy unbiased KL gradient
by exact enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign import rl
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference import rl as ref


def _batch(seed, b, t, p_valid, gaps=True):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(b, t, generator=g) < p_valid).long() if gaps else torch.ones(b, t).long()
    m[:, 0] = 1  # every completion has a token
    if not gaps:  # right padding only
        lengths = torch.randint(1, t + 1, (b,), generator=g)
        m = (torch.arange(t)[None, :] < lengths[:, None]).long()
    scores = torch.randn(b, generator=g, dtype=torch.float64)
    kl = torch.randn(b, t, generator=g, dtype=torch.float64) * 0.1
    tok = torch.randn(b, t, generator=g, dtype=torch.float64)
    return m, scores, kl, tok


def _at_last_token(scores, m):
    out = torch.zeros(m.shape, dtype=scores.dtype)
    last = m.shape[1] - 1 - m.flip(1).argmax(1)
    out[torch.arange(m.shape[0]), last] = scores
    return out


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(2, 6),
    t=st.integers(1, 12),
    p_valid=st.sampled_from([1.0, 0.7, 0.4]),
    gamma=st.sampled_from([1.0, 0.99, 0.5, 1e-6, 1.5]),
    kl_coef=st.sampled_from([0.0, 0.05]),
)
def test_reinforce_plus_plus_equals_verl(seed, b, t, p_valid, gamma, kl_coef):
    m, scores, kl, _ = _batch(seed, b, t, p_valid)
    if int(m.sum()) < 2:
        return  # verl's whitening needs two tokens (tested below)
    adv, ret = rl.reinforce_plus_plus(scores, m, kl=kl, kl_coef=kl_coef, gamma=gamma)
    tok = _at_last_token(scores, m) - kl_coef * kl * m
    want_adv, want_ret = ref.verl_reinforce_pp(tok, m, gamma)
    torch.testing.assert_close(ret, want_ret, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(adv, want_adv, rtol=1e-12, atol=1e-12)
    # token-level rewards in, the same
    adv2, _ = rl.reinforce_plus_plus(tok, m, gamma=gamma)
    torch.testing.assert_close(adv2, want_adv, rtol=1e-12, atol=1e-12)


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    groups=st.integers(1, 4),
    k=st.integers(2, 5),
    t=st.integers(1, 8),
    whiten=st.sampled_from(["verl", "openrlhf", "none"]),
)
def test_reinforce_plus_plus_baseline_equals_verl(seed, groups, k, t, whiten):
    m, scores, _, _ = _batch(seed, groups * k, t, 0.7)
    adv, ret = rl.reinforce_plus_plus(scores, m, baseline="group", group_size=k, whiten=whiten)
    centered = (scores.view(-1, k) - scores.view(-1, k).mean(1, keepdim=True)).view(-1)
    torch.testing.assert_close(ret, centered[:, None] * m, rtol=1e-12, atol=1e-12)
    if whiten == "verl":
        want = ref.verl_reinforce_pp_baseline(scores, m, k)
        torch.testing.assert_close(adv, want, rtol=1e-12, atol=1e-12)
    elif whiten == "openrlhf":  # OpenRLHF: population variance, clamped at 1e-8
        x = ret[m.bool()]
        want = (ret - x.mean()) * ((x - x.mean()) ** 2).mean().clamp(min=1e-8).rsqrt() * m
        torch.testing.assert_close(adv, want, rtol=1e-12, atol=1e-12)
    else:
        torch.testing.assert_close(adv, ret)


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 6),
    t=st.integers(1, 10),
    token_level=st.booleans(),
)
def test_remax_equals_verl_on_valid_tokens(seed, b, t, token_level):
    m, scores, _, tok = _batch(seed, b, t, 0.6)
    base = torch.randn(b, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    rewards = tok * m if token_level else scores
    adv, ret = rl.remax_advantages(rewards, base, m)
    full = rewards if token_level else _at_last_token(scores, m)
    want_adv, want_ret = ref.verl_remax(full, base, m)
    torch.testing.assert_close(adv, want_adv * m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ret * m, want_ret * m, rtol=1e-12, atol=1e-12)
    assert bool((adv[m == 0] == 0).all())
    assert bool((ret[m == 0] == 0).all())


def test_nan_rewards_are_unscorable_everywhere():
    m = torch.ones(4, 3, dtype=torch.long)
    r = torch.tensor([1.0, math.nan, 0.0, 2.0], dtype=torch.float64)
    adv, ret = rl.reinforce_plus_plus(r, m, whiten="verl")
    assert bool((adv[1] == 0).all())
    assert bool((ret[1] == 0).all())
    # the others are whitened among themselves (9 valid tokens)
    kept = m.clone()
    kept[1] = 0
    want = ref.verl_reinforce_pp(_at_last_token(r.nan_to_num(), kept), kept, 1.0)[0]
    torch.testing.assert_close(adv, want, rtol=1e-12, atol=1e-12)
    adv, _ = rl.reinforce_plus_plus(r, m, baseline="group", group_size=2, whiten="none")
    assert bool((adv[:2] == 0).all())  # a lone scorable completion: centered on itself
    torch.testing.assert_close(adv[2:, 0], torch.tensor([-1.0, 1.0], dtype=torch.float64))
    adv, ret = rl.remax_advantages(r, torch.tensor([0.5, 0.5, math.nan, 0.5]), m)
    assert bool((adv[1:3] == 0).all())


def test_advantage_bad_input_is_named():
    m = torch.ones(2, 3)
    r = torch.ones(2)
    with pytest.raises(InvalidInputError, match=r"rewards\[1\] is inf"):
        rl.reinforce_plus_plus(torch.tensor([0.0, math.inf]), m)
    with pytest.raises(InvalidInputError, match="needs group_size"):
        rl.reinforce_plus_plus(r, m, baseline="group")
    with pytest.raises(InvalidInputError, match="takes no kl"):
        rl.reinforce_plus_plus(r, m, baseline="group", group_size=2, kl=m)
    with pytest.raises(InvalidInputError, match="group_size applies"):
        rl.reinforce_plus_plus(r, m, group_size=2)
    with pytest.raises(InvalidInputError, match="baseline must be one of"):
        rl.reinforce_plus_plus(r, m, baseline="mean")
    with pytest.raises(InvalidInputError, match="whiten must be one of"):
        rl.reinforce_plus_plus(r, m, whiten="std")
    with pytest.raises(InvalidInputError, match="at least 2 valid tokens"):
        rl.reinforce_plus_plus(torch.ones(1), torch.tensor([[1, 0]]))
    with pytest.raises(ShapeError, match=r"rewards must be \[2\]"):
        rl.reinforce_plus_plus(torch.ones(3), m)
    with pytest.raises(ShapeError, match="kl must have shape"):
        rl.reinforce_plus_plus(r, m, kl=torch.ones(2, 2))
    bad = torch.ones(2, 3)
    bad[1, 2] = math.nan
    with pytest.raises(InvalidInputError, match=r"rewards\[1, 2\] = nan"):
        rl.reinforce_plus_plus(bad, m)
    with pytest.raises(ShapeError, match=r"baseline_rewards must be \[2\]"):
        rl.remax_advantages(r, torch.ones(3), m)
    with pytest.raises(ShapeError, match="mask must be"):
        rl.remax_advantages(r, r, torch.ones(2))


# -- RLOO: TRL RLOOTrainer's lines (inline in _generate_and_score_completions) -------------

_TRL_RLOO_LINES = (
    "scorable_counts = (~torch.isnan(grouped_rewards)).sum(dim=1, keepdim=True)",
    "grouped_sum = torch.nansum(grouped_rewards, dim=1, keepdim=True)",
    "baselines = (grouped_sum - grouped_rewards) / (scorable_counts - 1)",
    "advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)",
    "advantages = torch.nan_to_num(advantages, nan=0.0)",
)


def _trl_rloo(rewards, k, normalize):
    from trl.trainer.utils import nanstd

    grouped = rewards.view(-1, k)
    counts = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    base = ((torch.nansum(grouped, dim=1, keepdim=True) - grouped) / (counts - 1)).view(-1)
    adv = rewards - base if k > 1 else torch.zeros_like(rewards)
    if normalize:
        adv = (adv - torch.nanmean(adv)) / (nanstd(adv) + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


def test_trl_still_computes_rloo_as_transcribed():
    import inspect

    trl = pytest.importorskip("trl")
    src = " ".join(inspect.getsource(trl.RLOOTrainer._generate_and_score_completions).split())
    for line in _TRL_RLOO_LINES:
        assert " ".join(line.split()) in src, line


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    groups=st.integers(1, 4),
    k=st.integers(1, 5),
    nan_frac=st.sampled_from([0.0, 0.3]),
    normalize=st.booleans(),
)
def test_rloo_equals_trl(seed, groups, k, nan_frac, normalize):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(groups * k, generator=g, dtype=torch.float64)
    r[torch.rand(groups * k, generator=g) < nan_frac] = math.nan
    got = rl.rloo_advantages(r, k, normalize=normalize)
    want = _trl_rloo(r, k, normalize)
    # TRL's nanstd forms its Bessel factor in float32 (see tests/test_losses_grpo.py)
    tol = 1e-6 if normalize else 1e-12
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


# -- KL: the frameworks' clamps --------------------------------------------------------------


@settings(deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spread=st.sampled_from([0.5, 5.0, 40.0]))
def test_kl_clamps_equal_verl_and_openrlhf(seed, spread):
    g = torch.Generator().manual_seed(seed)
    lp0 = -torch.rand(6, 7, generator=g, dtype=torch.float64) * spread
    refp = -torch.rand(6, 7, generator=g, dtype=torch.float64) * spread
    old = lp0 + torch.randn(6, 7, generator=g, dtype=torch.float64)

    def both(fn_ours, fn_theirs):
        a, c = lp0.clone().requires_grad_(True), lp0.clone().requires_grad_(True)
        va, vc = fn_ours(a), fn_theirs(c)
        torch.testing.assert_close(va, vc, rtol=1e-12, atol=1e-12)
        va.sum().backward()
        vc.sum().backward()
        torch.testing.assert_close(a.grad, c.grad, rtol=1e-12, atol=1e-12)

    for kind in ("k1", "k2", "k3", "abs"):
        both(lambda x, kind=kind: rl.kl(x, refp, kind=kind, clamp="verl"),
             lambda x, kind=kind: ref.verl_kl_penalty(x, refp, kind))  # fmt: skip
        both(lambda x, kind=kind: rl.kl(x, refp, kind=kind, clamp="verl", grad="unbiased"),
             lambda x, kind=kind: ref.verl_kl_penalty(x, refp, kind + "+"))  # fmt: skip
    for kind in ("k1", "k2", "k3"):
        for o in (None, old):
            both(lambda x, kind=kind: rl.kl(x, refp, kind=kind, clamp="openrlhf"),
                 lambda x, kind=kind: ref.openrlhf_approx_kl(x, refp, None, kind))  # fmt: skip
            opts = dict(kind=kind, clamp="openrlhf", grad="unbiased", old_logps=o)
            theirs = dict(old=o, kind=kind, unbiased_gradient=True)
            both(lambda x, opts=opts: rl.kl(x, refp, **opts),
                 lambda x, theirs=theirs: ref.openrlhf_approx_kl(x, refp, **theirs))  # fmt: skip


def test_kl_clamp_checks():
    lp = torch.zeros(3)
    with pytest.raises(InvalidInputError, match="clamp must be one of"):
        rl.kl(lp, lp, clamp="trl")
    with pytest.raises(InvalidInputError, match="OpenRLHF has no 'abs'"):
        rl.kl(lp, lp, kind="abs", clamp="openrlhf")
    with pytest.raises(InvalidInputError, match="old_logps weights"):
        rl.kl(lp, lp, old_logps=lp)
    with pytest.raises(ShapeError, match="old_logps must have shape"):
        rl.kl(lp, lp, grad="unbiased", old_logps=lp[:2])


def test_off_policy_unbiased_gradient_is_the_kl_gradient():
    """Sampling from pi_old, E_old[w (logp - ref) d logp] with w = pi / pi_old is the gradient
    of KL(pi || pi_ref): exact enumeration over every sequence of a small policy."""
    v, t = 3, 2
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(t, v, generator=g, dtype=torch.float64, requires_grad=True)
    old_theta = theta.detach() + torch.randn(t, v, generator=g, dtype=torch.float64)
    ref_theta = torch.randn(t, v, generator=g, dtype=torch.float64)
    logp = torch.log_softmax(theta, -1)
    old_logp = torch.log_softmax(old_theta, -1)
    ref_logp = torch.log_softmax(ref_theta, -1)
    total = torch.zeros((), dtype=torch.float64)
    for seq in itertools.product(range(v), repeat=t):
        idx = (torch.arange(t), torch.tensor(seq))
        weight = old_logp[idx].sum().exp()  # sampled from pi_old
        est = rl.kl(logp[idx], ref_logp[idx], kind="k3", grad="unbiased", old_logps=old_logp[idx])
        total = total + weight * est.sum()
    (g_est,) = torch.autograd.grad(total, theta, retain_graph=True)
    (g_exact,) = torch.autograd.grad((logp.exp() * (logp - ref_logp)).sum(), theta)
    torch.testing.assert_close(g_est, g_exact, rtol=1e-10, atol=1e-12)


# -- GAE vs torchrl (right padding: what its done flags express) ------------------------------


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 5),
    t=st.integers(1, 30),
    gamma=st.sampled_from([1.0, 0.75, 0.5]),
    lam=st.sampled_from([1.0, 0.875, 0.25, 0.0]),
    vectorized=st.booleans(),
)
def test_gae_equals_torchrl_on_valid_tokens(seed, b, t, gamma, lam, vectorized):
    """torchrl's loop (``generalized_advantage_estimate``) to 1e-12 in float64; its
    vectorized form (what the bench times) to 1e-6: it drops the discount series' terms
    below 1e-7 (``_geom_series_like``'s threshold), and raises IndexError for
    gamma * lambda = 0 (torchrl 0.14.1), so that case is left to the loop. The constants are
    ones float32 holds exactly: torchrl forms gamma * lambda in float32 (0.95 would be 3e-9
    relative off in float64)."""
    pytest.importorskip("torchrl")
    from fastalign.bench.workloads.rl import torchrl_gae

    if vectorized and gamma * lam == 0:
        return
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(b, t, generator=g, dtype=torch.float64)
    v = torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    m = (torch.arange(t)[None, :] < lengths[:, None]).long()
    adv, _ = rl.gae(r, v, m, gamma=gamma, lam=lam)
    theirs = torchrl_gae(r, v, lengths, gamma, lam, vectorized=vectorized)
    tol = 1e-6 if vectorized else 1e-12
    torch.testing.assert_close(adv[m.bool()], theirs[m.bool()], rtol=tol, atol=tol)
