"""fastalign's Triton kernels (installed as ``fastalign.kernels``).

Importing any module of this package imports ``triton``; ``import fastalign`` never does.
Each module holds ``@triton.jit`` kernels and their launchers; the autograd functions and the
public API live in ``fastalign.logprobs`` / ``fastalign.losses``. To run a kernel on CPU,
set ``TRITON_INTERPRET=1`` *before* the first import of a kernel module.
"""
