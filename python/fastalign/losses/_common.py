"""Shared pieces of the loss functions: the result type and TRL's pairwise metrics (argument
checks are :mod:`fastalign._validate`'s)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LossOutput(NamedTuple):
    """``loss``: the scalar to backpropagate (batch mean of ``losses`` unless stated);
    ``losses``: per-example losses; ``metrics``: detached scalars named as TRL logs them."""

    loss: torch.Tensor
    losses: torch.Tensor
    metrics: dict[str, torch.Tensor]


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
