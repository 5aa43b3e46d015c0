"""fastalign.rank: Bradley-Terry against a float64 scipy optimisation of the same likelihood and
against choix; maximal lotteries against their definition and scipy's linprog."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastalign import rank
from fastalign.errors import InvalidInputError, ShapeError


def comparisons(n, m, seed, tie_rate=0.0):
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1 / (1 + np.exp(-(true[a] - true[b])))
    ties = rng.random(m) < tie_rate
    return np.where(win, a, b), np.where(win, b, a), rng.random(m) + 0.5, ties


def scipy_bt(winners, losers, n, weights, ties, prior):
    """The same penalized log-likelihood, maximized by scipy in float64 (exact gradient)."""
    from scipy.optimize import minimize

    w = weights * np.where(ties, 0.5, 1.0)

    def f(s):
        d = s[winners] - s[losers]
        ls, lsn = -np.logaddexp(0, -d), -np.logaddexp(0, d)
        val = (w * ls).sum() + (w * ties * lsn).sum() - prior / 2 * (s @ s)
        g = -prior * s
        coef = w * (1 - 1 / (1 + np.exp(-d))) - w * ties / (1 + np.exp(-d))
        np.add.at(g, winners, coef)
        np.add.at(g, losers, -coef)
        return -val, -g

    res = minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-13, "ftol": 1e-15, "maxiter": 100_000})  # fmt: skip
    s = res.x
    return s - s.mean() if prior == 0 else s


@pytest.mark.parametrize(("prior", "tie_rate"), [(0.0, 0.0), (0.0, 0.2), (0.5, 0.1), (2.0, 0.0)])
def test_bradley_terry_equals_scipy_float64(prior, tie_rate):
    n = 30
    w, lo, wt, ties = comparisons(n, 3000, seed=1, tie_rate=tie_rate)
    got = rank.bradley_terry(w, lo, n_items=n, weights=wt, ties=ties, prior=prior)
    want = scipy_bt(w, lo, n, wt, ties, prior)
    assert got.converged
    np.testing.assert_allclose(got.scores, want, atol=1e-6, rtol=0)
    assert got.ranks.tolist() == (np.argsort(np.argsort(-want)) + 1).tolist()


def test_bradley_terry_equals_choix():
    choix = pytest.importorskip("choix")
    n = 50
    w, lo, _, _ = comparisons(n, 5000, seed=2)
    got = rank.bradley_terry(w, lo, n_items=n)
    want = choix.ilsr_pairwise(n, list(zip(w.tolist(), lo.tolist(), strict=True)), tol=1e-12)
    np.testing.assert_allclose(got.scores, want - want.mean(), atol=1e-8, rtol=0)


@given(st.integers(0, 10_000))
def test_weights_and_ties_are_what_they_say(seed):
    w, lo, _, _ = comparisons(6, 60, seed)
    k = np.random.default_rng(seed).integers(1, 4, len(w))
    weighted = rank.bradley_terry(w, lo, weights=k.astype(float), prior=0.1)
    repeated = rank.bradley_terry(np.repeat(w, k), np.repeat(lo, k), prior=0.1)
    np.testing.assert_allclose(weighted.scores, repeated.scores, atol=1e-9)
    # a tie is half a win each way
    tied = rank.bradley_terry(w, lo, ties=np.ones(len(w), bool), prior=0.1)
    halves = rank.bradley_terry(np.r_[w, lo], np.r_[lo, w], weights=np.full(2 * len(w), 0.5),
                                prior=0.1)  # fmt: skip
    np.testing.assert_allclose(tied.scores, halves.scores, atol=1e-9)


def test_labels_are_mapped_once_and_returned():
    r = rank.bradley_terry(["gpt", "gpt", "llama", "mistral", "mistral"],
                           ["llama", "mistral", "mistral", "gpt", "llama"])  # fmt: skip
    assert r.labels == ["gpt", "llama", "mistral"]
    ids = rank.bradley_terry([0, 0, 1, 2, 2], [1, 2, 2, 0, 1])
    np.testing.assert_array_equal(r.scores, ids.scores)
    assert r.top(1)[0][0] == "gpt"


def test_no_maximum_without_a_prior_is_an_error():
    with pytest.raises(InvalidInputError, match=r"items \[0\] never lose"):
        rank.bradley_terry([0, 0, 1], [1, 2, 2])
    with pytest.raises(InvalidInputError, match="disconnected"):
        rank.bradley_terry([0, 1, 2, 3], [1, 0, 3, 2])
    r = rank.bradley_terry([0, 0, 1], [1, 2, 2], prior=1.0)
    assert r.converged
    assert r.ranks.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"winners": [0, 1], "losers": [1]}, ShapeError, "entries"),
        ({"winners": [0], "losers": [0]}, InvalidInputError, "itself"),
        ({"winners": [0], "losers": [-1]}, InvalidInputError, "out of range"),
        ({"winners": [0], "losers": [1], "weights": [np.nan]}, InvalidInputError, "weights"),
        ({"winners": [0], "losers": [1], "weights": [-1.0]}, InvalidInputError, "weights"),
        ({"winners": [0.5], "losers": [1.0]}, TypeError, "integers or labels"),
        ({"winners": "ab", "losers": ["a"]}, TypeError, "single str"),
        ({"winners": [0], "losers": [1], "prior": -1.0}, InvalidInputError, "prior"),
        ({"winners": [0], "losers": [1], "ties": [1]}, TypeError, "booleans"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        rank.bradley_terry(**kwargs)


def test_not_converged_warns():
    w, lo, _, _ = comparisons(20, 500, seed=3)
    with pytest.warns(RuntimeWarning, match="stopped after 1 iterations"):
        r = rank.bradley_terry(w, lo, max_iter=1)
    assert not r.converged


# -- maximal lottery -----------------------------------------------------------------------------


@given(st.integers(2, 12), st.integers(0, 10_000), st.booleans())
def test_maximal_lottery_is_an_equilibrium_with_linprogs_value(m, seed, integer):
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    P = rng.integers(0, 5, (m, m)).astype(float) if integer else rng.random((m, m))
    np.fill_diagonal(P, 0)
    p = rank.maximal_lottery(P)
    M = P - P.T
    assert p.min() >= 0
    assert abs(p.sum() - 1) < 1e-12
    assert (M @ p).max() <= 1e-9  # no item beats the lottery
    # linprog: the game value of the symmetric game (0)
    c = np.r_[np.zeros(m), -1.0]  # maximize v
    a_ub = np.c_[-M.T, np.ones(m)]  # v <= (M^T q)_j
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=[np.r_[np.ones(m), 0]], b_eq=[1],
                  bounds=[(0, None)] * m + [(None, None)])  # fmt: skip
    assert abs(res.x[-1]) < 1e-9
    assert (M.T @ p).min() >= res.x[-1] - 1e-9


def test_condorcet_winner_and_cycles():
    P = np.array([[0, 6, 7], [4, 0, 6], [3, 4, 0]], float)  # item 0 beats both
    assert rank.maximal_lottery(P).tolist() == [1.0, 0.0, 0.0]
    rps = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)
    np.testing.assert_allclose(rank.maximal_lottery(rps), [1 / 3] * 3, atol=1e-12)
    P = np.random.default_rng(0).random((40, 40))
    np.testing.assert_array_equal(rank.maximal_lottery(P), rank.maximal_lottery(P.copy()))


def test_maximal_lottery_bad_input():
    with pytest.raises(ShapeError):
        rank.maximal_lottery(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError):
        rank.maximal_lottery([[0, np.nan], [1, 0]])
    with pytest.raises(InvalidInputError):
        rank.maximal_lottery([[0, -1], [1, 0]])


# -- Plackett-Luce -------------------------------------------------------------------------------


def rankings_data(n, k, seed, lo=2, hi=6):
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1, n)
    out = []
    for _ in range(k):
        items = rng.choice(n, rng.integers(lo, hi + 1), replace=False)
        # Gumbel trick: sorting s + Gumbel noise samples a Plackett-Luce ranking
        out.append(items[np.argsort(-(true[items] + rng.gumbel(size=len(items))))].tolist())
    return out


def scipy_pl(rankings, n, prior):
    """The same penalized log-likelihood maximized by scipy in float64 (rankings padded to one
    length, stage by stage in NumPy)."""
    from scipy.optimize import minimize

    width = max(len(r) for r in rankings)
    R = np.full((len(rankings), width), -1)
    for k, r in enumerate(rankings):
        R[k, : len(r)] = r
    valid = R >= 0
    idx = np.where(valid, R, 0)

    def f(s):
        val, g = -prior / 2 * (s @ s), -prior * s
        x = np.where(valid, s[idx], -np.inf)
        for t in range(width - 1):
            live = valid[:, t + 1]  # stage t exists when a position after t is filled
            rest = x[live, t:]
            mx = rest.max(axis=1, keepdims=True)
            e = np.exp(rest - mx)
            tot = e.sum(axis=1, keepdims=True)
            val += (rest[:, 0] - mx[:, 0] - np.log(tot[:, 0])).sum()
            np.add.at(g, idx[live, t], 1.0)
            np.add.at(g, idx[live, t:][valid[live, t:]], -(e / tot)[valid[live, t:]])
        return -val, -g

    res = minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 100_000})  # fmt: skip
    return res.x - res.x.mean() if prior == 0 else res.x


@pytest.mark.parametrize("prior", [0.0, 0.3])
def test_plackett_luce_equals_scipy_float64(prior):
    n = 12
    data = rankings_data(n, 400, seed=4)
    got = rank.plackett_luce(data, n_items=n, prior=prior)
    assert got.converged
    np.testing.assert_allclose(got.scores, scipy_pl(data, n, prior), atol=1e-6, rtol=0)


def test_plackett_luce_equals_choix_and_offsets_form():
    choix = pytest.importorskip("choix")
    n = 20
    data = rankings_data(n, 2000, seed=5)
    got = rank.plackett_luce(data, n_items=n)
    want = choix.ilsr_rankings(n, data, tol=1e-12)
    np.testing.assert_allclose(got.scores, want - want.mean(), atol=1e-8, rtol=0)
    flat = np.concatenate([np.asarray(r) for r in data])
    offsets = np.r_[0, np.cumsum([len(r) for r in data])]
    np.testing.assert_array_equal(rank.plackett_luce(flat, offsets, n_items=n).scores, got.scores)


def test_plackett_luce_of_pairs_is_bradley_terry():
    w, lo, _, _ = comparisons(8, 200, seed=6)
    pl = rank.plackett_luce([[a, b] for a, b in zip(w, lo, strict=True)], n_items=8)
    bt = rank.bradley_terry(w, lo, n_items=8)
    np.testing.assert_allclose(pl.scores, bt.scores, atol=1e-10)


def test_plackett_luce_bad_input():
    with pytest.raises(InvalidInputError, match="appears twice"):
        rank.plackett_luce([[0, 1, 0]])
    with pytest.raises(InvalidInputError, match="offsets"):
        rank.plackett_luce([0, 1, 2], [0, 2])
    with pytest.raises(InvalidInputError, match="no maximum without a prior"):
        rank.plackett_luce([[0, 1], [1, 2]])
    with pytest.raises(TypeError, match="list of rankings"):
        rank.plackett_luce([0, 1, 2])
    assert rank.plackett_luce([[0, 1], [1, 2]], prior=0.5).ranks.tolist() == [1, 2, 3]
