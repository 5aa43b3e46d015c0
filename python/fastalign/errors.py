"""fastalign's exception hierarchy.

Every exception fastalign raises on purpose is a :class:`FastalignError`. Those caused by bad
input also derive from the builtin a caller would expect (``ValueError``), so
``except ValueError`` keeps working::

    >>> import fastalign
    >>> try:
    ...     fastalign.pareto.pama([[1.0, float("nan")]])
    ... except ValueError as e:
    ...     print(type(e).__name__, "-", e)
    InvalidInputError - advantages contains a non-finite value (NaN) at row 0, column 1
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConvergenceError",
    "FastalignError",
    "InternalError",
    "InvalidInputError",
    "ShapeError",
]


class FastalignError(Exception):
    """Base class of every exception fastalign raises on purpose."""


class InvalidInputError(FastalignError, ValueError):
    """An argument has a value outside its domain (NaN, out-of-range label, bad option)."""


class ShapeError(InvalidInputError):
    """Array shapes or lengths that do not fit together."""


class ConvergenceError(FastalignError, RuntimeError):
    """An iterative solver stopped before meeting its tolerance."""


class BackendUnavailableError(FastalignError, RuntimeError):
    """The requested compute backend cannot run here (e.g. ``backend="triton"`` without CUDA)."""


class InternalError(FastalignError, RuntimeError):
    """A bug inside fastalign (for instance a panic in the Rust core). Please report it."""
