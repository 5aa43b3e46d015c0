"""Pareto and multi-objective operations (Rust core, GIL released, NumPy in and out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fastalign import _core
from fastalign._validate import (
    as_float_array,
    as_offsets,
    check_gram,
    check_int,
    check_positive,
    check_range,
)
from fastalign.errors import InvalidInputError, ShapeError

__all__ = [
    "crowding_distance",
    "dpa_rewards",
    "hypervolume",
    "mgda_weights",
    "non_dominated_sort",
    "pama",
    "pareto_front",
    "pareto_pairs",
]


def pama(advantages: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """PAMA's combined advantage per sample (Pareto Multi-Objective Alignment).

    For each row ``a`` of ``advantages`` (one column per objective, already clipped as the
    caller wants, e.g. ``max(A, 0)`` for Noon PPO) the result is the projection of 0 onto
    ``[min_i a_i, max_i a_i]``: 0 when the objectives disagree in sign, otherwise the entry
    closest to 0. O(n) per row, all rows in parallel.

    Args:
        advantages: ``[B, n]`` array of real numbers, ``n >= 1``.

    Returns:
        float64 array ``[B]``.

    Raises:
        TypeError: ``advantages`` is not numeric.
        ShapeError: ``advantages`` is not 2-D.
        InvalidInputError: ``n == 0`` or a NaN / infinite entry (the message names the row).

    Example:
        >>> from fastalign.pareto import pama
        >>> pama([[0.5, 2.0], [-1.0, 3.0], [-2.0, -0.25]])
        array([ 0.5 ,  0.  , -0.25])
    """
    return _core.pareto_pama(as_float_array(advantages, "advantages", ndim=2))


def mgda_weights(
    gram: npt.ArrayLike, *, tol: float = 1e-12, max_iter: int = 10_000
) -> npt.NDArray[np.float64]:
    """MGDA min-norm weights: the point ``w`` of the probability simplex minimizing
    ``||sum_i w_i g_i||^2 = w^T G w`` for a Gram matrix ``G_ij = <g_i, g_j>`` of task
    gradients (multi-objective alignment: the common descent direction).

    Exact closed form for 2 tasks; beyond, Wolfe's min-norm-point algorithm (active-set
    Frank-Wolfe), stopped when the duality gap ``w^T G w - min_i (G w)_i`` is at most
    ``tol * max(1, w^T G w)``. Batched over a leading dimension, in parallel.

    Args:
        gram: ``[n, n]`` or ``[B, n, n]`` symmetric matrices of real numbers, ``n >= 1``.
        tol: relative duality-gap tolerance. max_iter: major cycles before giving up.

    Returns:
        float64 ``[n]`` (or ``[B, n]``) weights, non-negative, summing to 1.

    Raises:
        ShapeError: not ``[n, n]`` / ``[B, n, n]``. InvalidInputError: NaN / infinite or
        asymmetric entries, a matrix that is not positive semidefinite (no Gram matrix).
        ConvergenceError: ``max_iter`` reached.

    Example:
        >>> from fastalign.pareto import mgda_weights
        >>> mgda_weights([[1.0, 0.0], [0.0, 4.0]])   # g1 = (1, 0), g2 = (0, 2)
        array([0.8, 0.2])
    """
    if isinstance(gram, (str, bytes)):
        raise TypeError(f"gram must be an array of numbers, not {type(gram).__name__}")
    arr = np.asarray(gram)
    single = arr.ndim == 2
    g = as_float_array(arr[None] if single else arr, "gram", ndim=3)
    if g.shape[1] != g.shape[2]:
        raise ShapeError(f"gram must be [n, n] or [B, n, n], got shape {arr.shape}")
    max_iter = check_int(max_iter, "max_iter", 1, 2**31)
    tol = check_positive(tol, "tol")
    check_gram(g)
    w = _core.pareto_mgda_weights(g, float(tol), max_iter).reshape(g.shape[0], g.shape[1])
    return w[0] if single else w


def _minimize(F: npt.ArrayLike, sense: str | Sequence[str]) -> npt.NDArray[np.float64]:
    """``F`` as a C-contiguous float64 ``[n, m]`` matrix with maximized columns negated."""
    f = as_float_array(F, "F", ndim=2)
    m = f.shape[1]
    senses = [sense] * m if isinstance(sense, str) else list(sense)
    if len(senses) != m:
        raise ShapeError(f"sense has {len(senses)} entries for {m} objectives")
    flip = []
    for j, s in enumerate(senses):
        if s not in ("min", "max"):
            raise InvalidInputError(f"sense[{j}] must be 'min' or 'max', got {s!r}")
        flip.append(s == "max")
    if any(flip):
        f = f.copy()
        f[:, flip] *= -1.0
    return f


def non_dominated_sort(
    F: npt.ArrayLike,
    *,
    sense: str | Sequence[str] = "min",
    offsets: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int64]:
    """Front index of every row (0 = the non-dominated set, 1 = non-dominated once front 0
    is removed, ...). Identical points share a front.

    Two objectives: O(n log n); more: ENS with a binary search over fronts. With
    ``offsets`` (int64 ``[groups + 1]``, rows ``offsets[g]:offsets[g + 1]`` form group g),
    every group is sorted on its own, in parallel: the RL case of many small groups.

    Args:
        F: ``[n, m]`` objectives. sense: ``"min"``, ``"max"``, or one per objective.

    Raises:
        InvalidInputError: a NaN (with its row), bad offsets or sense. ShapeError: not 2-D.

    Example:
        >>> non_dominated_sort([[1, 2], [2, 1], [2, 2], [3, 3]])
        array([0, 0, 1, 2])
    """
    f = _minimize(F, sense)
    return _core.pareto_non_dominated_sort(f, None if offsets is None else as_offsets(offsets))


def crowding_distance(
    F: npt.ArrayLike,
    fronts: npt.ArrayLike | None = None,
    *,
    sense: str | Sequence[str] = "min",
    offsets: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """NSGA-II crowding distance of every row within its front (fronts computed with
    :func:`non_dominated_sort` unless given). Boundary points of a front get ``inf``.
    With ``offsets``, every group gets its own fronts and distances (in parallel).

    Example:
        >>> crowding_distance([[0, 4], [1, 2], [3, 1], [4, 0]])
        array([ inf, 1.5 , 1.25,  inf])
    """
    f = _minimize(F, sense)
    if offsets is not None:
        if fronts is not None:
            raise InvalidInputError("pass fronts or offsets, not both")
        return _core.pareto_crowding_distance(f, None, as_offsets(offsets))
    fr = (
        _core.pareto_non_dominated_sort(f, None)
        if fronts is None
        else np.ascontiguousarray(np.asarray(fronts), dtype=np.int64)
    )
    if fr.shape != (f.shape[0],):
        raise ShapeError(f"fronts must be [{f.shape[0]}], got shape {fr.shape}")
    return _core.pareto_crowding_distance(f, fr, None)


def hypervolume(
    F: npt.ArrayLike,
    ref: npt.ArrayLike,
    *,
    sense: str | Sequence[str] = "min",
    offsets: npt.ArrayLike | None = None,
) -> float | npt.NDArray[np.float64]:
    """Exact hypervolume of the region dominated by the rows of ``F`` and bounded by the
    reference point ``ref`` (for maximized objectives the reference is the lower corner).
    Points that do not strictly dominate ``ref`` add nothing. With ``offsets``, one
    hypervolume per group (float64 ``[groups]``), computed in parallel.

    2 objectives: O(n log n); 3: O(n log n) sweep; 4: O(n^2) sweep over the fourth
    objective that adds each point's 3-D contribution in O(n) (as HV4D+); 5: the same sweep
    one level up (4-D contributions; in parallel from 128 points); more: WFG (exclusive
    volumes over non-dominated limit sets, one objective dropped per level, down to the 5-D
    sweep; the exclusive parts in parallel), exact, exponential in the number of objectives at
    worst. Equal to moocore's to 1e-12 relative (tested on its own data sets and on
    spherical, linear and convex fronts in 4 to 8 objectives); the same bits for any thread
    count.

    Example:
        >>> hypervolume([[1, 2], [2, 1]], [3, 3])
        3.0
    """
    f = _minimize(F, sense)
    r = as_float_array(np.asarray(ref)[None], "ref", ndim=2)[0]
    if r.shape[0] != f.shape[1]:
        raise ShapeError(f"ref has {r.shape[0]} values for {f.shape[1]} objectives")
    if sense != "min":  # _minimize has checked it: maximized columns flip, in a copy
        senses = [sense] * f.shape[1] if isinstance(sense, str) else list(sense)
        r = r.copy()
        r[[s == "max" for s in senses]] *= -1.0
    if offsets is None:
        return float(_core.pareto_hypervolume(f, r, None)[0])
    return _core.pareto_hypervolume(f, r, as_offsets(offsets))


def pareto_front(F: npt.ArrayLike, *, sense: str | Sequence[str] = "min") -> npt.NDArray[np.bool_]:
    """Boolean mask of the non-dominated rows (the first front).

    Example:
        >>> pareto_front([[1, 2], [2, 1], [2, 2]])
        array([ True,  True, False])
    """
    return non_dominated_sort(F, sense=sense) == 0


def pareto_pairs(
    F: npt.ArrayLike,
    *,
    offsets: npt.ArrayLike | None = None,
    sense: str | Sequence[str] = "max",
    all_pairs: bool = False,
) -> npt.NDArray[np.int64]:
    """Preference pairs from multi-objective scores: per group (prompt), ``chosen`` from the
    first Pareto front and ``rejected`` from the last one.

    Args:
        F: ``[n, m]`` scores of the sampled responses (rewards: ``sense="max"``, the
            default here). offsets: int64 ``[groups + 1]`` (default: one group).
        all_pairs: every (first-front, last-front) combination instead of one pair per
            group (the first such rows in input order).

    Returns:
        int64 ``[P, 3]``: ``(group, chosen_row, rejected_row)`` with global row indices;
        groups whose rows all share one front give no pair.

    Example:
        >>> pareto_pairs([[1.0, 0.5], [0.2, 0.1], [0.9, 0.9]])
        array([[0, 0, 1]])
    """
    f = _minimize(F, sense)
    o = np.array([0, f.shape[0]], dtype=np.int64) if offsets is None else as_offsets(offsets)
    return _core.pareto_pairs(f, o, bool(all_pairs)).reshape(-1, 3)


def dpa_rewards(R: npt.ArrayLike, direction: npt.ArrayLike, *, atol: float = 1e-6):
    """DPA's directional reward ``r_v = v . r`` for rewards ``[..., n]`` and a unit
    direction ``v [n]`` (``||v|| = 1`` is checked).

    Example:
        >>> dpa_rewards([[1.0, 2.0], [3.0, -1.0]], [0.6, 0.8])
        array([2.2, 1. ])
    """
    r = as_float_array(R, "R", ndim=None, finite=True)
    v = as_float_array(direction, "direction", ndim=1, finite=True)
    atol = check_range(atol, "atol", 0.0, math.inf)
    if r.shape[-1:] != v.shape:
        raise ShapeError(f"direction must be [{r.shape[-1]}], got shape {v.shape}")
    norm = float(np.linalg.norm(v))
    if abs(norm - 1.0) > atol:
        raise InvalidInputError(f"direction must be a unit vector, its norm is {norm:.6g}")
    return r @ v
