"""Shared pieces of the loss functions: the result type and input validation."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from fastalign.errors import InvalidInputError, ShapeError


class LossOutput(NamedTuple):
    """``loss``: the scalar to backpropagate (batch mean of ``losses`` unless stated);
    ``losses``: per-example losses; ``metrics``: detached scalars named as TRL logs them."""

    loss: torch.Tensor
    losses: torch.Tensor
    metrics: dict[str, torch.Tensor]


def check_batch(**tensors: torch.Tensor | None) -> tuple[int, torch.device, torch.dtype]:
    """All given tensors are floating ``[B]`` tensors with the same B, device and dtype."""
    ref_name, ref = None, None
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.ndim != 1:
            raise ShapeError(f"{name} must be 1-D [B], got shape {tuple(t.shape)}")
        if ref is None:
            ref_name, ref = name, t
            continue
        if t.shape != ref.shape:
            raise ShapeError(
                f"{name} has {t.shape[0]} rows but {ref_name} has {ref.shape[0]}: every "
                "per-example tensor must have the same batch size"
            )
        if t.device != ref.device:
            raise ShapeError(f"{name} is on {t.device} but {ref_name} on {ref.device}")
        if t.dtype != ref.dtype:
            raise TypeError(f"{name} is {t.dtype} but {ref_name} is {ref.dtype}")
    if ref is None:
        raise TypeError("no input tensors")
    return ref.shape[0], ref.device, ref.dtype


def check_positive(value: float, name: str) -> float:
    v = _number(value, name)
    if not (v > 0 and math.isfinite(v)):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_finite(value: float, name: str) -> float:
    v = _number(value, name)
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return v


def check_range(value: float, name: str, lo: float, hi: float, *, hi_open: bool = True) -> float:
    v = _number(value, name)
    ok = lo <= v < hi if hi_open else lo <= v <= hi
    if not ok:
        bracket = ")" if hi_open else "]"
        raise InvalidInputError(f"{name} must be in [{lo}, {hi}{bracket}, got {value!r}")
    return v


def _number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    v = float(value)
    if math.isnan(v):
        raise InvalidInputError(f"{name} must not be NaN")
    return v


def check_lengths(lengths: torch.Tensor | None, name: str, batch: int) -> torch.Tensor | None:
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of token counts, not {type(lengths).__name__}"
        )
    if lengths.shape != (batch,):
        raise ShapeError(f"{name} must be [{batch}], got shape {tuple(lengths.shape)}")
    if bool((lengths < 0).any()):
        raise InvalidInputError(f"{name} must be non-negative token counts")
    return lengths


def pair_metrics(
    reward_chosen: torch.Tensor,
    reward_rejected: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """TRL's pairwise metrics from per-pair rewards (detached here)."""
    with torch.no_grad():
        rw, rl = reward_chosen.detach(), reward_rejected.detach()
        return {
            "rewards/chosen": rw.mean(),
            "rewards/rejected": rl.mean(),
            "rewards/accuracies": (rw > rl).to(rw.dtype).mean(),
            "rewards/margins": (rw - rl).mean(),
            "logps/chosen": chosen_logps.detach().mean(),
            "logps/rejected": rejected_logps.detach().mean(),
        }
