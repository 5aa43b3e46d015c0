"""The row passes of a backend: the Triton row kernels' launchers (``_rows_triton``, which
import triton) or their torch twins (``_rows_torch``). The tiling driver takes the module it
is given, so it never imports either."""

from __future__ import annotations

from types import ModuleType


def row_passes(which: str) -> ModuleType:
    """The row-pass module of a backend: ``"triton"`` (imports triton) or the torch twins."""
    if which == "triton":
        from fastalign.logprobs import _rows_triton

        return _rows_triton
    from fastalign.logprobs import _rows_torch

    return _rows_torch
