"""fastalign.pareto.mgda_weights: KKT conditions of the min-norm problem, the 2-task closed
form, batched = per-matrix for any grouping, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.pareto import mgda_weights


def gram_of(seed, n, dim):
    g = np.random.default_rng(seed).normal(size=(n, dim))
    return g @ g.T


def assert_kkt(gram, w, tol=1e-9):
    assert w.min() >= 0
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    gw = gram @ w
    wgw = w @ gw
    scale = max(1.0, abs(wgw))
    # optimality on the simplex: (G w)_i >= w^T G w everywhere, = where w_i > 0
    assert np.all(gw >= wgw - tol * scale)
    assert np.all(np.abs(gw[w > 1e-9] - wgw) <= 1e-7 * scale)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), dim=st.integers(1, 8))
def test_kkt_on_random_gradients(seed, n, dim):
    gram = gram_of(seed, n, dim)
    assert_kkt(gram, mgda_weights(gram))


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 6))
def test_two_tasks_closed_form(seed, dim):
    gram = gram_of(seed, 2, dim)
    w = mgda_weights(gram)
    denom = gram[0, 0] - 2 * gram[0, 1] + gram[1, 1]
    a = 0.5 if denom <= 0 else min(max((gram[1, 1] - gram[0, 1]) / denom, 0.0), 1.0)
    np.testing.assert_allclose(w, [a, 1 - a], rtol=0, atol=1e-15)


def test_batched_equals_single_and_degenerate_cases():
    grams = np.stack([gram_of(s, 5, 3) for s in range(20)])
    batched = mgda_weights(grams)
    for g, w in zip(grams, batched, strict=True):
        np.testing.assert_array_equal(w, mgda_weights(g))
    # identical gradients, a zero gradient (weight 1 on it), one task
    np.testing.assert_allclose(mgda_weights(np.ones((3, 3))).sum(), 1.0)
    z = gram_of(1, 3, 2)
    z[0, :] = z[:, 0] = 0.0
    np.testing.assert_allclose(mgda_weights(z), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(mgda_weights([[2.0]]), [1.0])


def test_bad_input():
    with pytest.raises(ShapeError):
        mgda_weights(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="not symmetric"):
        mgda_weights([[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(InvalidInputError, match="non-finite"):
        mgda_weights([[1.0, np.nan], [np.nan, 1.0]])
    with pytest.raises(TypeError):
        mgda_weights("1 0; 0 1")
