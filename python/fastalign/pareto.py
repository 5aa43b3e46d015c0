"""Pareto and multi-objective operations (Rust core, GIL released, NumPy in and out)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fastalign import _core
from fastalign._validate import as_float_array
from fastalign.errors import ShapeError

__all__ = ["mgda_weights", "pama"]


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
    return _core.pama(as_float_array(advantages, "advantages", ndim=2))


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
        asymmetric entries. ConvergenceError: ``max_iter`` reached.

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
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise TypeError(f"max_iter must be an int >= 1, got {max_iter!r}")
    w = _core.mgda_weights(g, float(tol), max_iter).reshape(g.shape[0], g.shape[1])
    return w[0] if single else w
