"""The ``pama`` workload of ``fastalign bench`` (``fastalign bench --only pama``)."""

from __future__ import annotations

from fastalign.bench._harness import Row, time_median


def run(size: str) -> list[Row]:
    """PAMA combined advantages for B samples x 3 objectives."""
    import numpy as np

    from fastalign.pareto import pama as fast

    b = {"quick": 100_000, "default": 1_000_000, "full": 10_000_000}[size]
    a = np.random.default_rng(0).normal(size=(b, 3))
    repeat = {"quick": 5, "default": 7, "full": 3}[size]

    def numpy_ref():
        return np.clip(0.0, a.min(axis=1), a.max(axis=1))

    t_ref, want = time_median(numpy_ref, repeat=repeat)
    t_fast, got = time_median(lambda: fast(a), repeat=repeat)
    err = float(np.abs(got - want).max())
    wl = f"B={b:,} n=3"
    return [
        Row("pama", wl, "numpy (vectorized)", t_ref, baseline=True, max_err=0.0, tol=0.0),
        Row("pama", wl, "fastalign (rust)", t_fast, max_err=err, tol=0.0),
    ]
