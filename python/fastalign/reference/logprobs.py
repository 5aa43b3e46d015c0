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
    z = logits.to(compute)
    logp = torch.log_softmax(z if temperature == 1.0 else z / temperature, dim=-1)
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, picked, torch.zeros_like(picked))


def token_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    ignore_index: int = -100,
    return_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Materialized ``[N, V]`` logits -> transform -> log_softmax -> gather (and entropy).

    The transform, in order: ``z = (h W^T + b) * logit_scale``; ``z = softcap *
    tanh(z / softcap)`` if softcap; ``z = z / temperature``.
    """
    compute = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    z = hidden.to(compute) @ weight.to(compute).t()
    if bias is not None:
        z = z + bias.to(compute)
    if logit_scale != 1.0:
        z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if temperature != 1.0:
        z = z / temperature
    mask = labels != ignore_index
    safe = torch.where(mask, labels, torch.zeros_like(labels))
    logp_all = torch.log_softmax(z, dim=-1)
    logp = logp_all.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    logp = torch.where(mask, logp, torch.zeros_like(logp))
    if not return_entropy:
        return logp
    ent = -(logp_all.exp() * logp_all).sum(-1)
    return logp, torch.where(mask, ent, torch.zeros_like(ent))
