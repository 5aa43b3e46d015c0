"""fastalign.pareto.pama against the spec's projection formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.pareto import pama


def _projection_of_zero(a: np.ndarray) -> np.ndarray:
    """Straight from the spec: s* = projection of 0 onto [min_i a_i, max_i a_i]."""
    out = []
    for row in a.tolist():
        lo, hi = min(row), max(row)
        out.append(lo if lo > 0 else hi if hi < 0 else 0.0)
    return np.array(out, dtype=np.float64)


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    )
)
def test_matches_projection_formula(a):
    got = pama(a)
    np.testing.assert_array_equal(got, _projection_of_zero(a))
    # the projection is the point of [min, max] closest to 0
    assert np.all(np.abs(got) <= np.abs(a).min(axis=1) + 0.0)


def test_large_batch_is_parallel_and_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100_003, 3))
    np.testing.assert_array_equal(pama(a), _projection_of_zero(a))


def test_noon_ppo_clipped_advantages():
    adv = np.array([[0.3, -0.2, 1.0], [0.3, 0.2, 1.0]])
    np.testing.assert_array_equal(pama(np.maximum(adv, 0.0)), [0.0, 0.2])


def test_accepts_lists_ints_float32_and_non_contiguous():
    assert pama([[1, 2], [3, 4]]).tolist() == [1.0, 3.0]
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2] - 5
    np.testing.assert_array_equal(pama(a), _projection_of_zero(a.astype(np.float64)))
    assert pama(np.zeros((0, 3))).shape == (0,)


def test_bad_input():
    with pytest.raises(ShapeError, match="advantages must be 2-dimensional"):
        pama([1.0, 2.0])
    with pytest.raises(TypeError, match="not str"):
        pama("1 2")
    with pytest.raises(TypeError, match="real numbers"):
        pama([["a", "b"]])
    with pytest.raises(InvalidInputError, match="at least one objective"):
        pama(np.zeros((3, 0)))
    with pytest.raises(InvalidInputError, match=r"non-finite value \(NaN\) at row 1, column 0"):
        pama([[1.0, 2.0], [np.nan, 0.0]])
    with pytest.raises(InvalidInputError, match=r"non-finite value \(inf\) at row 0, column 1"):
        pama([[1.0, np.inf]])
