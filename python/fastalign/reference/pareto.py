"""Brute-force Pareto references: fronts by pairwise dominance (O(N^2 M) per front) and the
hypervolume by inclusion-exclusion over every subset (exponential: tiny sets only); and the
standard test fronts the tests and the bench share (:func:`front_points`)."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt


def fronts(f: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The non-dominated front (0 = best) of each row of ``f`` (minimization): peel off the
    rows no remaining row dominates, again and again."""
    f = np.asarray(f, dtype=np.float64)
    n = len(f)
    front = np.full(n, -1, dtype=np.int64)
    left = set(range(n))
    k = 0
    while left:
        cur = [
            i for i in left if not any(np.all(f[j] <= f[i]) and np.any(f[j] < f[i]) for j in left)
        ]
        for i in cur:
            front[i] = k
        left -= set(cur)
        k += 1
    return front


def hypervolume(f: npt.ArrayLike, ref: npt.ArrayLike) -> float:
    """The volume dominated by the rows of ``f`` (minimization) and bounded by ``ref``, by
    inclusion-exclusion over every subset of the points strictly better than ``ref``."""
    ref = np.asarray(ref, dtype=np.float64)
    pts = [p for p in np.asarray(f, dtype=np.float64) if np.all(p < ref)]
    total = 0.0
    for k in range(1, len(pts) + 1):
        for combo in itertools.combinations(pts, k):
            corner = np.max(combo, axis=0)
            total += (-1) ** (k + 1) * float(np.prod(ref - corner))
    return total


def front_points(shape: str, n: int, m: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``n`` random points of a mutually non-dominated front in ``m`` objectives (minimized),
    inside the unit cube: ``"spherical"`` (the positive orthant of the unit sphere; concave
    seen from the ideal point, DTLZ2's shape), ``"linear"`` (the unit simplex, DTLZ1's) or
    ``"convex"`` (one minus a spherical point)."""
    x = np.abs(rng.standard_normal((n, m)))
    if shape == "spherical":
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    if shape == "linear":
        return x / x.sum(axis=1, keepdims=True)
    if shape == "convex":
        return 1.0 - x / np.linalg.norm(x, axis=1, keepdims=True)
    raise ValueError(f"shape must be 'spherical', 'linear' or 'convex', got {shape!r}")
