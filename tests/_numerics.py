"""Comparison helpers for numeric tests: errors are measured against a float64 reference."""

from __future__ import annotations

import torch


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Normwise relative error ``max|got - ref| / max|ref|`` (computed in float64)."""
    got64, ref64 = got.detach().double().cpu(), ref.detach().double().cpu()
    assert got64.shape == ref64.shape, (got64.shape, ref64.shape)
    if got64.numel() == 0:
        return 0.0
    scale = ref64.abs().max().item()
    diff = (got64 - ref64).abs().max().item()
    if scale == 0.0:
        return diff
    return diff / scale


def assert_rel(got: torch.Tensor, ref: torch.Tensor, tol: float, what: str = "") -> None:
    err = rel_err(got, ref)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"
