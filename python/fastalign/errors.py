"""fastalign's exception hierarchy.

Every exception fastalign raises on purpose is a :class:`FastalignError`. Those caused by bad
input also derive from the builtin a caller would expect (``ValueError``; ``MemoryError`` for an
output too large to allocate), so ``except ValueError`` keeps working (Ctrl-C during a long
Rust call raises the usual ``KeyboardInterrupt``)::

    >>> import fastalign
    >>> try:
    ...     fastalign.pareto.pama([[1.0, float("nan")]])
    ... except ValueError as e:
    ...     print(type(e).__name__, "-", e)
    InvalidInputError - advantages contains a non-finite value (NaN) at row 0, column 1
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
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


class AllocationError(FastalignError, MemoryError):
    """A result or working set larger than the memory this process can allocate (a pair
    enumeration, a bootstrap matrix, a fit over ``n_items`` items): raised before the work
    starts, naming the argument and the size it implies, instead of aborting the interpreter."""


class BackendUnavailableError(FastalignError, RuntimeError):
    """The requested compute backend cannot run here (e.g. ``backend="triton"`` without CUDA)."""


class InternalError(FastalignError, RuntimeError):
    """A bug inside fastalign (for instance a panic in the Rust core). Please report it."""
