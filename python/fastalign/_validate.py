"""Input validation and NumPy coercion shared by the facades over the Rust core.

The rule: a wrong *type* is a ``TypeError``, a wrong *value or shape* is an
:class:`~fastalign.errors.InvalidInputError` / :class:`~fastalign.errors.ShapeError` (both
``ValueError``), and every message names the argument. NumPy is imported by the functions
that coerce to it, not by this module (``fastalign.bleu`` checks its options without it).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def as_float_array(
    x: Any, name: str, *, ndim: int, dtype: type[np.floating[Any]] | None = None
) -> npt.NDArray[Any]:
    """``x`` as a C-contiguous array of ``dtype`` (default float64) with ``ndim`` dimensions
    (copying only when ``x`` is not already one)."""
    import numpy as np

    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, not {type(x).__name__}")
    if x is None:
        raise TypeError(f"{name} must be an array of numbers, not None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ShapeError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64 if dtype is None else dtype)


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


def check_threads(threads: Any) -> int | None:
    """``threads`` of a parallel call: ``None`` (the shared pool: all cores) or an int >= 1.
    The core refuses more than ``4x`` the machine's cores (at least 64), by name."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not hasattr(threads, "__index__"):  # int, NumPy ints
        raise TypeError(f"threads must be an int or None, not {type(threads).__name__}")
    threads = operator.index(threads)
    if not 1 <= threads <= 2**31:
        raise InvalidInputError(f"threads must be >= 1 (and a few times the cores), got {threads}")
    return threads
