"""The ``distill`` workload: the two-head divergence (generalized JSD, beta = 0.5) between a
student and a teacher from their hidden states and LM heads, forward + backward (the
student's gradients) with an arbitrary upstream gradient, each implementation in its own
process (peak memory is its own).

Rows: the matmul floor (student logits twice, teacher logits twice: the forward and the
backward's recompute, plus the student's dX and dW: ``torch.mm`` in full), naive torch (both
models' logits materialized; the baseline), TRL 1.16's ``ChunkedDivergenceFunction`` (what
its DistillationTrainer runs), Liger's fused linear JSD (where importable, CUDA), fastalign.
Errors: the max normwise relative error of (divergence, dhidden, dweight) against float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastalign.bench._harness import Row, have
from fastalign.bench._isolated import isolated_rows
from fastalign.errors import InvalidInputError

# (N, H_student, H_teacher, V)
CPU_SIZES = {
    "tiny": (64, 32, 48, 100),
    "quick": (1024, 512, 1024, 8000),
    "default": (4096, 1024, 2048, 32000),
    "full": (4096, 1024, 2048, 32000),
}
GPU_SIZES = {
    "tiny": (64, 32, 48, 100),
    "quick": (4096, 2048, 4096, 32000),
    "default": (16384, 4096, 4096, 128256),
    "full": (16384, 4096, 4096, 128256),
}
REPEAT = {"tiny": 1, "quick": 2, "default": 1, "full": 3}
BETA = 0.5


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shape(size: str) -> tuple[int, int, int, int]:
    return (GPU_SIZES if _device() == "cuda" else CPU_SIZES)[size]


def inputs(size: str) -> dict[str, Any]:
    import torch

    n, hs, ht, v = shape(size)
    device = _device()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    kw = {"generator": g, "device": device}
    return {
        "hs": torch.randn(n, hs, **kw).to(dtype),
        "ws": (torch.randn(v, hs, **kw) * (2.0 / hs**0.5)).to(dtype),
        "ht": torch.randn(n, ht, **kw).to(dtype),
        "wt": (torch.randn(v, ht, **kw) * (2.0 / ht**0.5)).to(dtype),
        "grad": torch.randn(n, **kw),
    }


def impls(size: str = "default") -> list[str]:
    names = ["floor (6 x torch.mm)", "naive torch"]
    if have("trl"):
        names.append("TRL ChunkedDivergenceFunction")
    if have("liger_kernel") and _device() == "cuda":
        names.append("Liger fused linear JSD")
    names.append("fastalign torch")
    return names


def _div_fn(impl: str, x: dict[str, Any]) -> Callable[[Any, Any], Any]:
    import fastalign
    from fastalign.reference.divergence import token_divergence as naive

    ht, wt = x["ht"], x["wt"]
    if impl == "naive torch":
        return lambda h, w: naive(h, w, ht, wt, kind="jsd", beta=BETA)
    if impl == "TRL ChunkedDivergenceFunction":
        from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

        return lambda h, w: ChunkedDivergenceFunction.apply(
            h, w, None, ht, wt, None, BETA, 1.0, 1.0, None, 1.0, None
        )[0]
    if impl == "Liger fused linear JSD":
        from liger_kernel.transformers import LigerFusedLinearJSD

        # Liger's beta weights the other side of the mixture; 0.5 is symmetric
        jsd = LigerFusedLinearJSD(jsd_beta=BETA, temperature=1.0)
        return lambda h, w: jsd(h, w, ht, wt)
    if impl == "fastalign torch":
        return lambda h, w: fastalign.token_divergence(h, w, ht, wt, kind="jsd", beta=BETA,
                                                       backend="torch")  # fmt: skip
    raise InvalidInputError(f"unknown implementation {impl!r}")


def run_impl(op: str, impl: str, size: str, measure: Callable[..., dict[str, Any]]):
    """Child side: time one implementation (see fastalign.bench._isolated)."""
    import torch

    x = inputs(size)
    device = _device()
    if impl.startswith("floor"):
        g = torch.randn(x["hs"].shape[0], x["ws"].shape[0], device=device, dtype=x["hs"].dtype)

        def floor():
            for _ in range(2):  # forward and the backward's recompute
                torch.mm(x["hs"], x["ws"].t())
                torch.mm(x["ht"], x["wt"].t())
            torch.mm(g, x["ws"])
            torch.mm(g.t(), x["hs"])
            return ()

        return measure(floor, REPEAT[size], device)
    fn = _div_fn(impl, x)
    scalar = impl.startswith("Liger")  # a mean over tokens, not per-token divergences

    def step():
        h = x["hs"].detach().requires_grad_(True)
        w = x["ws"].detach().requires_grad_(True)
        d = fn(h, w)
        up = d.new_ones(()) / x["hs"].shape[0] if scalar else x["grad"].to(d.dtype)
        dh, dw = torch.autograd.grad(d, [h, w], up)
        return () if scalar else (d.detach(), dh, dw)

    return measure(step, REPEAT[size], device)


def _reference(size: str):
    """float64 divergences and student gradients (materialized, in chunks of rows)."""
    import torch

    from fastalign.reference.divergence import token_divergence as naive

    x = inputs(size)
    h = x["hs"].double().requires_grad_(True)
    w = x["ws"].double().requires_grad_(True)
    ht, wt, g = x["ht"].double(), x["wt"].double(), x["grad"].double()
    rows = max(1, (2**31 if h.is_cuda else 2**27) // (8 * w.shape[0]))
    out = []
    for s in range(0, h.shape[0], rows):
        d = naive(h[s : s + rows], w, ht[s : s + rows], wt, kind="jsd", beta=BETA)
        d.backward(g[s : s + rows])
        out.append(d.detach())
    return torch.cat(out), h.grad, w.grad


def run(size: str, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Parent side: every implementation in a fresh process, errors vs float64."""
    n, hs, ht, v = shape(size)
    device = _device()
    dtype = "bf16" if device == "cuda" else "fp32"
    wl = f"JSD N={n:,} H={hs:,}/{ht:,} V={v:,} {dtype} {device} fwd+bwd"
    grads_mb = (n * hs + v * hs) * (2 if device == "cuda" else 4) / 2**20
    out = isolated_rows("distill", wl, impls(size), size, baseline="naive torch",
                        reference=lambda: _reference(size),
                        tol=1e-4 if device == "cpu" else 3e-2, progress=progress)  # fmt: skip
    for r in out:
        if r.impl.startswith("floor"):
            r.note = f"{(8 * hs + 4 * ht) * n * v / 1e12:.2f} TFLOP"
        elif r.impl.startswith("fastalign") and r.peak_mb is not None:
            r.note = f"grads {grads_mb:.0f} MB"
    return out
