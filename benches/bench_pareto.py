"""PAMA combined advantages: Rust core vs vectorized NumPy, B x 3 objectives."""

from __future__ import annotations

import numpy as np
import pytest

from fastalign.pareto import pama

SIZES = [10_000, 1_000_000]


def _numpy_pama(a: np.ndarray) -> np.ndarray:
    return np.clip(0.0, a.min(axis=1), a.max(axis=1))


@pytest.fixture(params=SIZES, ids=lambda b: f"B={b}")
def advantages(request):
    return np.random.default_rng(0).normal(size=(request.param, 3))


@pytest.mark.parametrize("impl", ["fastalign", "numpy"])
def test_pama(benchmark, advantages, impl):
    benchmark.group = f"pama B={advantages.shape[0]}"
    fn = pama if impl == "fastalign" else _numpy_pama
    out = benchmark(fn, advantages)
    np.testing.assert_array_equal(out, _numpy_pama(advantages))
