"""Backend choice for the torch-side ops: ``"auto" | "triton" | "torch" | "reference"``.

- ``"triton"``: fused Triton kernels; needs a CUDA tensor (or, for testing on CPU, the Triton
  interpreter: ``TRITON_INTERPRET=1`` set before the kernels are first imported).
- ``"torch"``: the portable chunked path (any device), with bounded temporaries.
- ``"reference"``: the naive, materialized implementation (tests and baseline rows).
- ``"auto"``: ``"triton"`` for CUDA tensors when Triton is installed, else ``"torch"``.

Nothing here imports triton or touches CUDA: availability is checked with
``importlib.util.find_spec`` and the device of the tensors at hand.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Literal

from fastalign.errors import BackendUnavailableError, InvalidInputError

Backend = Literal["auto", "triton", "torch", "reference"]
BACKENDS: tuple[str, ...] = ("auto", "triton", "torch", "reference")


@functools.cache
def triton_installed() -> bool:
    """Whether the ``triton`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreter() -> bool:
    """Whether Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve(backend: str, device_type: str, *, triton_ok: bool = True) -> str:
    """The concrete backend for an op on tensors of ``device_type``.

    ``triton_ok=False`` says the op has no Triton path for these inputs (e.g. float64):
    ``"auto"`` then picks ``"torch"`` and an explicit ``"triton"`` is an error.
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, not {type(backend).__name__}")
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        use_triton = device_type == "cuda" and triton_installed() and triton_ok
        return "triton" if use_triton else "torch"
    if backend == "triton":
        if not triton_ok:
            raise InvalidInputError("backend='triton' does not support these inputs (dtype)")
        if not triton_installed():
            raise BackendUnavailableError("backend='triton' needs the triton package")
        if device_type != "cuda" and not triton_interpreter():
            raise BackendUnavailableError(
                f"backend='triton' needs CUDA tensors (got {device_type}); set "
                "TRITON_INTERPRET=1 before importing fastalign's kernels to run them on CPU"
            )
    return backend
