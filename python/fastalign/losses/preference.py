"""Pairwise preference losses with a reference model: the DPO family.

Every loss is a function of per-sequence log-probs (summed over the response tokens) of the
policy and the reference model on the chosen (w) and rejected (l) responses. With
``rho = s_theta - s_ref`` and the f-divergence score ``f(rho)`` (``rho`` itself for the
default reverse KL), ``h = f(rho_w) - f(rho_l)``. Definitions follow TRL's DPOTrainer
numerically (``shared/spec/LOSSES.md``); the tests check float64 parity with TRL's own code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastalign._validate import (
    check_finite,
    check_lengths,
    check_pairs,
    check_positive,
    check_range,
)
from fastalign.errors import InvalidInputError
from fastalign.losses._common import LossOutput, loss_output, pair_metrics

__all__ = ["F_DIVERGENCES", "PREFERENCE_LOSS_TYPES", "preference_loss"]

PREFERENCE_LOSS_TYPES = (
    "sigmoid",
    "cdpo",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
    "sft",
)
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
_NEEDS_LENGTHS = {"ipo": "ipo (normalize='mean')", "sigmoid_norm": "sigmoid_norm", "sft": "sft"}
# TRL clamps the alpha-divergence exponent so exp() stays finite in the input dtype
_ALPHA_CLAMP = {
    torch.float16: 11.0,
    torch.bfloat16: 80.0,
    torch.float32: 80.0,
    torch.float64: 700.0,
}


def f_divergence_scores(rho: torch.Tensor, f_divergence: str, f_alpha: float) -> torch.Tensor:
    """The score ``f'(exp(rho))`` that replaces the log-ratio ``rho`` under an f-divergence."""
    if f_divergence == "reverse_kl":
        return rho
    if f_divergence == "forward_kl":  # f'(t) = 1 - 1/t
        return -torch.expm1(-rho)
    if f_divergence == "js_divergence":  # f'(t) = log(2t / (t + 1))
        return math.log(2) + F.logsigmoid(rho)
    if f_divergence == "alpha_divergence":  # f'(t) = (t^(a-1) - 1) / (a - 1)
        if abs(f_alpha - 1.0) < 1e-6:
            return rho
        t = torch.clamp(
            ((f_alpha - 1.0) * rho).float()
            if rho.dtype != torch.float64
            else (f_alpha - 1.0) * rho,
            max=_ALPHA_CLAMP[rho.dtype],
        )
        return torch.expm1(t).to(rho.dtype) / (f_alpha - 1.0)
    raise InvalidInputError(f"f_divergence must be one of {F_DIVERGENCES}, got {f_divergence!r}")


def _smoothed_sigmoid(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(1 - eps) * -logsig(x) + eps * -logsig(-x)`` (cDPO / AOT label smoothing)."""
    out = -F.logsigmoid(x)
    if eps:
        out = out * (1 - eps) - F.logsigmoid(-x) * eps
    return out


def _per_token_mean(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return scores / lengths.to(scores.dtype).clamp(min=1.0)


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    loss_type: str | Sequence[str] = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    f_divergence: str = "reverse_kl",
    f_alpha: float = 0.5,
    discopop_tau: float = 0.05,
    loss_weights: Sequence[float] | None = None,
    normalize: str = "mean",
) -> LossOutput:
    """DPO-family loss on per-sequence log-probs.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``[B]`` summed log-probs of the chosen /
            rejected responses under the policy (differentiable).
        ref_chosen_logps, ref_rejected_logps: ``[B]`` the same under the reference model.
        loss_type: one of :data:`PREFERENCE_LOSS_TYPES`, or a sequence of them combined with
            ``loss_weights`` (as TRL's ``loss_type=[...]``): ``losses = sum_k w_k * losses_k``.
        beta: inverse temperature / regularization strength, > 0.
        label_smoothing: ``eps``: the smoothing of ``cdpo`` (conservative DPO:
            ``(1 - eps) * -logsig(beta h) + eps * -logsig(-beta h)``), the flip rate of
            ``robust`` (in [0, 0.5)), the smoothing of ``aot*`` and the ``eps`` of
            ``exo_pair`` (> 0 there). ``sigmoid`` ignores it, as TRL 1.x's DPOTrainer does
            (TRL 0.x applied cDPO smoothing to ``sigmoid``: use ``cdpo`` for that).
        chosen_lengths, rejected_lengths: ``[B]`` response token counts; needed by ``ipo``
            (``normalize="mean"``), ``sigmoid_norm`` and ``sft``.
        f_divergence: ``reverse_kl`` (DPO), ``forward_kl``, ``js_divergence`` or
            ``alpha_divergence`` (with ``f_alpha``): replaces ``rho`` by its f-score.
        discopop_tau: temperature of DiscoPOP's mixing.
        loss_weights: weights of the loss types (default 1 each).
        normalize: IPO's log-ratio normalization: ``"mean"`` divides each side by its token
            count (TRL's form), ``"sum"`` uses the summed log-ratios (original-repo form).

    Returns:
        :class:`LossOutput` with ``losses`` ``[B]``, ``loss = losses.mean()`` and the metrics
        ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``, ``rewards/margins``
        (rewards are ``beta * rho``, detached), ``logps/chosen``, ``logps/rejected``.

    Example:
        >>> import torch
        >>> from fastalign.losses import preference_loss
        >>> out = preference_loss(torch.tensor([-5.0]), torch.tensor([-9.0]),
        ...                       torch.tensor([-6.0]), torch.tensor([-8.0]), beta=0.5)
        >>> round(out.loss.item(), 4)  # -logsigmoid(0.5 * ((-5 + 6) - (-9 + 8)))
        0.3133
    """
    batch, _, _ = check_pairs(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    if not types:
        raise InvalidInputError("loss_type must name at least one loss")
    for t in types:
        if not isinstance(t, str) or t not in PREFERENCE_LOSS_TYPES:
            raise InvalidInputError(
                f"unknown loss_type {t!r}; expected one of {PREFERENCE_LOSS_TYPES}"
            )
    if loss_weights is None:
        weights = [1.0] * len(types)
    else:
        weights = [float(w) for w in loss_weights]
        if len(weights) != len(types):
            raise InvalidInputError(
                f"loss_weights has {len(weights)} entries for {len(types)} loss types"
            )
    beta = check_positive(beta, "beta")
    eps = check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
    f_alpha = check_finite(f_alpha, "f_alpha")
    if f_divergence not in F_DIVERGENCES:
        raise InvalidInputError(
            f"f_divergence must be one of {F_DIVERGENCES}, got {f_divergence!r}"
        )
    if normalize not in ("mean", "sum"):
        raise InvalidInputError(f"normalize must be 'mean' or 'sum', got {normalize!r}")
    chosen_lengths = check_lengths(chosen_lengths, "chosen_lengths", batch)
    rejected_lengths = check_lengths(rejected_lengths, "rejected_lengths", batch)
    for t in types:
        needs = t in _NEEDS_LENGTHS and not (t == "ipo" and normalize == "sum")
        if needs and (chosen_lengths is None or (t != "sft" and rejected_lengths is None)):
            raise InvalidInputError(
                f"loss_type {_NEEDS_LENGTHS[t]} needs chosen_lengths"
                + ("" if t == "sft" else " and rejected_lengths")
            )
        if t == "exo_pair" and eps <= 0:
            raise InvalidInputError("exo_pair needs label_smoothing (its eps) > 0")
    discopop_tau = check_positive(discopop_tau, "discopop_tau")

    rho_w = policy_chosen_logps - ref_chosen_logps
    rho_l = policy_rejected_logps - ref_rejected_logps
    s_w = f_divergence_scores(rho_w, f_divergence, f_alpha)
    s_l = f_divergence_scores(rho_l, f_divergence, f_alpha)
    delta = s_w - s_l

    total = None
    for t, weight in zip(types, weights, strict=True):
        if t == "sigmoid":  # TRL 1.x: no label smoothing here (see cdpo)
            per = -F.logsigmoid(beta * delta)
        elif t == "cdpo":
            per = _smoothed_sigmoid(beta * delta, eps)
        elif t == "hinge":
            per = torch.relu(1 - beta * delta)
        elif t == "ipo":
            d = (
                delta
                if normalize == "sum"
                else (_per_token_mean(s_w, chosen_lengths) - _per_token_mean(s_l, rejected_lengths))
            )
            per = (d - 1 / (2 * beta)) ** 2
        elif t == "exo_pair":
            x = beta * delta
            per = torch.sigmoid(x) * (F.logsigmoid(x) - math.log1p(-eps)) + torch.sigmoid(-x) * (
                F.logsigmoid(-x) - math.log(eps)
            )
        elif t == "nca_pair":
            cw, cl = beta * rho_w, beta * rho_l
            per = -F.logsigmoid(cw) - 0.5 * F.logsigmoid(-cw) - 0.5 * F.logsigmoid(-cl)
        elif t == "robust":
            x = beta * delta
            per = (-(1 - eps) * F.logsigmoid(x) + eps * F.logsigmoid(-x)) / (1 - 2 * eps)
        elif t == "bco_pair":
            per = -F.logsigmoid(beta * rho_w) - F.logsigmoid(-beta * rho_l)
        elif t == "sppo_hard":
            per = (rho_w - 0.5 / beta) ** 2 + (rho_l + 0.5 / beta) ** 2
        elif t == "aot":
            lr, _ = torch.sort(policy_chosen_logps - policy_rejected_logps, dim=0)
            ref_lr, _ = torch.sort(ref_chosen_logps - ref_rejected_logps, dim=0)
            per = _smoothed_sigmoid(beta * (lr - ref_lr), eps)
        elif t == "aot_unpaired":
            sw, _ = torch.sort(rho_w, dim=0)
            sl, _ = torch.sort(rho_l, dim=0)
            per = _smoothed_sigmoid(beta * (sw - sl), eps)
        elif t == "apo_zero":
            per = (1 - torch.sigmoid(beta * rho_w)) + torch.sigmoid(beta * rho_l)
        elif t == "apo_down":
            per = torch.sigmoid(beta * rho_w) + (1 - torch.sigmoid(beta * (rho_w - rho_l)))
        elif t == "discopop":
            x = beta * delta
            m = torch.sigmoid(x / discopop_tau)
            per = -F.logsigmoid(x) * (1 - m) + torch.exp(-x) * m
        elif t == "sigmoid_norm":
            d = _per_token_mean(s_w, chosen_lengths) - _per_token_mean(s_l, rejected_lengths)
            per = -F.logsigmoid(beta * d)
        else:  # sft: token-mean NLL of the chosen responses, the same value for every pair
            count = chosen_lengths.sum().to(policy_chosen_logps.dtype)
            per = (-policy_chosen_logps.sum() / count).expand(batch)
        per = per * weight if weight != 1.0 else per
        total = per if total is None else total + per
    assert total is not None

    metrics = pair_metrics(beta * rho_w, beta * rho_l, policy_chosen_logps, policy_rejected_logps)
    return loss_output(total.mean(), total, metrics)
