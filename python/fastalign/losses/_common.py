"""Shared pieces of the loss functions: the result type and TRL's pairwise metrics (argument
checks are :mod:`fastalign._validate`'s)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LossOutput(NamedTuple):
    """``loss``: the scalar to backpropagate (batch mean of ``losses`` unless stated);
    ``losses``: per-example losses; ``metrics``: detached scalars named as TRL logs them.

    An empty batch (no examples) is not an error: ``loss`` is 0 and still depends on the
    inputs (``backward`` runs and every gradient is 0, so a data-parallel rank whose batch
    came out empty keeps in step with the others), ``losses`` is empty and the metrics are
    NaN (means of nothing)."""

    loss: torch.Tensor
    losses: torch.Tensor
    metrics: dict[str, torch.Tensor]


def loss_output(
    loss: torch.Tensor, losses: torch.Tensor, metrics: dict[str, torch.Tensor]
) -> LossOutput:
    """A :class:`LossOutput`, with the empty-batch rule applied: the mean (or any 0 / 0
    aggregation) of no examples becomes a 0 that keeps its graph."""
    if losses.shape[0] == 0:
        loss = torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0)
    return LossOutput(loss, losses, metrics)


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
