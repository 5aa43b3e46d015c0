"""Comparison helpers for numeric tests: errors are measured against a float64 reference.

The accuracy contract (shared/spec/LOGPROBS.md): in fp32, the normwise relative error
``max|got - ref| / max|ref|`` against float64 is at most ``tol`` (1e-5 for log-probs, 1e-4
for gradients). Where the problem itself is ill-conditioned in fp32 — a log-prob near 0
computed as ``z - logsumexp(z)``, a gradient ``g (1 - p)`` with ``p`` near 1 — no fp32
algorithm meets a pure relative bound, so the bound is relaxed to twice the error that
PyTorch's own fp32 path (materialized logits) makes on the same inputs, never more.
"""

from __future__ import annotations

import torch


def max_abs_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got64, ref64 = got.detach().double().cpu(), ref.detach().double().cpu()
    assert got64.shape == ref64.shape, (got64.shape, ref64.shape)
    if got64.numel() == 0:
        return 0.0
    return (got64 - ref64).abs().max().item()


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Normwise relative error ``max|got - ref| / max|ref|`` (computed in float64)."""
    diff = max_abs_err(got, ref)
    if ref.numel() == 0:
        return 0.0
    scale = ref.detach().double().abs().max().item()
    return diff if scale == 0.0 else diff / scale


def assert_rel(got: torch.Tensor, ref: torch.Tensor, tol: float, what: str = "") -> None:
    err = rel_err(got, ref)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"


def assert_fp32_contract(
    got: torch.Tensor, ref64: torch.Tensor, native32: torch.Tensor, tol: float, what: str = ""
) -> None:
    """``got`` is within ``tol`` (normwise relative) of the float64 reference, or, where fp32
    cannot reach that, within 2x the error of PyTorch's own fp32 path ``native32``."""
    err = max_abs_err(got, ref64)
    scale = ref64.detach().double().abs().max().item() if ref64.numel() else 0.0
    bound = max(tol * scale, 2.0 * max_abs_err(native32, ref64))
    assert err <= bound, (
        f"{what}: max abs error {err:.3e} > bound {bound:.3e} "
        f"(tol {tol:.0e} x scale {scale:.3e}; 2x native fp32 error "
        f"{2.0 * max_abs_err(native32, ref64):.3e})"
    )
