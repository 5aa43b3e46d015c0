"""Reference log-probs: materialize the logits, log-softmax, gather."""

from __future__ import annotations

import torch


def logps_from_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 1.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """``log_softmax(logits / temperature)[label]``; 0 where ``label == ignore_index``.

    Computes in float32 (float64 for float64 logits) on the whole ``[..., V]`` tensor.
    """
    compute = torch.float64 if logits.dtype == torch.float64 else torch.float32
    mask = labels != ignore_index
    safe = torch.where(mask, labels, torch.zeros_like(labels))
    logp = torch.log_softmax(logits.to(compute) / temperature, dim=-1)
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, picked, torch.zeros_like(picked))
