"""Non-dominated sorting, crowding distance and hypervolume against brute-force references
(O(N^2 M) fronts, inclusion-exclusion volumes), with ties, duplicates and max/min senses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.pareto import crowding_distance, hypervolume, non_dominated_sort
from fastalign.reference.pareto import fronts as brute_fronts
from fastalign.reference.pareto import hypervolume as brute_hv

grids = st.integers(1, 5).flatmap(
    lambda m: hnp.arrays(
        np.float64, st.tuples(st.integers(0, 40), st.just(m)), elements=st.integers(0, 6).map(float)
    )
)


@given(grids)
def test_fronts_match_brute_force(f):
    np.testing.assert_array_equal(non_dominated_sort(f), brute_fronts(f))


@given(grids)
def test_max_sense_is_min_of_negated(f):
    m = f.shape[1]
    senses = ["max" if j % 2 else "min" for j in range(m)]
    flipped = f * np.array([-1.0 if s == "max" else 1.0 for s in senses])
    np.testing.assert_array_equal(non_dominated_sort(f, sense=senses), non_dominated_sort(flipped))
    np.testing.assert_array_equal(non_dominated_sort(f, sense="max"), brute_fronts(-f))


@given(st.lists(st.integers(0, 15), min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_batched_equals_per_group(sizes, seed):
    f = np.random.default_rng(seed).integers(0, 5, size=(sum(sizes), 3)).astype(float)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    got = non_dominated_sort(f, offsets=offsets)
    for s, e in itertools.pairwise(offsets):
        np.testing.assert_array_equal(got[s:e], brute_fronts(f[s:e]))


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 9), st.integers(1, 5)),
        elements=st.integers(0, 9).map(float),
    )
)
def test_hypervolume_matches_inclusion_exclusion(f):
    ref = np.full(f.shape[1], 9.5)
    assert hypervolume(f, ref) == pytest.approx(brute_hv(f, ref), rel=1e-12, abs=1e-12)


def test_hypervolume_large_2d_3d_against_slices():
    rng = np.random.default_rng(0)
    f2 = rng.random((2000, 2))
    order = np.argsort(f2[:, 0], kind="stable")
    area, ymin = 0.0, 1.0
    for x, y in f2[order]:
        if y < ymin:
            area += (1.0 - x) * (ymin - y)
            ymin = y
    assert hypervolume(f2, [1.0, 1.0]) == pytest.approx(area, rel=1e-12)
    f3 = rng.random((300, 3))
    # 3-D as a sum of exact 2-D slices between consecutive third coordinates
    zs = np.sort(np.unique(np.concatenate([f3[:, 2], [1.0]])))
    vol = sum(
        hypervolume(f3[f3[:, 2] <= z0][:, :2], [1.0, 1.0]) * (z1 - z0)
        for z0, z1 in itertools.pairwise(zs)
    )
    assert hypervolume(f3, [1.0, 1.0, 1.0]) == pytest.approx(vol, rel=1e-10)


def test_hypervolume_max_sense_and_reference_outside():
    f = np.array([[3.0, 1.0], [1.0, 3.0]])
    assert hypervolume(f, [0.0, 0.0], sense="max") == pytest.approx(5.0)
    assert hypervolume([[5.0, 5.0]], [1.0, 1.0]) == 0.0


def _brute_crowding(f, fronts):
    d = np.zeros(len(f))
    for k in np.unique(fronts):
        idx = np.flatnonzero(fronts == k)
        if len(idx) <= 2:
            d[idx] = np.inf
            continue
        for j in range(f.shape[1]):
            o = idx[np.argsort(f[idx, j], kind="stable")]
            d[o[0]] = d[o[-1]] = np.inf
            rng = f[o[-1], j] - f[o[0], j]
            if rng > 0:
                for a in range(1, len(o) - 1):
                    d[o[a]] += (f[o[a + 1], j] - f[o[a - 1], j]) / rng
    return d


@given(grids)
def test_crowding_distance_matches_straightforward(f):
    fronts = brute_fronts(f)
    np.testing.assert_allclose(crowding_distance(f), _brute_crowding(f, fronts), rtol=1e-12)


def test_bad_input():
    with pytest.raises(InvalidInputError, match="row 1, column 0"):
        non_dominated_sort([[1.0, 2.0], [np.nan, 1.0]])
    with pytest.raises(ShapeError):
        non_dominated_sort([1.0, 2.0])
    with pytest.raises(InvalidInputError, match="sense"):
        non_dominated_sort([[1.0, 2.0]], sense="maximize")
    with pytest.raises(ShapeError, match="sense has"):
        non_dominated_sort([[1.0, 2.0]], sense=["min"])
    with pytest.raises(InvalidInputError, match="offsets"):
        non_dominated_sort([[1.0, 2.0], [2.0, 1.0]], offsets=[0, 1])
    with pytest.raises(ShapeError, match="ref has"):
        hypervolume([[1.0, 2.0]], [3.0])
    with pytest.raises(TypeError):
        non_dominated_sort("1 2")


def _fronts_vectorized(f):
    """Brute force with a dominance matrix (for sets too large for the loop version)."""
    le = np.all(f[:, None, :] <= f[None, :, :], axis=2)
    lt = np.any(f[:, None, :] < f[None, :, :], axis=2)
    dom = le & lt  # dom[j, i]: j dominates i
    front = np.full(len(f), -1)
    left = np.ones(len(f), dtype=bool)
    k = 0
    while left.any():
        cur = left & ~dom[left].any(axis=0)
        front[cur] = k
        left &= ~cur
        k += 1
    return front


@given(st.integers(0, 2**32 - 1), st.integers(65, 600), st.integers(3, 50))
def test_large_three_objective_sets(seed, n, levels):
    f = np.random.default_rng(seed).integers(0, levels, size=(n, 3)).astype(float)
    np.testing.assert_array_equal(non_dominated_sort(f), _fronts_vectorized(f))


@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(2, 4))
def test_agrees_with_moocore(seed, n, m):
    moocore = pytest.importorskip("moocore")
    f = np.random.default_rng(seed).random((n, m))
    ref = np.full(m, 1.1)
    assert hypervolume(f, ref) == pytest.approx(moocore.hypervolume(f, ref=ref), rel=1e-12)
    np.testing.assert_array_equal(non_dominated_sort(f), moocore.pareto_rank(f))


@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=6), st.integers(0, 2**32 - 1), st.booleans()
)
def test_batched_hypervolume_crowding_and_pairs(sizes, seed, all_pairs):
    from fastalign.pareto import pareto_front, pareto_pairs

    f = np.random.default_rng(seed).integers(0, 5, size=(sum(sizes), 3)).astype(float)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ref = np.full(3, 5.5)
    hv = hypervolume(f, ref, offsets=offsets)
    cd = crowding_distance(f, offsets=offsets)
    pairs = pareto_pairs(f, offsets=offsets, sense="min", all_pairs=all_pairs)
    for g, (s, e) in enumerate(itertools.pairwise(offsets)):
        assert hv[g] == pytest.approx(hypervolume(f[s:e], ref), rel=1e-12, abs=0)
        np.testing.assert_array_equal(cd[s:e], crowding_distance(f[s:e]))
        fr = brute_fronts(f[s:e]) if e > s else np.array([], dtype=int)
        mine = pairs[pairs[:, 0] == g]
        if e == s or fr.max() == 0:
            assert len(mine) == 0
            continue
        first, last = np.flatnonzero(fr == 0) + s, np.flatnonzero(fr == fr.max()) + s
        if all_pairs:
            assert sorted(map(tuple, mine[:, 1:])) == sorted((c, r) for c in first for r in last)
        else:
            assert mine[:, 1:].tolist() == [[first[0], last[0]]]
        np.testing.assert_array_equal(pareto_front(f[s:e]), fr == 0)


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    """The batched Rust ops give identical bytes with 1 thread and with all threads."""
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from fastalign import pareto\n"
        "rng = np.random.default_rng(5)\n"
        "f = rng.integers(0, 6, size=(3000, 3)).astype(float)\n"
        "off = np.arange(0, 3001, 12, dtype=np.int64)\n"
        "out = [pareto.non_dominated_sort(f, offsets=off),\n"
        "       pareto.crowding_distance(f, offsets=off),\n"
        "       pareto.hypervolume(f, np.full(3, 6.5), offsets=off),\n"
        "       pareto.pareto_pairs(f, offsets=off, all_pairs=True).ravel().astype(float),\n"
        "       pareto.pama(rng.normal(size=(5000, 3))),\n"
        "       pareto.mgda_weights(np.stack([np.eye(4) + 0.1 * k for k in range(50)]))]\n"
        "s = np.abs(rng.normal(size=(400, 6)))\n"
        "s /= np.linalg.norm(s, axis=1, keepdims=True)\n"
        "out += [np.array([pareto.hypervolume(s[:, :m], np.full(m, 1.1)) for m in (4, 5, 6)])]\n"
        "sys.stdout.write(''.join(a.astype(float).tobytes().hex() for a in out))\n"
    )
    runs = []
    for threads in ("1", "2"):
        env = dict(__import__("os").environ, RAYON_NUM_THREADS=threads)
        runs.append(
            subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
    assert runs[0] == runs[1]
    assert len(runs[0]) > 1000
