"""The ``token_logps`` workload: fused LM-head log-probs, forward + backward with an
arbitrary upstream gradient, each implementation in its own process (peak memory is its own).

Rows: the compute floor (the four ``N x V x H`` matmuls a recompute backward needs, timed
with ``torch.mm`` in full), naive torch (materialized logits; the baseline), torch's
``linear_cross_entropy`` (where it exists), TRL's ``ChunkedLogProbFunction`` (what TRL's
trainers run with ``fused_lm_head=True``), Liger-Kernel's fused linear cross-entropy (where
importable), fastalign's torch path and, on CUDA, fastalign's Triton path. Errors are the max
normwise relative error of (logps, dhidden, dweight) against one float64 reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastalign.bench._harness import Row, have
from fastalign.bench._isolated import isolated_rows, matmul_floor
from fastalign.errors import InvalidInputError

# (N, H, V) per size; CPU sizes follow BENCHMARKS.md, GPU sizes the GPU workload there.
# "tiny" exists for checking the GPU script itself under the Triton interpreter.
CPU_SIZES = {
    "tiny": (64, 32, 100),
    "quick": (1024, 512, 8000),
    "default": (4096, 1024, 32000),
    "full": (8192, 2048, 64000),
}
GPU_SIZES = {
    "tiny": (64, 32, 100),
    "quick": (4096, 2048, 32000),
    "default": (16384, 4096, 128256),
    "full": (32768, 4096, 128256),
}
REPEAT = {"tiny": 1, "quick": 2, "default": 1, "full": 3}
TRL_CHUNK = 32768  # TRL's _CHUNKED_LOGPROB_CHUNK_SIZE (trl.trainer.utils)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shape(size: str) -> tuple[int, int, int]:
    return (GPU_SIZES if _device() == "cuda" else CPU_SIZES)[size]


def inputs(size: str) -> dict[str, Any]:
    import torch

    n, h, v = shape(size)
    device = _device()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # drawn on the device itself (a CPU draw of a 128k x 4k head takes seconds per process)
    g = torch.Generator(device=device).manual_seed(0)
    kw = {"generator": g, "device": device}
    return {
        "hidden": torch.randn(n, h, **kw).to(dtype),
        "weight": (torch.randn(v, h, **kw) * (2.0 / h**0.5)).to(dtype),
        "labels": torch.randint(0, v, (n,), **kw),
        "grad": torch.randn(n, **kw),
    }


def impls(size: str = "default") -> list[str]:
    import torch.nn.functional as F

    from fastalign import _backend

    names = ["floor (4 x torch.mm)", "naive torch"]
    if hasattr(F, "linear_cross_entropy"):
        names.append("torch linear_cross_entropy")
    if have("trl"):
        names.append("TRL ChunkedLogProbFunction")
    if have("liger_kernel") and _device() == "cuda":  # Triton kernels: CUDA only
        names.append("Liger fused linear CE")
    names.append("fastalign torch")
    interpreted = _backend.triton_interpreter() and size == "tiny"
    if _backend.triton_installed() and (_device() == "cuda" or interpreted):
        names.append("fastalign triton")
        names.append("fastalign first Triton kernel")  # the fused GEMM it replaced
    return names


def _logp_fn(impl: str, x: dict[str, Any]) -> Callable[[Any, Any], Any]:
    import torch.nn.functional as F

    import fastalign
    from fastalign.reference.logprobs import token_logps as naive

    y = x["labels"]
    if impl == "naive torch":
        return lambda h, w: naive(h, w, y)
    if impl == "torch linear_cross_entropy":
        return lambda h, w: -F.linear_cross_entropy(h, w, y, reduction="none")
    if impl == "TRL ChunkedLogProbFunction":
        from trl.kernels import ChunkedLogProbFunction

        return lambda h, w: ChunkedLogProbFunction.apply(
            h, w, None, y, 1.0, TRL_CHUNK, None, 1.0, ()
        )[0]
    if impl == "Liger fused linear CE":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        loss = LigerFusedLinearCrossEntropyLoss(reduction="none")
        return lambda h, w: -loss(w, h, y)
    if impl == "fastalign torch":
        return lambda h, w: fastalign.token_logps(h, w, y, backend="torch")
    if impl == "fastalign triton":
        return lambda h, w: fastalign.token_logps(h, w, y, backend="triton")
    if impl == "fastalign first Triton kernel":
        from fastalign.logprobs._fused_gemm import fused_logps
        from fastalign.logprobs._tiling import Transform

        def first(h, w):
            keep = (y != -100).nonzero().squeeze(1)
            out = fused_logps(h[keep], w, None, y[keep], Transform(), False)[0]
            return out.new_zeros(y.shape[0]).index_copy(0, keep, out)

        return first
    raise InvalidInputError(f"unknown implementation {impl!r}")


def run_impl(op: str, impl: str, size: str, measure: Callable[..., dict[str, Any]]):
    """Child side: time one implementation (see fastalign.bench._isolated)."""
    import torch

    x = inputs(size)
    device = _device()
    if impl.startswith("floor"):
        step = matmul_floor(x["hidden"], x["weight"], logits_passes=2)  # forward, recompute
        return measure(step, REPEAT[size], device)
    fn = _logp_fn(impl, x)

    def step():
        h = x["hidden"].detach().requires_grad_(True)
        w = x["weight"].detach().requires_grad_(True)
        lp = fn(h, w)
        dh, dw = torch.autograd.grad(lp, [h, w], x["grad"].to(lp.dtype))
        return lp.detach(), dh, dw

    return measure(step, REPEAT[size], device)


def _reference(size: str):
    """float64 logps and gradients (materialized path, in chunks of rows for memory), on the
    inputs' device: float64 GEMMs on a GPU take seconds where a CPU would take minutes."""
    import torch

    from fastalign.reference.logprobs import token_logps as naive

    x = inputs(size)
    h = x["hidden"].double().requires_grad_(True)
    w = x["weight"].double().requires_grad_(True)
    y, g = x["labels"], x["grad"].double()
    lps = []
    budget = 2**31 if h.is_cuda else 2**27  # bytes of float64 logits per chunk
    rows = max(1, budget // (8 * w.shape[0]))
    for s in range(0, h.shape[0], rows):
        lp = naive(h[s : s + rows], w, y[s : s + rows])
        lp.backward(g[s : s + rows])
        lps.append(lp.detach())
    return torch.cat(lps), h.grad, w.grad


def run(size: str, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Parent side: every implementation in a fresh process, errors vs float64."""
    n, h, v = shape(size)
    device = _device()
    dtype = "bf16" if device == "cuda" else "fp32"
    wl = f"N={n:,} H={h:,} V={v:,} {dtype} {device} fwd+bwd"
    grads_mb = (n * h + v * h) * (2 if device == "cuda" else 4) / 2**20
    out = isolated_rows(
        "token_logps",
        wl,
        impls(size),
        size,
        baseline="naive torch",
        reference=lambda: _reference(size),
        tol=1e-4 if device == "cpu" else 3e-2,
        progress=progress,
    )
    for r in out:
        if r.impl.startswith("floor"):
            r.note = f"{8 * n * h * v / 1e12:.2f} TFLOP"
        elif r.impl.startswith("fastalign") and r.peak_mb is not None:
            r.note = f"grads {grads_mb:.0f} MB"
    return out
