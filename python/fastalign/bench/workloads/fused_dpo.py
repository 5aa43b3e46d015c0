"""The ``fused_dpo`` workload: a DPO step from hidden states and the LM head (forward +
backward to hidden and head), each implementation in its own process.

B pairs of T tokens, the first ``prompt`` positions of every row masked (prompt), reference
log-probs given (zeros, so every row computes the same loss; Liger's module takes no
precomputed reference). Rows: the compute floor (three matmul passes over the unmasked tokens:
forward, dX, dW), naive torch (materialized logits; the baseline), TRL's path (its
``ChunkedLogProbFunction`` on the completion tokens + its DPO formula), Liger-Kernel's
``LigerFusedLinearDPOLoss`` (uncompiled) where importable, and fastalign's
``FusedLinearPreferenceLoss``. Error: max normwise relative error of (loss, dhidden, dweight)
against one float64 reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastalign.bench._harness import Row, have
from fastalign.bench._isolated import isolated_rows, matmul_floor
from fastalign.errors import InvalidInputError

# (pairs B, T, prompt, H, V)
SIZES = {
    "tiny": (2, 16, 4, 32, 100),
    "quick": (2, 256, 32, 512, 8000),
    "default": (4, 512, 64, 1024, 32000),
    "full": (8, 1024, 128, 2048, 64000),
}
# on CUDA: the GPU workload of the issue (bf16)
GPU_SIZES = {
    "tiny": (2, 16, 4, 32, 100),
    "quick": (4, 1024, 128, 2048, 32000),
    "default": (8, 2048, 256, 4096, 128256),
    "full": (16, 2048, 256, 4096, 128256),
}
REPEAT = {"tiny": 1, "quick": 2, "default": 1, "full": 3}
BETA = 0.1


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shape(size: str) -> tuple[int, int, int, int, int]:
    return (GPU_SIZES if _device() == "cuda" else SIZES)[size]


def impls() -> list[str]:
    names = ["floor (3 passes, unmasked tokens)", "naive torch"]
    if have("trl"):
        names.append("TRL chunked + DPO")
    if have("liger_kernel"):
        names.append("Liger FusedLinearDPO")
    names.append("fastalign FusedLinearPreferenceLoss")
    return names


def inputs(size: str, dtype=None, device: str | None = None) -> dict[str, Any]:
    import torch

    b, t, prompt, h, v = shape(size)
    device = device or _device()
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    # drawn on the device itself (a CPU draw of a 128k x 4k head takes seconds per process)
    g = torch.Generator(device=device).manual_seed(0)
    kw = {"generator": g, "device": device}
    labels = torch.randint(0, v, (2 * b, t), **kw)
    labels[:, :prompt] = -100
    return {
        "hidden": torch.randn(2 * b, t, h, **kw).to(dtype),
        "weight": (torch.randn(v, h, **kw) * (2.0 / h**0.5)).to(dtype),
        "labels": labels,
        "ref": torch.zeros(2 * b, dtype=dtype, device=device),
    }


def _naive(h, w, labels, ref):
    import torch
    import torch.nn.functional as F

    logits = h @ w.t()
    lp = torch.log_softmax(logits.float(), -1)
    mask = labels != -100
    tok = lp.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * mask
    s = tok.sum(1)
    b = s.shape[0] // 2
    return -F.logsigmoid(BETA * ((s[:b] - ref[:b]) - (s[b:] - ref[b:]))).mean()


def _loss_fn(impl: str, x: dict[str, Any]) -> Callable[[Any, Any], Any]:
    import torch
    import torch.nn.functional as F

    labels, ref = x["labels"], x["ref"]
    b = labels.shape[0] // 2
    if impl == "naive torch":
        return lambda h, w: _naive(h, w, labels, ref)
    if impl == "TRL chunked + DPO":
        from trl.kernels import ChunkedLogProbFunction

        mask = labels != -100

        def trl(h, w):
            lp = ChunkedLogProbFunction.apply(
                h[mask], w, None, labels[mask], 1.0, 32768, None, 1.0, ()
            )[0]
            per_tok = torch.zeros(mask.shape, dtype=lp.dtype, device=lp.device)
            per_tok = per_tok.masked_scatter(mask, lp)
            s = per_tok.sum(1)
            return -F.logsigmoid(BETA * ((s[:b] - ref[:b]) - (s[b:] - ref[b:]))).mean()

        return trl
    if impl == "Liger FusedLinearDPO":
        from liger_kernel.chunked_loss import LigerFusedLinearDPOLoss

        mod = LigerFusedLinearDPOLoss(beta=BETA, compiled=False, use_ref_model=False)
        return lambda h, w: mod(w, h, labels)[0]
    if impl == "fastalign FusedLinearPreferenceLoss":
        from fastalign.losses import FusedLinearPreferenceLoss

        mod = FusedLinearPreferenceLoss("sigmoid", beta=BETA)
        return lambda h, w: mod(h, w, labels, ref[:b], ref[b:]).loss
    raise InvalidInputError(f"unknown implementation {impl!r}")


def run_impl(op: str, impl: str, size: str, measure: Callable[..., dict[str, Any]]):
    import torch

    x = inputs(size)
    device = _device()
    if impl.startswith("floor"):
        mask = x["labels"].reshape(-1) != -100
        h = x["hidden"].reshape(-1, x["hidden"].shape[-1])[mask]
        step = matmul_floor(h, x["weight"], logits_passes=1)  # forward, dX, dW
        return measure(step, REPEAT[size], device)
    fn = _loss_fn(impl, x)

    def step():
        h = x["hidden"].detach().requires_grad_(True)
        w = x["weight"].detach().requires_grad_(True)
        loss = fn(h, w)
        dh, dw = torch.autograd.grad(loss, [h, w])
        return loss.detach().float().reshape(1), dh, dw

    return measure(step, REPEAT[size], device)


def _reference(size: str):
    """float64 loss and gradients on the benchmark's own (rounded) inputs, on their device.

    Two passes over chunks of rows so that no ``[2B, T, V]`` float64 logits tensor exists:
    the per-sequence sums first (no graph), then each chunk again with autograd, its sums'
    upstream gradient taken from the loss of the first pass."""
    import torch
    import torch.nn.functional as F

    x = inputs(size)
    h = x["hidden"].double().requires_grad_(True)
    w = x["weight"].double().requires_grad_(True)
    labels = x["labels"]
    budget = 2**31 if h.is_cuda else 2**28  # bytes of float64 logits per chunk
    rows = max(1, budget // (8 * h.shape[1] * w.shape[0]))

    def sums(lo: int, hi: int):
        lp = torch.log_softmax(h[lo:hi] @ w.t(), -1)
        y = labels[lo:hi]
        return (lp.gather(-1, y.clamp(min=0)[..., None])[..., 0] * (y != -100)).sum(1)

    n = h.shape[0]
    with torch.no_grad():
        s = torch.cat([sums(lo, min(lo + rows, n)) for lo in range(0, n, rows)])
    s = s.requires_grad_(True)
    b = n // 2
    loss = -F.logsigmoid(BETA * (s[:b] - s[b:])).mean()
    (ds,) = torch.autograd.grad(loss, s)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        sums(lo, hi).backward(ds[lo:hi])
    return loss.detach().reshape(1), h.grad, w.grad


def run(size: str, progress: Callable[[str], None] | None = None) -> list[Row]:
    b, t, prompt, h, v = shape(size)
    device = _device()
    dtype = "bf16" if device == "cuda" else "fp32"
    wl = f"B={b} pairs T={t} (prompt {prompt}) H={h:,} V={v:,} {dtype} {device}"
    out = isolated_rows(
        "fused_dpo",
        wl,
        impls(),
        size,
        baseline="naive torch",
        reference=lambda: _reference(size),
        tol=1e-4 if device == "cpu" else 3e-2,
        progress=progress,
    )
    grads_mb = (2 * b * t * h + v * h) * (2 if device == "cuda" else 4) / 2**20
    for r in out:
        if r.impl.startswith("fastalign") and r.peak_mb is not None:
            r.note = f"grads {grads_mb:.0f} MB"
    return out
