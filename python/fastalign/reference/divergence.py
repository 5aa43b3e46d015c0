"""Reference two-head divergences: both models' ``[N, V]`` logits materialized, transformed,
log-softmaxed, and the divergence summed over the vocabulary (the definitions of
:func:`fastalign.token_divergence`; TRL's ``generalized_jsd_loss`` for ``kind="jsd"``)."""

from __future__ import annotations

import math

import torch


def logits(hidden, weight, bias, logit_scale, softcap, temperature, compute):
    """``softcap * tanh(((h W^T + b) * logit_scale) / softcap) / temperature``."""
    z = hidden.to(compute) @ weight.to(compute).t()
    if bias is not None:
        z = z + bias.to(compute)
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    return z / temperature


def divergence(log_p: torch.Tensor, log_q: torch.Tensor, kind: str, beta: float) -> torch.Tensor:
    """Per-row divergence between the student's ``log_p`` and the teacher's ``log_q``."""
    p, q = log_p.exp(), log_q.exp()
    if kind == "forward_kl" or (kind == "jsd" and beta == 0.0):
        return (q * (log_q - log_p)).sum(-1)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1.0):
        return (p * (log_p - log_q)).sum(-1)
    if kind == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    log_m = torch.logaddexp(log_p + math.log1p(-beta), log_q + math.log(beta))
    return beta * (q * (log_q - log_m)).sum(-1) + (1 - beta) * (p * (log_p - log_m)).sum(-1)


def token_divergence(
    student_hidden,
    student_weight,
    teacher_hidden,
    teacher_weight,
    *,
    kind="jsd",
    beta=0.5,
    temperature=1.0,
    student_bias=None,
    teacher_bias=None,
    student_logit_scale=1.0,
    teacher_logit_scale=1.0,
    student_softcap=None,
    teacher_softcap=None,
    mask=None,
    return_entropy=False,
):
    """The materialized computation (float32, or float64 for a float64 student); the teacher
    detached; 0 where ``mask`` is 0."""
    compute = torch.float64 if student_hidden.dtype == torch.float64 else torch.float32
    zs = logits(student_hidden, student_weight, student_bias, student_logit_scale,
                student_softcap, temperature, compute)  # fmt: skip
    with torch.no_grad():
        zt = logits(teacher_hidden, teacher_weight, teacher_bias, teacher_logit_scale,
                    teacher_softcap, temperature, compute)  # fmt: skip
    log_p, log_q = torch.log_softmax(zs, -1), torch.log_softmax(zt, -1)
    div = divergence(log_p, log_q, kind, beta)
    ent = -(log_p.exp() * log_p).sum(-1).detach()
    if mask is not None:
        keep = mask.to(torch.bool)
        div = torch.where(keep, div, 0.0)
        ent = torch.where(keep, ent, 0.0)
    return (div, ent) if return_entropy else div
