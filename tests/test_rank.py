"""fastalign.rank: Bradley-Terry against a float64 scipy optimisation of the same likelihood and
against choix; maximal lotteries against their definition and scipy's linprog."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign import rank
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference import rank as reference


def comparisons(n, m, seed, tie_rate=0.0):
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1, n)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    win = rng.random(m) < 1 / (1 + np.exp(-(true[a] - true[b])))
    ties = rng.random(m) < tie_rate
    return np.where(win, a, b), np.where(win, b, a), rng.random(m) + 0.5, ties


@pytest.mark.parametrize(("prior", "tie_rate"), [(0.0, 0.0), (0.0, 0.2), (0.5, 0.1), (2.0, 0.0)])
def test_bradley_terry_equals_scipy_float64(prior, tie_rate):
    n = 30
    w, lo, wt, ties = comparisons(n, 3000, seed=1, tie_rate=tie_rate)
    got = rank.bradley_terry(w, lo, n_items=n, weights=wt, ties=ties, prior=prior)
    want = reference.bradley_terry(w, lo, n, weights=wt, ties=ties, prior=prior)
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


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 25),
    per_cell=st.floats(0.6, 3.0),
    seed=st.integers(0, 2**32 - 1),
    weighted=st.booleans(),
    tie_rate=st.sampled_from([0.0, 0.2]),
    prior=st.floats(0.01, 2.0),
)
def test_dense_tables_and_pair_list_agree(n, per_cell, seed, weighted, tie_rate, prior):
    """At least n^2 / 2 comparisons go to dense n x n tables, fewer to the pair list: the same
    comparisons with items that are never compared added (their score is 0 under a prior, and
    they change nothing else) take the pair list."""
    m = int(n * n * per_cell)
    w, lo, wt, ties = comparisons(n, m, seed, tie_rate)
    kw = {"weights": wt if weighted else None, "ties": ties if tie_rate else None, "prior": prior}
    dense = rank.bradley_terry(w, lo, n_items=n, **kw)
    extra = int(np.ceil(np.sqrt(2 * m + 1))) + 1 - n  # (n + extra)^2 > 2m
    sparse = rank.bradley_terry(w, lo, n_items=n + extra, **kw)
    assert dense.converged
    assert sparse.converged
    np.testing.assert_allclose(dense.scores, sparse.scores[:n], atol=1e-8, rtol=0)
    np.testing.assert_array_equal(sparse.scores[n:], 0.0)


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


@pytest.mark.parametrize("prior", [0.0, 0.3])
def test_plackett_luce_equals_scipy_float64(prior):
    n = 12
    data = rankings_data(n, 400, seed=4)
    got = rank.plackett_luce(data, n_items=n, prior=prior)
    assert got.converged
    np.testing.assert_allclose(
        got.scores, reference.plackett_luce(data, n, prior=prior), atol=1e-6, rtol=0
    )


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


# -- Elo, voting rules, cycles, pairs, bootstrap --------------------------------------------------


def py_elo(w, lo, ties, n, k=4, scale=400, base=10, init=1000):
    """FastChat's compute_elo loop."""
    r = [float(init)] * n
    for a, b, t in zip(w, lo, ties, strict=True):
        ea = 1 / (1 + base ** ((r[b] - r[a]) / scale))
        eb = 1 / (1 + base ** ((r[a] - r[b]) / scale))
        sa = 0.5 if t else 1.0
        r[a] += k * (sa - ea)
        r[b] += k * (1 - sa - eb)
    return np.array(r)


def test_elo_equals_fastchats_loop():
    w, lo, _, ties = comparisons(15, 2000, seed=7, tie_rate=0.1)
    got = rank.elo(w, lo, ties=ties, n_items=15)
    np.testing.assert_allclose(got.scores, py_elo(w, lo, ties, 15), rtol=0, atol=1e-9)
    got = rank.elo(w, lo, k=32, scale=200, base=np.e, init=0, n_items=15)
    want = py_elo(w, lo, np.zeros(len(w), bool), 15, k=32, scale=200, base=np.e, init=0)
    np.testing.assert_allclose(got.scores, want, rtol=0, atol=1e-9)


matrices = st.integers(2, 9).flatmap(
    lambda m: st.lists(st.integers(0, 4), min_size=m * m, max_size=m * m).map(
        lambda v: np.array(v, float).reshape(m, m) * (1 - np.eye(m))
    )
)


@given(matrices)
def test_copeland_schulze_cycles_equal_straightforward_python(P):
    m = len(P)
    beats = P > P.T
    want = beats.sum(1) - beats.sum(0)
    assert rank.copeland(P).scores.tolist() == want.astype(float).tolist()
    # Schulze: Floyd-Warshall widest paths, written out
    d = np.where(beats, P, 0.0)
    for k in range(m):
        for i in range(m):
            for j in range(m):
                if len({i, j, k}) == 3:
                    d[i, j] = max(d[i, j], min(d[i, k], d[k, j]))
    r, paths = rank.schulze(P)
    np.testing.assert_array_equal(paths * (1 - np.eye(m)), d * (1 - np.eye(m)))
    assert r.scores.tolist() == [float(sum(d[i, j] > d[j, i] for j in range(m) if j != i))
                                 for i in range(m)]  # fmt: skip
    # 3-cycles by brute force, components by reachability
    three = sum(
        beats[i, j] and beats[j, k] and beats[k, i]
        for i in range(m) for j in range(m) for k in range(m)
    ) // 3  # fmt: skip
    reach = beats | np.eye(m, dtype=bool)
    for k in range(m):
        reach |= reach[:, [k]] & reach[[k], :]
    c = rank.cycles(P)
    assert c.three_cycles == three
    same = reach & reach.T
    assert (c.component[:, None] == c.component[None, :]).tolist() == same.tolist()
    assert c.n_components == len(set(c.component.tolist()))


def test_borda():
    data = rankings_data(10, 300, seed=8)
    want = np.zeros(10)
    for r in data:
        for p, i in enumerate(r):
            want[i] += len(r) - 1 - p
    np.testing.assert_array_equal(rank.borda(data, n_items=10).scores, want)


@given(st.lists(st.integers(1, 6), min_size=1, max_size=8), st.integers(0, 9999),
       st.sampled_from(["best_worst", "all", "top_bottom"]), st.sampled_from([0.0, 0.3]),
       st.integers(1, 3))  # fmt: skip
def test_preference_pairs_equal_python(sizes, seed, mode, margin, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, sum(sizes)) / 4
    offsets = np.r_[0, np.cumsum(sizes)]
    got = rank.preference_pairs(scores, offsets, mode=mode, margin=margin, k=k)
    want = []
    for s, e in itertools.pairwise(offsets):
        order = sorted(range(s, e), key=lambda i: (-scores[i], i))
        if len(order) < 2:
            continue
        if mode == "best_worst":
            cand = [(order[0], order[-1])]
        elif mode == "all":
            cand = [
                (order[x], order[y]) for x in range(len(order)) for y in range(x + 1, len(order))
            ]
        else:
            kk = max(1, min(k, len(order) // 2))
            cand = [(a, b) for a in order[:kk] for b in order[-kk:]]
        want += [
            (a, b) for a, b in cand if scores[a] - scores[b] > margin and scores[a] > scores[b]
        ]
    assert list(zip(got.chosen.tolist(), got.rejected.tolist(), strict=True)) == want
    np.testing.assert_array_equal(got.gap, scores[got.chosen] - scores[got.rejected])


def test_bootstrap_intervals_are_seeded_and_thread_independent():
    w, lo, _, _ = comparisons(12, 3000, seed=9)
    a = rank.bradley_terry(w, lo, bootstrap_rounds=64, seed=3, threads=1)
    b = rank.bradley_terry(w, lo, bootstrap_rounds=64, seed=3, threads=2)
    c = rank.bradley_terry(w, lo, bootstrap_rounds=64, seed=4, threads=2)
    assert a.ci is not None
    assert b.ci is not None
    assert c.ci is not None
    np.testing.assert_array_equal(a.ci, b.ci)
    assert not np.array_equal(a.ci, c.ci)
    assert ((a.ci[:, 0] <= a.scores) & (a.scores <= a.ci[:, 1])).all()
    assert a.ranks_by_ci.min() == 1
    ratings, interval = a.ratings()
    np.testing.assert_allclose(ratings, 400 / np.log(10) * a.scores + 1000)
    assert interval.shape == (12, 2)
    with pytest.raises(InvalidInputError, match="bootstrapped"):
        _ = rank.bradley_terry(w, lo).ranks_by_ci


def test_bootstrap_without_a_maximum_warns():
    # sparse data: some resamples lose every comparison of an item's losses
    with pytest.warns(RuntimeWarning, match="had no maximum"):
        r = rank.bradley_terry([0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2], bootstrap_rounds=50)
    assert r.ci is not None


@given(st.integers(1, 6).flatmap(
    lambda m: st.lists(st.integers(0, 5), min_size=m * m, max_size=m * m).map(
        lambda v: np.array(v, float).reshape(m, m) * (1 - np.eye(m))
    )
))  # fmt: skip
def test_kemeny_exact_equals_brute_force(P):
    m = len(P)

    def cost(order):
        return sum(P[j, i] for a, i in enumerate(order) for j in order[a + 1 :])

    best = min(cost(o) for o in itertools.permutations(range(m)))
    k = rank.kemeny(P)
    assert k.exact
    assert k.objective == best == cost(k.order.tolist())
    assert sorted(k.order.tolist()) == list(range(m))
    assert k.ranks[k.order].tolist() == list(range(1, m + 1))
    h = rank.kemeny(P, exact=False)
    assert not h.exact
    assert sorted(h.order.tolist()) == list(range(m))
    assert h.objective == cost(h.order.tolist()) >= best


def test_kemeny_large_uses_local_search_and_bad_input():
    P = np.random.default_rng(1).integers(0, 10, (40, 40)).astype(float)
    np.fill_diagonal(P, 0)
    k = rank.kemeny(P)
    assert not k.exact
    net_order = np.lexsort((np.arange(40), -(P - P.T).sum(1)))
    start = sum(P[j, i] for a, i in enumerate(net_order) for j in net_order[a + 1 :])
    assert k.objective <= start
    with pytest.raises(InvalidInputError, match="at most 16"):
        rank.kemeny(P, exact=True)
    with pytest.raises(InvalidInputError):
        rank.kemeny([[0, -1], [1, 0]])


# -- found in review: scale, layout, labels, messages --------------------------------------------


def test_weight_scale_does_not_change_the_fit():
    base = rank.bradley_terry([0, 0, 0, 1], [1, 1, 1, 0])
    for scale in (1e-300, 1e-46, 1e-11, 1e-6, 1e6, 1e40, 1e300):
        r = rank.bradley_terry([0, 0, 0, 1], [1, 1, 1, 0], weights=[scale] * 4)
        np.testing.assert_allclose(r.scores, base.scores, atol=1e-9)
        assert r.iterations > 0
    np.testing.assert_allclose(base.scores, [np.log(3) / 2, -np.log(3) / 2], atol=1e-12)


@pytest.mark.parametrize("scale", [1e-14, 1.0, 1e12])
def test_maximal_lottery_at_any_scale(scale):
    P = np.array([[0, 3, 1], [2, 0, 1], [4, 5, 0]], float) * scale
    assert rank.maximal_lottery(P).tolist() == [0.0, 0.0, 1.0]


def test_maximal_lottery_equals_linprogs_unique_solution():
    from scipy.optimize import linprog

    for seed in range(5):
        m = 9
        P = np.random.default_rng(seed).random((m, m))
        np.fill_diagonal(P, 0)
        M = P - P.T
        res = linprog(np.r_[np.zeros(m), -1.0], A_ub=np.c_[-M.T, np.ones(m)], b_ub=np.zeros(m),
                      A_eq=[np.r_[np.ones(m), 0]], b_eq=[1],
                      bounds=[(0, None)] * m + [(None, None)])  # fmt: skip
        np.testing.assert_allclose(rank.maximal_lottery(P), res.x[:-1], atol=1e-8)


def test_strided_columns_and_hashable_labels():
    battles = np.array([[0, 1], [1, 2], [2, 0], [0, 2], [1, 0]])
    a = rank.bradley_terry(battles[:, 0], battles[:, 1])
    b = rank.bradley_terry(battles[:, 0].copy(), battles[:, 1].copy())
    np.testing.assert_array_equal(a.scores, b.scores)
    rank.elo(battles[:, 0], battles[:, 1])
    r = rank.bradley_terry([("m", 1), ("m", 2)], [("m", 2), ("m", 1)])
    assert r.labels == [("m", 1), ("m", 2)]
    with pytest.raises(TypeError, match="mutually comparable"):
        rank.bradley_terry([1, "a"], ["a", 1])
    with pytest.raises(TypeError, match="booleans"):
        rank.elo([0], [1], ties=["False"])


def test_errors_name_labels_and_the_group_that_never_loses():
    with pytest.raises(InvalidInputError, match=r"items \['y'\] never lose"):
        rank.bradley_terry(["x", "y", "z", "y", "x"], ["a", "b", "c", "x", "z"])
    # a chain of groups {0, 1} > {2} > {3, 4}: the top group is named, not the middle one
    with pytest.raises(InvalidInputError, match=r"items \[0, 1\] never lose"):
        rank.bradley_terry([0, 1, 3, 4, 0, 2], [1, 0, 4, 3, 2, 3])


def test_huge_item_counts_are_errors_not_aborts():
    with pytest.raises(InvalidInputError, match="supported"):
        rank.elo([0], [1], n_items=10**13)
    with pytest.raises(InvalidInputError, match="supported"):
        rank.bradley_terry([0], [10**12])


def test_ranks_by_ci_equal_fastchats_rule():
    w, lo, _, _ = comparisons(10, 2000, seed=12)
    r = rank.bradley_terry(w, lo, bootstrap_rounds=40, seed=1)
    assert r.ci is not None
    want = [1 + sum(r.ci[j, 0] > r.ci[i, 1] for j in range(10)) for i in range(10)]
    assert r.ranks_by_ci.tolist() == want
    e = rank.elo(list("abcad"), list("bcabb"))
    assert e.ranks.tolist() == [1 + int((e.scores > x).sum()) for x in e.scores]


# --- score matrices and preference matrices -------------------------------------------------


def naive_score_counts(scores, margin):
    n, j = scores.shape
    wins, ties = np.zeros((n, n)), np.zeros((n, n))
    for c in range(j):
        for a, b in itertools.combinations(range(n), 2):
            sa, sb = scores[a, c], scores[b, c]
            if np.isnan(sa) or np.isnan(sb):
                continue
            if abs(sa - sb) <= margin:
                ties[a, b] += 1
            elif sa > sb:
                wins[a, b] += 1
            else:
                wins[b, a] += 1
    return wins, ties


@given(
    st.integers(1, 7),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.5, 1.0]),
)
def test_score_comparisons_equal_counting_by_hand(n, j, seed, margin):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n, j)).astype(float)  # small ints: many ties
    scores[rng.random((n, j)) < 0.2] = np.nan
    wins, ties = naive_score_counts(scores, margin)
    c = rank.score_comparisons(scores, margin=margin)
    got_w, got_t = np.zeros((n, n)), np.zeros((n, n))
    np.add.at(got_w, (c.winners[~c.ties], c.losers[~c.ties]), c.weights[~c.ties])
    np.add.at(got_t, (c.winners[c.ties], c.losers[c.ties]), c.weights[c.ties])
    np.testing.assert_array_equal(got_w, wins)
    np.testing.assert_array_equal(got_t, ties)
    assert (c.weights > 0).all()
    assert (c.winners[c.ties] < c.losers[c.ties]).all()
    # the preference matrix of those rows: wins plus half the ties each way
    if len(c):
        P = rank.preference_matrix(c.winners, c.losers, n_items=n, weights=c.weights, ties=c.ties)
        np.testing.assert_array_equal(P, wins + (ties + ties.T) / 2)


def test_score_comparisons_feed_bradley_terry_like_the_expanded_rows():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 40)).round(1)
    c = rank.score_comparisons(scores)
    fit = rank.bradley_terry(c.winners, c.losers, weights=c.weights, ties=c.ties, prior=0.01)
    # the same comparisons one row per judge and pair
    w, lo, t = [], [], []
    for col in scores.T:
        for a, b in itertools.combinations(range(6), 2):
            hi, low = (a, b) if col[a] >= col[b] else (b, a)
            w.append(hi), lo.append(low), t.append(col[a] == col[b])
    ref = rank.bradley_terry(w, lo, ties=t, prior=0.01)
    np.testing.assert_allclose(fit.scores, ref.scores, rtol=0, atol=1e-9)


def test_score_comparisons_bad_input():
    with pytest.raises(ShapeError):
        rank.score_comparisons([1.0, 2.0])
    with pytest.raises(TypeError):
        rank.score_comparisons("ab")
    with pytest.raises(InvalidInputError, match="empty"):
        rank.score_comparisons(np.zeros((0, 3)))
    with pytest.raises(InvalidInputError, match="item 1, judge 0"):
        rank.score_comparisons([[1.0], [np.inf]])
    with pytest.raises(InvalidInputError, match="margin"):
        rank.score_comparisons([[1.0], [2.0]], margin=-1)
    with pytest.raises(InvalidInputError, match="8192"):
        rank.score_comparisons(np.zeros((9000, 1)))


def test_preference_matrix_labels_and_bad_input():
    P = rank.preference_matrix(["b", "a", "b"], ["a", "c", "c"], weights=[2.0, 1.0, 1.0])
    np.testing.assert_array_equal(P, [[0, 0, 1], [2, 0, 1], [0, 0, 0]])  # rows a, b, c
    assert rank.preference_matrix([], [], n_items=2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(InvalidInputError, match="item 1 compared with itself"):
        rank.preference_matrix([0, 1], [1, 1])
    with pytest.raises(InvalidInputError, match="out of range"):
        rank.preference_matrix([0, 3], [1, 2], n_items=3)
    with pytest.raises(InvalidInputError, match=r"weights\[1\]"):
        rank.preference_matrix([0, 1], [1, 0], weights=[1.0, np.nan])
    with pytest.raises(ShapeError):
        rank.preference_matrix([0, 1], [1, 0], ties=[True])
    with pytest.raises(InvalidInputError, match=">= 0"):
        rank.preference_matrix([0, -1], [1, 0])
