"""Pareto and multi-objective operations (Rust core, GIL released, NumPy in and out)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fastalign import _core
from fastalign._validate import as_float_array

__all__ = ["pama"]


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
