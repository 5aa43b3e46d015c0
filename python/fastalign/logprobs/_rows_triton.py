"""The Triton row kernels (``kernels/head_rows.py``) behind the driver's row-pass contract;
importing this module imports triton (only done once the Triton backend is chosen)."""

from __future__ import annotations

from fastalign.kernels.head_rows import fold, grad, grad_stored

__all__ = ["fold", "grad", "grad_stored"]
