"""Reference-free pairwise losses (SimPO, CPO, ORPO, SLiC) and RPO / MaPPO, which extend DPO.

Inputs are summed per-sequence log-probs ``s`` of the chosen (w) / rejected (l) responses and,
where a loss uses per-token means ``sbar = s / |y|`` or a token-mean NLL, their token counts.
Definitions: ``shared/spec/LOSSES.md``; TRL's CPO / ORPO trainers where they exist (tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fastalign._validate import (
    check_batch,
    check_finite,
    check_lengths,
    check_pairs,
    check_positive,
    check_range,
)
from fastalign.errors import InvalidInputError
from fastalign.losses._common import LossOutput, loss_output, pair_metrics
from fastalign.losses.preference import _smoothed_sigmoid, preference_loss

__all__ = ["cpo", "mappo", "orpo", "rpo", "simpo", "slic"]


def _required_lengths(lengths, name, batch, loss):
    if lengths is None:
        raise InvalidInputError(f"{loss} needs {name} (response token counts)")
    return check_lengths(lengths, name, batch).to(torch.float64)


def _mean(s: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return s / lengths.to(s.dtype).clamp(min=1.0)


def _nll_mean(chosen: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL of the chosen responses over the batch: ``-sum(s_w) / sum(|y_w|)``."""
    return -chosen.sum() / lengths.to(chosen.dtype).sum().clamp(min=1.0)


def simpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    beta: float = 2.0,
    gamma: float = 0.5,
    gamma_beta_ratio: float | None = None,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """SimPO: ``-logsig(beta * (sbar_w - sbar_l) - gamma)`` on per-token mean log-probs.

    ``gamma`` is the absolute margin (TRL's ``simpo_gamma``); pass ``gamma_beta_ratio`` for
    the paper's parametrization ``gamma = gamma_beta_ratio * beta``. ``label_smoothing``
    gives the conservative form. Rewards are ``beta * sbar``.

    Example:
        >>> import torch
        >>> out = simpo(torch.tensor([-4.0]), torch.tensor([-9.0]),
        ...             chosen_lengths=torch.tensor([4]), rejected_lengths=torch.tensor([3]))
        >>> round(out.loss.item(), 4)  # -logsigmoid(2 * (-1 + 3) - 0.5)
        0.0298
    """
    b, _, _ = check_batch(
        policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps
    )
    beta = check_positive(beta, "beta")
    if gamma_beta_ratio is not None:
        gamma = float(gamma_beta_ratio) * beta
    eps = check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
    lw = _required_lengths(chosen_lengths, "chosen_lengths", b, "simpo")
    ll = _required_lengths(rejected_lengths, "rejected_lengths", b, "simpo")
    mw, ml = _mean(policy_chosen_logps, lw), _mean(policy_rejected_logps, ll)
    losses = _smoothed_sigmoid(beta * (mw - ml) - gamma, eps)
    return loss_output(
        losses.mean(),
        losses,
        pair_metrics(beta * mw, beta * ml, policy_chosen_logps, policy_rejected_logps),
    )


def cpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    beta: float = 0.1,
    alpha: float = 1.0,
    label_smoothing: float = 0.0,
    loss_type: str = "sigmoid",
    alphapo: float = 0.0,
) -> LossOutput:
    """CPO: ``-logsig(beta * (r_w - r_l)) + alpha * NLL_mean(w)``, as TRL's CPOTrainer.

    The rewards ``r`` are the summed log-probs ``s``, except for ``loss_type="ipo"``, which
    (as TRL's trainer) uses the per-token means ``s / |y|`` (needs ``chosen_lengths`` and
    ``rejected_lengths``). ``loss_type`` may also be ``"hinge"`` (``relu(1 - beta (r_w -
    r_l))``) or ``"ipo"`` (``((r_w - r_l) - 1 / (2 beta))^2``). ``alphapo`` is AlphaPO's
    reward shape (TRL's ``CPOConfig.alpha``): ``r = (1 - p^-a) / a`` with ``p = exp(r)``;
    0 keeps the log-probs. ``alpha`` is TRL's ``cpo_alpha``: the weight of ``NLL_mean(w)``,
    the token-mean negative log-likelihood of the chosen responses over the batch (from the
    summed log-probs; needs ``chosen_lengths`` when ``alpha != 0``), added to every per-pair
    loss. Metrics as TRL logs them: ``rewards/*`` are ``beta * r``, ``logps/*`` the log-probs
    the loss sees (the means for ``ipo``).
    """
    b, _, _ = check_batch(
        policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps
    )
    beta = check_positive(beta, "beta")
    eps = check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
    alphapo = check_finite(alphapo, "alphapo")
    if loss_type not in ("sigmoid", "hinge", "ipo"):
        raise InvalidInputError(f"loss_type must be 'sigmoid', 'hinge' or 'ipo', got {loss_type!r}")
    lp_w, lp_l = policy_chosen_logps, policy_rejected_logps
    if loss_type == "ipo":  # TRL's CPOTrainer averages the log-probs for ipo (and simpo)
        lw = _required_lengths(chosen_lengths, "chosen_lengths", b, "cpo with loss_type='ipo'")
        ll = _required_lengths(rejected_lengths, "rejected_lengths", b, "cpo with loss_type='ipo'")
        lp_w, lp_l = _mean(lp_w, lw), _mean(lp_l, ll)
    r_w, r_l = lp_w, lp_l
    if alphapo:  # (1 - p^-a) / a = -expm1(-a log p) / a
        r_w, r_l = -torch.expm1(-alphapo * lp_w) / alphapo, -torch.expm1(-alphapo * lp_l) / alphapo
    x = r_w - r_l
    if loss_type == "sigmoid":
        losses = _smoothed_sigmoid(beta * x, eps)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * x)
    else:
        losses = (x - 1 / (2 * beta)) ** 2
    metrics = pair_metrics(beta * r_w, beta * r_l, lp_w, lp_l)
    if alpha:
        lw = _required_lengths(chosen_lengths, "chosen_lengths", b, "cpo with alpha != 0")
        nll = _nll_mean(policy_chosen_logps, lw)
        losses = losses + alpha * nll
        metrics["nll_loss"] = nll.detach()
    return loss_output(losses.mean(), losses, metrics)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, stable on both ends (Maechler's switch at -log 2)."""
    return torch.where(
        x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x))
    )


def orpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    lam: float = 0.1,
    nll_chosen_logps: torch.Tensor | None = None,
    nll_chosen_lengths: torch.Tensor | None = None,
) -> LossOutput:
    """ORPO: ``NLL_mean(w) - lam * logsig(logodds_w - logodds_l)`` with
    ``logodds = sbar - log(1 - exp(sbar))`` on per-token mean log-probs (stable log1mexp).

    ``NLL_mean(w)`` is ``-sum(nll_chosen_logps) / sum(nll_chosen_lengths)``: by default the
    chosen responses' summed log-probs and token counts. TRL's ORPOTrainer takes its NLL over
    the chosen sequences' labels, prompt tokens included: pass those sums and counts (``[B]``
    each, differentiable) to reproduce it exactly.

    Metrics add TRL's ``log_odds_ratio`` (the mean of ``logsig(logodds_w - logodds_l)``) and
    ``log_odds_chosen`` (the mean of ``logodds_w - logodds_l``), named as TRL logs them;
    rewards are ``lam * sbar`` and ``logps/*`` the means ``sbar``, as TRL logs them.
    """
    b, _, _ = check_batch(
        {"nll_chosen_logps": nll_chosen_logps},
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
    )
    lam = check_positive(lam, "lam")
    lw = _required_lengths(chosen_lengths, "chosen_lengths", b, "orpo")
    ll = _required_lengths(rejected_lengths, "rejected_lengths", b, "orpo")
    if (nll_chosen_logps is None) != (nll_chosen_lengths is None):
        raise InvalidInputError("pass nll_chosen_logps and nll_chosen_lengths together")
    mw, ml = _mean(policy_chosen_logps, lw), _mean(policy_rejected_logps, ll)
    if bool((mw >= 0).any()) or bool((ml >= 0).any()):
        raise InvalidInputError("orpo needs mean log-probs < 0 (a probability below 1)")
    log_odds = (mw - ml) - (_log1mexp(mw) - _log1mexp(ml))
    ratio = F.logsigmoid(log_odds)
    if nll_chosen_logps is None:
        nll = _nll_mean(policy_chosen_logps, lw)
    else:
        n_len = _required_lengths(nll_chosen_lengths, "nll_chosen_lengths", b, "orpo")
        nll = _nll_mean(nll_chosen_logps, n_len)
    losses = nll - lam * ratio
    metrics = pair_metrics(lam * mw, lam * ml, mw, ml)  # TRL logs the mean log-probs
    metrics.update(
        nll_loss=nll.detach(),
        log_odds_ratio=ratio.detach().mean(),
        log_odds_chosen=log_odds.detach().mean(),
    )
    return loss_output(losses.mean(), losses, metrics)


def slic(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    delta: float = 1.0,
    lam: float = 0.1,
) -> LossOutput:
    """SLiC-HF: ``relu(delta - s_w + s_l) + lam * (-s_w)`` (rank calibration + chosen NLL)."""
    check_batch(
        policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps
    )
    delta = check_positive(delta, "delta")
    lam = check_range(lam, "lam", 0.0, math.inf)
    losses = torch.relu(delta - policy_chosen_logps + policy_rejected_logps) + lam * (
        -policy_chosen_logps
    )
    metrics = pair_metrics(
        policy_chosen_logps, policy_rejected_logps, policy_chosen_logps, policy_rejected_logps
    )
    return loss_output(losses.mean(), losses, metrics)


def rpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    eta: float = 0.005,
    nll: str = "sum",
    chosen_lengths: torch.Tensor | None = None,
    **preference_options,
) -> LossOutput:
    """RPO: the DPO loss plus ``eta * beta * NLL(w)``.

    ``nll="sum"`` is the official form (summed NLL of each chosen response, per pair);
    ``nll="mean"`` uses the token-mean NLL over the batch (needs ``chosen_lengths``). Other
    options (``loss_type``, ``label_smoothing``...) go to :func:`preference_loss`.
    """
    base = preference_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta=beta,
        chosen_lengths=chosen_lengths,
        **preference_options,
    )
    eta = check_range(eta, "eta", 0.0, math.inf)
    if nll == "sum":
        term = -policy_chosen_logps
    elif nll == "mean":
        b = policy_chosen_logps.shape[0]
        lw = _required_lengths(chosen_lengths, "chosen_lengths", b, "rpo with nll='mean'")
        term = _nll_mean(policy_chosen_logps, lw).expand(b)
    else:
        raise InvalidInputError(f"nll must be 'sum' or 'mean', got {nll!r}")
    losses = base.losses + eta * beta * term
    metrics = dict(base.metrics, nll_loss=term.detach().mean())
    return loss_output(losses.mean(), losses, metrics)


def mappo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    reward_gap: torch.Tensor,
    *,
    beta: float = 0.1,
) -> LossOutput:
    """MaPPO: ``-logsig(beta * rho_w - dr * beta * rho_l)`` with the prior reward gap
    ``dr = r_w - r_l`` in [0, 1] (``dr = 1`` is DPO). ``reward_gap`` is ``[B]``.

    Example:
        >>> import torch
        >>> x = torch.tensor([-3.0, -4.0])
        >>> a = mappo(x, x - 1, x + 0.5, x - 1.5, torch.ones(2)).losses
        >>> b = preference_loss(x, x - 1, x + 0.5, x - 1.5).losses
        >>> torch.equal(a, b)
        True
    """
    check_pairs(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        reward_gap=reward_gap,
    )
    beta = check_positive(beta, "beta")
    if bool(((reward_gap < 0) | (reward_gap > 1)).any()):
        raise InvalidInputError("reward_gap must lie in [0, 1] (normalized prior rewards)")
    rho_w = policy_chosen_logps - ref_chosen_logps
    rho_l = policy_rejected_logps - ref_rejected_logps
    losses = -F.logsigmoid(beta * rho_w - reward_gap * beta * rho_l)
    metrics = pair_metrics(beta * rho_w, beta * rho_l, policy_chosen_logps, policy_rejected_logps)
    return loss_output(losses.mean(), losses, metrics)
