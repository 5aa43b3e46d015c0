"""PRO, INPO, MNPO, Nash-MD, CoPG, P3O, J-BOND, DPA and beta-DPO against straightforward
float64 implementations written from the spec's equations, the spec's equivalences, and
gradchecks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses import (
    BetaDPO,
    copg,
    dpa_reward,
    ema_update_,
    inpo,
    jbond,
    mnpo,
    nash_md,
    p3o,
    preference_loss,
    pro,
)

f64 = torch.float64


def rand(seed, *shape, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64) * scale


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6))
def test_inpo_equation_and_ipo_limit(seed, b):
    pw, pl, rw, rl, qw, ql = rand(seed, 6, b, scale=5.0)
    eta, tau = 0.0075, 0.0025
    out = inpo(pw, pl, rw, rl, qw, ql, eta=eta, tau=tau)
    want = [
        (
            (pw[i] - pl[i])
            - tau / eta * (rw[i] - rl[i])
            - (eta - tau) / eta * (qw[i] - ql[i])
            - 1 / (2 * eta)
        )
        ** 2
        for i in range(b)
    ]
    torch.testing.assert_close(out.losses, torch.stack(want))
    # tau = eta: INPO is IPO (summed log-ratios) with beta = eta
    same = inpo(pw, pl, rw, rl, qw, ql, eta=0.3, tau=0.3)
    ipo = preference_loss(pw, pl, rw, rl, loss_type="ipo", beta=0.3, normalize="sum")
    torch.testing.assert_close(same.losses, ipo.losses)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 5), j=st.integers(1, 4))
def test_mnpo_equation(seed, b, j):
    pw, pl, rw, rl = rand(seed, 4, b, scale=5.0)
    hw, hl = rand(seed + 1, 2, b, j, scale=5.0)
    lam = torch.rand(j, generator=torch.Generator().manual_seed(seed), dtype=f64)
    lam = lam / lam.sum()
    out = mnpo(pw, pl, rw, rl, hw, hl, eta=0.01, r=0.4, weights=lam)
    want = []
    for i in range(b):
        hist = sum(float(lam[k]) * float(hw[i, k] - hl[i, k]) for k in range(j))
        want.append((float(pw[i] - pl[i]) - 0.4 * float(rw[i] - rl[i]) - 0.6 * hist - 50.0) ** 2)
    torch.testing.assert_close(out.losses, torch.tensor(want, dtype=f64))
    # one past iterate equal to the previous one: MNPO is INPO with tau / eta = r
    one = mnpo(pw, pl, rw, rl, hw[:, :1], hl[:, :1], eta=0.01, r=0.4)
    torch.testing.assert_close(
        one.losses, inpo(pw, pl, rw, rl, hw[:, 0], hl[:, 0], eta=0.01, tau=0.004).losses
    )


def test_nash_md_equation_and_gradient():
    lp = rand(1, 3, 5, scale=0.5) - 2
    ref = lp.detach() + rand(2, 3, 5, scale=0.1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    prob = torch.tensor([0.2, 0.5, 0.9], dtype=f64)
    x = lp.clone().requires_grad_(True)
    out = nash_md(x, ref, mask, prob, beta=0.1)
    m = mask.double()
    want = 0.1 * ((lp - ref) * lp * m).sum(1) - (prob - 0.5) * (lp * m).sum(1)
    torch.testing.assert_close(out.losses, want)
    out.loss.backward()
    # the stop-gradient makes d/dlp = beta * (lp - lp_ref) - (P - 0.5), per token, /B
    want_grad = (0.1 * (lp - ref) - (prob - 0.5)[:, None]) * m / 3
    torch.testing.assert_close(x.grad, want_grad)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 4), k=st.integers(2, 5))
def test_copg_pairs_and_ipo_equivalence(seed, b, k):
    r, s, s_ref = rand(seed, 3, b, k, scale=3.0)
    out = copg(r, s, s_ref, beta=0.2)
    want = []
    for i in range(b):
        rb = [float(r[i, a] - 0.2 * (s[i, a] - s_ref[i, a])) for a in range(k)]
        want.append(sum((rb[a] - rb[c]) ** 2 for a in range(k) for c in range(a)) / (k - 1))
    torch.testing.assert_close(out.losses, torch.tensor(want, dtype=f64))
    # preference rewards +-1/2: CoPG = beta^2 * IPO(tau = beta / 2)
    pw, pl, rw, rl = rand(seed + 7, 4, b, scale=3.0)
    beta = 0.3
    cp = copg(
        torch.tensor([[0.5, -0.5]] * b, dtype=f64),
        torch.stack([pw, pl], 1),
        torch.stack([rw, rl], 1),
        beta=beta,
    )
    ipo = preference_loss(pw, pl, rw, rl, loss_type="ipo", beta=beta / 2, normalize="sum")
    torch.testing.assert_close(cp.losses, beta**2 * ipo.losses)


@given(
    seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), clip=st.sampled_from(["separate", "joint"])
)
def test_p3o_equations(seed, b, clip):
    l1, l2, o1, o2, r1, r2 = rand(seed, 6, b, scale=0.4)
    out = p3o(l1, l2, o1, o2, r1, r2, epsilon=0.2, clip=clip)

    def c(u):
        return min(max(u, 0.8), 1.2)

    want = []
    for i in range(b):
        d = float(r1[i] - r2[i]) / 2
        u1, u2 = math.exp(float(l1[i] - o1[i])), math.exp(float(l2[i] - o2[i]))
        if clip == "separate":
            want.append(-(min(u1 * d, c(u1) * d) + min(-u2 * d, -c(u2) * d)))
        else:
            uj = u1 / u2
            want.append(-min(uj * d, c(uj) * d))
    torch.testing.assert_close(out.losses, torch.tensor(want, dtype=f64))


def _pro_loop(s, lengths, r, n_valid, eps=1e-10):
    order = sorted(range(n_valid), key=lambda i: -r[i])
    s = [s[i] for i in order]
    f = [s[i] / max(lengths[order[i]], 1) for i in range(n_valid)]
    r = [r[i] for i in order]
    total = 0.0
    for k in range(n_valid - 1):
        tkk = max(r[k] - r[i] for i in range(k + 1, n_valid))
        inner = (
            eps
            + math.exp(f[k] * tkk)
            + sum(math.exp(f[i] * (r[k] - r[i])) for i in range(k + 1, n_valid))
        )
        total += math.log(inner) - f[k] * tkk
    return total + 0.05 * (n_valid - 1) ** 2 * (-s[0])


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 4), n=st.integers(2, 5))
def test_pro_against_loop_with_ragged_lists(seed, b, n):
    g = torch.Generator().manual_seed(seed)
    s = -torch.rand(b, n, generator=g, dtype=f64) * 20
    lengths = torch.randint(1, 10, (b, n), generator=g)
    r = torch.rand(b, n, generator=g, dtype=f64) * 3
    n_valid = torch.randint(2, n + 1, (b,), generator=g)
    mask = torch.arange(n)[None, :] < n_valid[:, None]
    out = pro(s, lengths, r, mask=mask)
    want = [
        _pro_loop(s[i].tolist(), lengths[i].tolist(), r[i].tolist(), int(n_valid[i]))
        for i in range(b)
    ]
    torch.testing.assert_close(out.losses, torch.tensor(want, dtype=f64), rtol=1e-10, atol=1e-10)


def test_jbond_against_loop():
    pol = rand(3, 2, 3, scale=2.0) - 10
    anc = pol + rand(4, 2, 3, scale=0.5)
    rew = rand(5, 2, 3)
    anchor_rew = rand(6, 2, 2)
    best = rand(7, 2) - 8
    out = jbond(pol, anc, rew, anchor_rew, best, b=0.5)
    want = []
    for p in range(2):
        big = [
            (-math.log(16) if rew[p, i] < anchor_rew[p].min() else 0.0)
            - float(pol[p, i] - anc[p, i])
            for i in range(3)
        ]
        pg = sum(-(big[i] - (sum(big) - big[i]) / 2) * float(pol[p, i]) for i in range(3)) / 3
        want.append(0.5 * -float(best[p]) + 0.5 * pg)
    torch.testing.assert_close(out.losses, torch.tensor(want, dtype=f64))


def test_ema_update_and_dpa():
    a, b = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    before = a.weight.detach().clone()
    ema_update_(a, b, eta=0.25)
    torch.testing.assert_close(a.weight, 0.75 * before + 0.25 * b.weight)
    r = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=f64)
    v = torch.tensor([0.6, 0.8], dtype=f64)
    torch.testing.assert_close(dpa_reward(r, v), torch.tensor([2.2, 1.0], dtype=f64))
    with pytest.raises(InvalidInputError, match="unit vector"):
        dpa_reward(r, torch.tensor([1.0, 1.0], dtype=f64))


def test_gradchecks():
    pw, pl = (rand(s, 4, scale=2.0).requires_grad_(True) for s in (1, 2))
    rw, rl, qw, ql = rand(3, 4, 4)
    assert torch.autograd.gradcheck(lambda a, b: inpo(a, b, rw, rl, qw, ql).losses, (pw, pl))
    s = (-torch.rand(2, 3, dtype=f64) * 5).requires_grad_(True)
    lens = torch.tensor([[2, 3, 4], [5, 6, 7]])
    rr = torch.tensor([[1.0, 0.2, 0.5], [0.3, 0.9, 0.1]], dtype=f64)
    assert torch.autograd.gradcheck(lambda x: pro(x, lens, rr).losses, (s,))
    x = rand(9, 2, 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: copg(rr, y, rr).losses, (x,))


# ---- beta-DPO ------------------------------------------------------------------------------


def test_beta_dpo_without_filtering_or_adaptation_is_dpo():
    pw, pl, rw, rl = rand(0, 4, 6, scale=3.0)
    mod = BetaDPO(beta=0.2, alpha=0.0, rho=0.0)
    out = mod(pw, pl, rw, rl)
    torch.testing.assert_close(out.loss, preference_loss(pw, pl, rw, rl, beta=0.2).loss)


def test_beta_dpo_statistics_sampling_and_state():
    pw, pl, rw, rl = rand(1, 4, 10, scale=3.0)
    h = (pw - rw) - (pl - rl)
    mod = BetaDPO(beta=0.1, alpha=0.6, rho=0.2, seed=3)
    out = mod(pw, pl, rw, rl)
    m0, s0 = 0.1 * h.mean(), 0.1 * h.std()
    torch.testing.assert_close(mod.m0, m0)
    torch.testing.assert_close(mod.s0, s0)
    kept = (out.losses != 0).nonzero().squeeze(1)
    assert kept.numel() == 8
    beta_b = max(1e-3, 0.1 * (1 + 0.6 * (float(h[kept].mean()) - float(m0))))
    assert out.metrics["beta"].item() == pytest.approx(beta_b)
    torch.testing.assert_close(out.loss, (-F.logsigmoid(beta_b * h[kept])).mean())
    # the state (EMA + generator) round-trips: a restored copy samples identically
    state = {k: v.clone() if torch.is_tensor(v) else v for k, v in mod.state_dict().items()}
    nxt = mod(pw, pl, rw, rl)
    other = BetaDPO(beta=0.1, alpha=0.6, rho=0.2, seed=99)
    other.load_state_dict(state)
    again = other(pw, pl, rw, rl)
    torch.testing.assert_close(again.losses, nxt.losses)


def test_bad_input():
    x = rand(0, 3)
    with pytest.raises(InvalidInputError, match="tau"):
        inpo(x, x, x, x, x, x, eta=0.1, tau=0.5)
    with pytest.raises(ShapeError, match="rewards must be"):
        copg(x, x, x)
    with pytest.raises(InvalidInputError, match="two valid responses"):
        pro(
            x[:, None].repeat(1, 2),
            torch.ones(3, 2),
            x[:, None].repeat(1, 2),
            mask=torch.tensor([[True, False]] * 3),
        )
    with pytest.raises(InvalidInputError, match="clip"):
        p3o(x, x, x, x, x, x, clip="both")
    with pytest.raises(InvalidInputError, match="rho"):
        BetaDPO(rho=1.0)
