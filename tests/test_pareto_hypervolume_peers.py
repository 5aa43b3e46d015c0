"""Hypervolume against moocore, the field's reference implementation, beyond the random
uniform sets of test_pareto_fronts: the fronts of the benchmark (spherical, linear, convex) in
4 to 8 objectives, and moocore's own packaged data sets, one set per group (batched)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign.pareto import hypervolume
from fastalign.reference.pareto import front_points

moocore = pytest.importorskip("moocore")


@settings(deadline=None, max_examples=40)
@given(
    st.sampled_from(["spherical", "linear", "convex"]),
    st.integers(4, 8),
    st.integers(1, 120),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_fronts_equal_moocore(shape, m, n, seed, ties):
    # few objectives get more points (the 4-D sweep is O(n^2)), many get fewer (WFG)
    n = n * {4: 4, 5: 2}.get(m, 1) // (2 if m == 8 else 1) or 1
    f = front_points(shape, n, m, np.random.default_rng(seed))
    if ties:  # ties, duplicates and dominated points on a coarse grid
        f = np.round(f * 8) / 8
    ref = np.full(m, 1.1)
    want = moocore.hypervolume(f, ref=ref)
    assert hypervolume(f, ref) == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "name",
    ["ran.10pts.9d.10", "spherical-250-10-3d.txt.xz", "uniform-250-10-3d.txt.xz", "input1.dat"],
)
def test_moocore_data_sets_batched(name):
    """moocore's packaged sets (last column: the set's number), one hypervolume per set,
    batched; the reference point just beyond the worst value of each objective."""
    data = moocore.get_dataset(name)
    points, sets = data[:, :-1], data[:, -1].astype(int)
    order = np.argsort(sets, kind="stable")
    points, sets = points[order], sets[order]
    offsets = np.r_[0, np.flatnonzero(np.diff(sets)) + 1, len(sets)]
    ref = points.max(axis=0) + 0.1
    want = [moocore.hypervolume(points[s:e], ref=ref) for s, e in itertools.pairwise(offsets)]
    got = hypervolume(points, ref, offsets=offsets)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert hypervolume(points, ref) == pytest.approx(moocore.hypervolume(points, ref=ref),
                                                     rel=1e-12)  # fmt: skip


def test_four_objectives_with_max_sense_and_points_beyond_the_reference():
    rng = np.random.default_rng(3)
    f = front_points("spherical", 400, 4, rng)
    f[::7] += 0.5  # some rows do not dominate the reference: they add nothing
    ref = np.full(4, 1.1)
    want = moocore.hypervolume(f, ref=ref)
    assert hypervolume(f, ref) == pytest.approx(want, rel=1e-12)
    assert hypervolume(-f, -ref, sense="max") == pytest.approx(want, rel=1e-12)
