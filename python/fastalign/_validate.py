"""Input validation and NumPy coercion shared by the facades over the Rust core.

The rule: a wrong *type* is a ``TypeError``, a wrong *value or shape* is an
:class:`~fastalign.errors.InvalidInputError` / :class:`~fastalign.errors.ShapeError` (both
``ValueError``), and every message names the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fastalign.errors import ShapeError


def as_float_array(
    x: Any, name: str, *, ndim: int, dtype: type[np.floating[Any]] = np.float64
) -> npt.NDArray[Any]:
    """``x`` as a C-contiguous array of ``dtype`` with ``ndim`` dimensions (copying only when
    ``x`` is not already one)."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, not {type(x).__name__}")
    if x is None:
        raise TypeError(f"{name} must be an array of numbers, not None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ShapeError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_str_sequence(x: Any, name: str) -> Sequence[str]:
    """``x`` if it is a sequence of ``str`` (a lone ``str`` is rejected: it is a sequence of
    characters, and scoring it as such would be silently wrong)."""
    if isinstance(x, str):
        raise TypeError(f"{name} must be a sequence of strings, not a single str")
    if not isinstance(x, Sequence):
        raise TypeError(f"{name} must be a sequence of strings, not {type(x).__name__}")
    for i, item in enumerate(x):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, not {type(item).__name__}")
    return x
