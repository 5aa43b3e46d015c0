"""Listwise and game-theoretic objectives: PRO, INPO, MNPO, Nash-MD, CoPG, P3O, J-BOND, and
the directional reward of DPA. Definitions: ``shared/spec/LOSSES.md``.

Sequence log-probs are summed over response tokens unless a name says otherwise.
"""

from __future__ import annotations

import math

import torch

from fastalign._validate import (
    check_batch,
    check_float_tensor,
    check_pairs,
    check_positive,
    check_range,
    check_tensor,
)
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses._common import LossOutput, loss_output

__all__ = ["copg", "dpa_reward", "ema_update_", "inpo", "jbond", "mnpo", "nash_md", "p3o", "pro"]


def _square_loss(x: torch.Tensor, metrics: dict[str, torch.Tensor]) -> LossOutput:
    losses = x**2
    return loss_output(losses.mean(), losses, metrics)


def inpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    prev_chosen_logps: torch.Tensor,
    prev_rejected_logps: torch.Tensor,
    *,
    eta: float = 0.0075,
    tau: float | None = None,
) -> LossOutput:
    """INPO (iterative Nash policy optimization):
    ``(d_theta - (tau/eta) d_ref - ((eta - tau)/eta) d_prev - 1/(2 eta))^2`` with
    ``d = log pi(w) - log pi(l)`` under the policy, the reference and the previous iterate;
    ``tau`` defaults to ``eta / 3``."""
    check_pairs(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        prev_chosen_logps=prev_chosen_logps,
        prev_rejected_logps=prev_rejected_logps,
    )
    eta = check_positive(eta, "eta")
    tau = eta / 3 if tau is None else float(tau)
    if not 0 <= tau <= eta:
        raise InvalidInputError(f"tau must be in [0, eta], got {tau}")
    d = policy_chosen_logps - policy_rejected_logps
    d_ref = ref_chosen_logps - ref_rejected_logps
    d_prev = prev_chosen_logps - prev_rejected_logps
    x = d - (tau / eta) * d_ref - ((eta - tau) / eta) * d_prev - 1 / (2 * eta)
    return _square_loss(x, {"margin": d.detach().mean()})


def mnpo(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    hist_chosen_logps: torch.Tensor,
    hist_rejected_logps: torch.Tensor,
    *,
    eta: float = 0.0075,
    r: float = 1 / 3,
    weights: torch.Tensor | None = None,
) -> LossOutput:
    """MNPO (multiplayer Nash): ``(d_theta - r d_ref - (1 - r) sum_j lam_j d_hist_j -
    1/(2 eta))^2`` with ``J`` past iterates ``hist_*_logps [B, J]`` and weights ``lam``
    (uniform by default, must sum to 1)."""
    b, _, _ = check_pairs(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    if hist_chosen_logps.ndim != 2 or hist_chosen_logps.shape[0] != b:
        raise ShapeError(f"hist_chosen_logps must be [{b}, J], got {list(hist_chosen_logps.shape)}")
    check_tensor(
        hist_rejected_logps,
        "hist_rejected_logps",
        hist_chosen_logps.shape,
        like="hist_chosen_logps",
    )
    j = hist_chosen_logps.shape[1]
    if j == 0:
        raise InvalidInputError("mnpo needs at least one past iterate (J >= 1)")
    lam = (
        torch.full(
            (j,), 1.0 / j, dtype=policy_chosen_logps.dtype, device=policy_chosen_logps.device
        )
        if weights is None
        else weights
    )
    if lam.shape != (j,) or abs(float(lam.sum()) - 1.0) > 1e-6 or bool((lam < 0).any()):
        raise InvalidInputError("weights must be [J], non-negative, summing to 1")
    eta = check_positive(eta, "eta")
    r = check_range(r, "r", 0.0, 1.0, hi_open=False)
    d = policy_chosen_logps - policy_rejected_logps
    d_ref = ref_chosen_logps - ref_rejected_logps
    d_hist = (hist_chosen_logps - hist_rejected_logps) @ lam.to(hist_chosen_logps.dtype)
    x = d - r * d_ref - (1 - r) * d_hist - 1 / (2 * eta)
    return _square_loss(x, {"margin": d.detach().mean()})


def nash_md(
    per_token_logps: torch.Tensor,
    ref_per_token_logps: torch.Tensor,
    mask: torch.Tensor,
    probability: torch.Tensor,
    *,
    beta: float = 0.1,
) -> LossOutput:
    """Nash-MD (TRL's loss): per sequence
    ``beta * sum_t sg(lp - lp_ref) * lp - (P - 0.5) * sum_t lp`` over the completion mask,
    where ``P = sigma(r(y) - r(y'))`` is the probability that the policy's sample beats the
    mixture's (``probability [B]``). Metrics: ``kl`` (mean summed log-ratio)."""
    check_tensor(
        ref_per_token_logps, "ref_per_token_logps", per_token_logps.shape, like="per_token_logps"
    )
    check_tensor(mask, "mask", per_token_logps.shape, like="per_token_logps")
    if probability.shape != per_token_logps.shape[:1]:
        raise ShapeError(f"probability must be [{per_token_logps.shape[0]}]")
    if not bool(((probability >= 0) & (probability <= 1)).all()):
        raise InvalidInputError("probability must hold probabilities in [0, 1] (no NaN)")
    beta = check_range(beta, "beta", 0.0, math.inf)
    m = mask.to(per_token_logps.dtype)
    log_ratio = (per_token_logps - ref_per_token_logps).detach()
    kl_term = (log_ratio * per_token_logps * m).sum(1)
    score = (per_token_logps * m).sum(1)
    losses = beta * kl_term - (probability.to(score.dtype) - 0.5) * score
    metrics = {"kl": (log_ratio * m).sum(1).mean(), "probability": probability.detach().mean()}
    return loss_output(losses.mean(), losses, metrics)


def copg(
    rewards: torch.Tensor,
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    *,
    beta: float = 0.1,
) -> LossOutput:
    """CoPG (contrastive policy gradient) over ``k >= 2`` samples per prompt (``[B, k]``):
    ``1/(k-1) sum_{i>j} (R_b(y_i) - R_b(y_j))^2`` with ``R_b = R - beta * (s - s_ref)``
    (for k = 2, ``(R_b(y) - R_b(y'))^2``). With preference rewards ``+-1/2`` this is
    ``beta^2`` times IPO at ``tau = beta / 2``."""
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ShapeError(f"rewards must be [B, k] with k >= 2, got {list(rewards.shape)}")
    check_tensor(policy_logps, "policy_logps", rewards.shape, like="rewards")
    check_tensor(ref_logps, "ref_logps", rewards.shape, like="rewards")
    beta = check_positive(beta, "beta")
    k = rewards.shape[1]
    rb = rewards.to(policy_logps.dtype) - beta * (policy_logps - ref_logps)
    diff = rb[:, :, None] - rb[:, None, :]  # [B, k, k]; i > j pairs are the lower triangle
    lower = torch.tril(torch.ones(k, k, dtype=torch.bool, device=rb.device), diagonal=-1)
    losses = (diff**2)[:, lower].sum(1) / (k - 1)
    return loss_output(losses.mean(), losses, {})


def p3o(
    logps_1: torch.Tensor,
    logps_2: torch.Tensor,
    old_logps_1: torch.Tensor,
    old_logps_2: torch.Tensor,
    rewards_1: torch.Tensor,
    rewards_2: torch.Tensor,
    *,
    epsilon: float = 0.2,
    clip: str = "separate",
) -> LossOutput:
    """P3O (pairwise proximal policy optimization) with ``D = (r1 - r2) / 2``,
    ``u_k = pi(y_k) / pi_old(y_k)``:

    - ``clip="separate"`` (the paper's V1): ``-[min(u1 D, clip(u1) D) + min(u2 (-D),
      clip(u2) (-D))]``;
    - ``clip="joint"`` (V2): ``-min(uJ D, clip(uJ) D)``, ``uJ = u1 / u2``;

    with ``clip(u) = clamp(u, 1 - epsilon, 1 + epsilon)``."""
    check_batch(
        logps_1=logps_1,
        logps_2=logps_2,
        old_logps_1=old_logps_1,
        old_logps_2=old_logps_2,
        rewards_1=rewards_1,
        rewards_2=rewards_2,
    )
    eps = check_positive(epsilon, "epsilon")
    d = (rewards_1 - rewards_2) / 2
    lo, hi = 1 - eps, 1 + eps
    if clip == "separate":
        u1 = torch.exp(logps_1 - old_logps_1)
        u2 = torch.exp(logps_2 - old_logps_2)
        losses = -(
            torch.min(u1 * d, u1.clamp(lo, hi) * d) + torch.min(u2 * -d, u2.clamp(lo, hi) * -d)
        )
        ratio = torch.cat([u1, u2])
    elif clip == "joint":
        uj = torch.exp((logps_1 - old_logps_1) - (logps_2 - old_logps_2))
        losses = -torch.min(uj * d, uj.clamp(lo, hi) * d)
        ratio = uj
    else:
        raise InvalidInputError(f"clip must be 'separate' or 'joint', got {clip!r}")
    with torch.no_grad():
        clipped = ((ratio < lo) | (ratio > hi)).to(ratio.dtype).mean()
    return loss_output(
        losses.mean(), losses, {"clip_fraction": clipped, "ratio/mean": ratio.detach().mean()}
    )


def pro(
    logps: torch.Tensor,
    lengths: torch.Tensor,
    rewards: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    eps: float = 1e-10,
    sft_weight: float | None = None,
) -> LossOutput:
    """PRO (preference ranking optimization), listwise Plackett-Luce with reward-scaled
    temperatures, over ``n`` responses per prompt (``[B, n]``; ragged lists via ``mask``).

    With responses ordered best first by reward, ``f = sbar`` (per-token mean log-prob),
    ``T_ki = r_k - r_i`` and ``T_kk = max_{i>k} (r_k - r_i)``, the loss of a prompt is
    ``sum_{k<n} [log(eps + exp(f_k T_kk) + sum_{i>k} exp(f_i T_ki)) - f_k T_kk]`` plus the
    SFT term ``sft_weight * (-s(top))`` with ``sft_weight = 0.05 (n - 1)^2`` by default (n:
    that prompt's number of responses). Responses need not be given in order: they are sorted
    by reward here (stably).
    """
    if logps.ndim != 2:
        raise ShapeError(f"logps must be [B, n], got {list(logps.shape)}")
    check_tensor(rewards, "rewards", logps.shape, like="logps")
    check_tensor(lengths, "lengths", logps.shape, like="logps")
    valid = torch.ones_like(logps, dtype=torch.bool) if mask is None else mask.bool()
    check_tensor(valid, "mask", logps.shape, like="logps")
    if bool((valid.sum(1) < 2).any()):
        raise InvalidInputError("pro needs at least two valid responses per prompt")
    dtype = logps.dtype
    key = torch.where(valid, rewards.to(dtype), torch.full_like(logps, -math.inf))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    s = logps.gather(1, order)
    r = rewards.to(dtype).gather(1, order)
    v = valid.gather(1, order)
    f = s / lengths.to(dtype).gather(1, order).clamp(min=1.0)
    n = logps.shape[1]
    t_ki = r[:, :, None] - r[:, None, :]  # [B, k, i]
    later = torch.triu(torch.ones(n, n, dtype=torch.bool, device=logps.device), diagonal=1)
    pair_ok = later & v[:, :, None] & v[:, None, :]  # i > k, both valid
    t_kk = torch.where(pair_ok, t_ki, torch.full_like(t_ki, -math.inf)).amax(2)  # [B, k]
    row_ok = pair_ok.any(2)  # k has a valid later response
    t_kk = torch.where(row_ok, t_kk, torch.zeros_like(t_kk))
    own = f * t_kk  # f_k T_kk
    others = torch.where(pair_ok, f[:, None, :] * t_ki, torch.full_like(t_ki, -math.inf))
    log_eps = torch.full_like(own, math.log(eps))
    terms = (
        torch.logsumexp(torch.cat([log_eps[:, :, None], own[:, :, None], others], dim=2), dim=2)
        - own
    )
    rank_loss = torch.where(row_ok, terms, torch.zeros_like(terms)).sum(1)
    count = v.sum(1).to(dtype)
    weight = 0.05 * (count - 1) ** 2 if sft_weight is None else torch.full_like(count, sft_weight)
    sft = -s[:, 0]
    losses = rank_loss + weight * sft
    return loss_output(
        losses.mean(),
        losses,
        {"rank_loss": rank_loss.detach().mean(), "sft_loss": sft.detach().mean()},
    )


def jbond(
    policy_logps: torch.Tensor,
    anchor_logps: torch.Tensor,
    rewards: torch.Tensor,
    anchor_rewards: torch.Tensor,
    best_anchor_policy_logps: torch.Tensor,
    *,
    b: float = 0.5,
) -> LossOutput:
    """J-BOND: ``(1 - b) * (-s_theta(y'_best)) + b * (-(R - B) * s_theta(y))``.

    ``policy_logps [P, m]``: ``s_theta(y)`` of ``m`` policy samples per prompt;
    ``anchor_logps [P, m]``: ``s_anchor(y)`` of the same samples; ``rewards [P, m]``;
    ``anchor_rewards [P, 2]``: rewards of two anchor samples ``y'_1, y'_2``;
    ``best_anchor_policy_logps [P]``: ``s_theta`` of the better anchor sample.
    ``R = (-log 16 if r(y) < min(r(y'_1), r(y'_2)) else 0) - (s_theta(y) - s_anchor(y))``
    (detached) and ``B`` is the mean ``R`` of the prompt's other samples (leave-one-out; 0
    when ``m = 1``). The optional KL term of the paper is not included.
    """
    if policy_logps.ndim != 2:
        raise ShapeError(f"policy_logps must be [P, m], got {list(policy_logps.shape)}")
    check_tensor(anchor_logps, "anchor_logps", policy_logps.shape, like="policy_logps")
    check_tensor(rewards, "rewards", policy_logps.shape, like="policy_logps")
    p, m = policy_logps.shape
    if anchor_rewards.shape != (p, 2):
        raise ShapeError(f"anchor_rewards must be [{p}, 2], got {list(anchor_rewards.shape)}")
    if best_anchor_policy_logps.shape != (p,):
        raise ShapeError(f"best_anchor_policy_logps must be [{p}]")
    b = check_range(b, "b", 0.0, 1.0, hi_open=False)
    with torch.no_grad():
        worse = rewards < anchor_rewards.min(dim=1, keepdim=True).values
        big_r = torch.where(worse, -math.log(16), 0.0).to(policy_logps.dtype) - (
            policy_logps - anchor_logps
        )
        baseline = (
            (big_r.sum(1, keepdim=True) - big_r) / (m - 1) if m > 1 else torch.zeros_like(big_r)
        )
        adv = big_r - baseline
    pg = -(adv * policy_logps).mean(1)
    losses = (1 - b) * (-best_anchor_policy_logps) + b * pg
    return loss_output(
        losses.mean(),
        losses,
        {"advantage/mean": adv.mean(), "reward_below_anchor": worse.float().mean()},
    )


@torch.no_grad()
def ema_update_(anchor: torch.nn.Module, policy: torch.nn.Module, eta: float = 0.02) -> None:
    """J-BOND's anchor update, in place: ``theta_a <- (1 - eta) theta_a + eta theta`` for
    every parameter (the modules must have the same parameter names and shapes)."""
    if not 0 < eta <= 1:
        raise InvalidInputError(f"eta must be in (0, 1], got {eta}")
    params = dict(policy.named_parameters())
    for name, a in anchor.named_parameters():
        if name not in params or params[name].shape != a.shape:
            raise ShapeError(f"parameter {name!r} missing or shaped differently in the policy")
        a.lerp_(params[name].to(a.dtype), eta)


def dpa_reward(rewards: torch.Tensor, direction: torch.Tensor, *, atol: float = 1e-6):
    """DPA's directional reward ``r_v = v . r`` for multi-objective rewards ``[..., n]`` and a
    unit direction ``v [n]`` (``||v|| = 1`` is checked)."""
    check_float_tensor(rewards, "rewards")
    check_float_tensor(direction, "direction")
    atol = check_range(atol, "atol", 0.0, math.inf)
    if direction.ndim != 1 or rewards.shape[-1:] != direction.shape:
        raise ShapeError(f"direction must be [{rewards.shape[-1]}], got {list(direction.shape)}")
    if not bool(torch.isfinite(direction).all()):
        raise InvalidInputError("direction must be finite")
    norm = float(torch.linalg.vector_norm(direction.double()))
    if abs(norm - 1.0) > atol:
        raise InvalidInputError(f"direction must be a unit vector, its norm is {norm:.6g}")
    return rewards @ direction.to(rewards.dtype)
