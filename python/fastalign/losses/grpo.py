"""Token-level RL objectives: group-relative advantages and the GRPO family.

``grpo_loss`` computes every policy loss of TRL 1.16's GRPOTrainer (GRPO, BNPO, Dr. GRPO,
DAPO, LUSPO, CISPO, SAPO, VESPO; GSPO's sequence-level ratios; clip-higher and two-sided
clipping; the bias-corrected KL; off-policy sequence masking; high-entropy token selection;
the rollout-engine importance-sampling correction) on per-token log-probs ``[B, T]`` with a
completion mask. The tests run TRL's own ``_compute_loss`` for parity in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fastalign._validate import (
    check_bool,
    check_choice,
    check_finite,
    check_finite_where,
    check_float_tensor,
    check_int,
    check_positive,
    check_range,
    check_tensor,
)
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses._common import LossOutput, loss_output
from fastalign.losses._grpo_terms import masked_stats

__all__ = [
    "GRPO_LOSS_TYPES",
    "group_advantages",
    "grpo_loss",
    "pama_loss",
    "rank_grpo_loss",
    "soft_overlong_penalty",
]

GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected standard deviation ignoring NaNs (NaN when fewer than 2 values)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
    corr = torch.where(count > 1, count / (count - 1), torch.full_like(var, math.nan))
    out = torch.sqrt(var * corr)
    return out if dim is None else out.squeeze(dim)


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    *,
    scale: str = "group",
    eps: float = 1e-4,
    aggregation: str = "sum_then_normalize",
    reward_weights: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    """Group-relative advantages ``A_i = (r_i - mean_g r) / (std_g r + eps)`` (GRPO), with
    TRL 1.16's ``scale_rewards`` and ``multi_objective_aggregation``.

    Args:
        rewards: ``[B]``, or ``[B, K]`` with one column per reward function; ``group_size``
            consecutive completions per prompt (``B % group_size == 0``). NaN marks a reward a
            function could not give; a completion with no reward at all (every column NaN) is
            unscorable: it is left out of its group's mean and std and gets advantage 0. Every
            advantage that comes out NaN is 0, also in a group with a single scored completion
            (its std is undefined): TRL's rule. ``inf`` rewards are an error.
        group_size: completions per prompt (TRL's ``num_generations``).
        scale: ``"group"`` divides by the group's std (GRPO), ``"batch"`` by the batch std,
            ``"none"`` does not divide (Dr. GRPO). Stds are Bessel-corrected, NaN-aware.
        eps: added to the std.
        aggregation: with ``K`` columns, ``"sum_then_normalize"`` sums the weighted columns
            (``nansum``) and normalizes the sum as above; ``"normalize_then_sum"`` (GDPO)
            normalizes each column within its groups, sums the weighted results, and
            normalizes that over the batch (``scale`` does not apply: leave it "group").
        reward_weights: ``[K]`` weights of the columns (default: ones).

    Returns:
        ``[B]`` advantages (same dtype as ``rewards``).

    Example:
        >>> import torch
        >>> group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2, scale="none")
        tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
        >>> r = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        >>> group_advantages(r, 2, reward_weights=[2.0, 1.0], scale="none")
        tensor([ 1.0000, -1.0000,  0.5000, -0.5000])
    """
    if not isinstance(rewards, torch.Tensor) or not rewards.is_floating_point():
        raise TypeError("rewards must be a floating-point torch.Tensor")
    if rewards.ndim not in (1, 2):
        raise ShapeError(f"rewards must be [B] or [B, K], got shape {tuple(rewards.shape)}")
    group_size = check_int(group_size, "group_size", 1)
    eps = check_range(eps, "eps", 0.0, math.inf)
    scale = check_choice(scale, "scale", ("group", "batch", "none"))
    aggregation = check_choice(aggregation, "aggregation",
                               ("sum_then_normalize", "normalize_then_sum"))  # fmt: skip
    if rewards.shape[0] % group_size:
        raise InvalidInputError(
            f"{rewards.shape[0]} rewards do not split into groups of {group_size}"
        )
    inf = torch.isinf(rewards)
    if bool(inf.any()):
        at = [int(i) for i in inf.nonzero()[0]]
        idx = ", ".join(map(str, at))
        raise InvalidInputError(
            f"rewards[{idx}] is {float(rewards[tuple(at)])}: rewards must be finite (NaN marks "
            "an unscorable completion)"
        )
    per_func = rewards if rewards.ndim == 2 else rewards[:, None]
    k = per_func.shape[1]
    if reward_weights is None:
        w = torch.ones(k, dtype=rewards.dtype, device=rewards.device)
    else:
        w = torch.as_tensor(reward_weights, dtype=rewards.dtype, device=rewards.device)
        check_tensor(w, "reward_weights", (k,), like="rewards' columns")
        check_finite_where(w, "reward_weights", None)
    unscorable = torch.isnan(per_func).all(dim=1)
    if aggregation == "normalize_then_sum":
        if scale != "group":
            raise InvalidInputError(
                "scale applies to aggregation='sum_then_normalize'; 'normalize_then_sum' "
                "normalizes each reward within its group, then the sum over the batch"
            )
        grouped = per_func.view(-1, group_size, k)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = _nanstd(grouped, dim=1)[:, None, :] if group_size > 1 else torch.zeros_like(mean_k)
        normed = ((grouped - mean_k) / (std_k + eps)).view(-1, k)
        total = (normed * w[None, :]).nansum(dim=1)
        total[unscorable] = math.nan
        std = _nanstd(total) if total.numel() > 1 else torch.zeros_like(total)
        return torch.nan_to_num((total - torch.nanmean(total)) / (std + eps), nan=0.0)
    total = (per_func * w[None, :]).nansum(dim=1) if rewards.ndim == 2 else rewards * w[0]
    if rewards.ndim == 2:
        total[unscorable] = math.nan
    grouped = total.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    adv = total - mean
    if scale == "group":
        std = (
            _nanstd(grouped, dim=1)
            if group_size > 1
            else torch.zeros(grouped.shape[0], dtype=total.dtype, device=total.device)
        )
        adv = adv / (std.repeat_interleave(group_size) + eps)
    elif scale == "batch":
        std = _nanstd(total) if total.numel() > 1 else torch.zeros_like(total)
        adv = adv / (std + eps)
    return torch.nan_to_num(adv, nan=0.0)


def soft_overlong_penalty(lengths: torch.Tensor, max_length: int, cache_length: int):
    """DAPO's soft overlong punishment: 0 up to ``max_length - cache_length`` tokens, then a
    linear ramp to -1 at ``max_length``, and -1 beyond.

    Example:
        >>> soft_overlong_penalty(torch.tensor([10, 90, 95, 100, 120]), 100, 10)
        tensor([ 0.0000,  0.0000, -0.5000, -1.0000, -1.0000])
    """
    max_length = check_int(max_length, "max_length", 1)
    cache_length = check_int(cache_length, "cache_length", 1, max_length)
    check_tensor(lengths, "lengths")
    lengths = lengths.to(torch.get_default_dtype()) if not lengths.is_floating_point() else lengths
    start = max_length - cache_length
    ramp = (start - lengths) / cache_length
    return torch.where(
        lengths <= start,
        torch.zeros_like(ramp),
        torch.where(lengths <= max_length, ramp, torch.full_like(ramp, -1.0)),
    )


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    loss_type: str = "grpo",
    importance_sampling_level: str = "token",
    max_completion_length: int | None = None,
    num_items_in_batch: float | torch.Tensor | None = None,
    use_bias_correction_kl: bool = False,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    entropies: torch.Tensor | None = None,
    top_entropy_quantile: float = 1.0,
    off_policy_mask_threshold: float | None = None,
    sampling_logps: torch.Tensor | None = None,
    sampling_correction: str | None = None,
    sampling_clip_min: float | None = None,
    sampling_clip_max: float | None = 3.0,
) -> LossOutput:
    """The GRPO-family policy losses of TRL 1.16's GRPOTrainer on per-token log-probs.

    With the ratio ``u = exp(lp - lp_old)`` per token (``importance_sampling_level="token"``)
    or ``u = exp(mean_t(lp - lp_old))`` per sequence (``"sequence"``, GSPO, Zheng et al.
    2025) and the advantage ``A``, the per-token loss ``l_t`` of each ``loss_type``:

    - ``grpo``, ``bnpo``, ``dr_grpo``, ``dapo``, ``luspo``: the clipped surrogate
      ``-min(u' A, clip(u, 1 - eps_low, 1 + eps_high) A)`` with ``u' = min(u, delta)`` when
      ``delta`` is set (two-sided clipping);
    - ``cispo`` (MiniMax-M1, 2025): ``-sg(min(u, eps_high)) A lp`` (the clipped ratio only
      weights the REINFORCE gradient; ``epsilon_high`` is the cap itself, required: ScaleRL
      recommends 5.0);
    - ``sapo`` (Soft Adaptive Policy Optimization, Gao et al. 2025):
      ``-(4 / tau) sigmoid(tau (u - 1)) A`` with ``tau = sapo_temperature_pos`` for
      ``A > 0``, ``sapo_temperature_neg`` otherwise;
    - ``vespo``: ``-sg(phi(w)) A lp``, ``phi(w) = exp(lam + k log w - lam w)`` of the
      sequence ratio ``w = prod_t u_t`` (``log w`` clamped to ``[log 1e-8, 20]``), ``(k, lam)
      = (vespo_k_pos, vespo_lambda_pos)`` for ``A >= 0``, the ``_neg`` pair otherwise.

    Then, in TRL's order: times the off-policy sequence mask, times the high-entropy token
    mask, times the rollout correction ratio (not for ``vespo``, whose ``w`` includes it),
    plus ``beta * k3`` with ``k3 = exp(lp_ref - lp) - (lp_ref - lp) - 1`` (times ``u`` with
    ``use_bias_correction_kl``, DeepSeek-V3.2's unbiased KL gradient). Aggregation:
    ``grpo`` and ``sapo``: mean over sequences of the token mean; ``bnpo``: token sum / token
    count; ``dr_grpo``: token sum / (B * ``max_completion_length``); ``dapo``, ``cispo``,
    ``vespo``: token sum / ``num_items_in_batch`` (the global token count; default the local
    one); ``luspo``: mean over sequences of the token sum.

    Args:
        logps: ``[B, T]`` per-token log-probs under the current policy (differentiable).
        old_logps: ``[B, T]`` under the policy that sampled (``None``: on-policy, i.e.
            ``logps.detach()``).
        advantages: ``[B]`` (or ``[B, T]``) advantages, e.g. from :func:`group_advantages`.
        mask: ``[B, T]`` completion mask (1 for scored tokens; TRL's tool mask folded in).
        ref_logps: ``[B, T]`` reference log-probs, required when ``beta > 0``.
        beta: weight of the k3 KL estimator to the reference.
        epsilon_low, epsilon_high: clip range ``[1 - eps_low, 1 + eps_high]``
            (``epsilon_high`` defaults to ``epsilon_low``; DAPO's clip-higher uses 0.28).
        delta: optional upper clip of the unclipped ratio (two-sided clipping).
        loss_type: one of :data:`GRPO_LOSS_TYPES` (above).
        importance_sampling_level: ``"token"`` or ``"sequence"`` (GSPO; LUSPO's setting).
        max_completion_length: ``dr_grpo``'s constant length.
        num_items_in_batch: the token count ``dapo`` / ``cispo`` / ``vespo`` divide by.
        use_bias_correction_kl: multiply the KL term by the ratio ``u`` (TRL's default is
            True; off here so that ``beta`` alone gives the classic GRPO loss).
        sapo_temperature_pos, sapo_temperature_neg: SAPO's temperatures. (TRL forms them
            as float32 tensors, so 1.05 acts there as ``float32(1.05)``; here they keep
            the inputs' dtype.)
        vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg: VESPO's gamma shape.
        entropies: ``[B, T]`` per-token entropies (``token_logps(..., return_entropy=True)``),
            needed by ``top_entropy_quantile < 1``; also logged as ``entropy``.
        top_entropy_quantile: keep only the scored tokens whose entropy is in the top
            fraction ``q`` (entropy >= the ``1 - q`` quantile, linear interpolation, in the
            entropies' dtype); 1.0 keeps all. (TRL takes the quantile of float32 entropies
            at ``float32(1 - q)``: with ``q = 0.2`` that is 0.800000012 and drops the token
            exactly at the 0.8 rank, which this keeps.)
        off_policy_mask_threshold: DeepSeek-V3.2's off-policy sequence masking: sequences
            with a negative advantage and a mean token KL ``mean_t(lp_sampler - lp)`` above
            it are dropped (the sampler's log-probs are ``sampling_logps``, else
            ``old_logps``).
        sampling_logps: ``[B, T]`` log-probs the rollout engine (vLLM, SGLang) reported
            for the sampled tokens; NaN marks a token it could not score (ratio 1, left out
            of the mismatch metrics). Logs ``sampling/sampling_logp_difference/mean|max``.
        sampling_correction: ``None`` or TRL's ``vllm_importance_sampling_mode``:
            ``"token_truncate"``, ``"token_mask"``, ``"sequence_truncate"``,
            ``"sequence_mask"``: the ratio ``pi_old / pi_sampler`` per token, or per
            sequence (product), clamped to ``[sampling_clip_min, sampling_clip_max]``
            (``*_truncate``) or zeroed outside it (``*_mask``). ``vespo`` takes token modes.
        sampling_clip_min, sampling_clip_max: the bounds (``None``: unbounded on that side).

    Returns:
        :class:`LossOutput`: ``loss`` aggregated as ``loss_type`` says; ``losses`` the
        per-sequence token-mean loss ``[B]``; TRL's metrics: ``clip_ratio/low_mean``,
        ``clip_ratio/high_mean``, ``clip_ratio/region_mean``, ``clip_ratio/low_min``,
        ``clip_ratio/high_max`` (clipped-surrogate types), ``cispo_clip_ratio``,
        ``vespo/phi_seq_mean``, ``kl`` (``beta > 0``), ``entropy`` (with ``entropies``),
        the ``sampling/...`` metrics; and ``ratio/mean``, ``ratio/min``, ``ratio/max``.

    Example:
        >>> import torch
        >>> lp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
        >>> out = grpo_loss(lp, None, torch.tensor([1.0, -1.0]), torch.ones(2, 2))
        >>> out.loss  # on-policy: u = 1, the loss is -mean(A)
        tensor(0., grad_fn=<MeanBackward0>)
        >>> out = grpo_loss(lp, None, torch.tensor([1.0, -1.0]), torch.ones(2, 2),
        ...                 loss_type="cispo", epsilon_high=5.0)
        >>> round(out.loss.item(), 4)  # -A lp summed, / 4 tokens
        -0.125
    """
    from fastalign.losses import _grpo_terms as terms

    if not isinstance(logps, torch.Tensor) or not logps.is_floating_point():
        raise TypeError("logps must be a floating-point torch.Tensor")
    if logps.ndim != 2:
        raise ShapeError(f"logps must be [B, T], got shape {tuple(logps.shape)}")
    shape = logps.shape
    if mask is None:
        raise TypeError("mask is required")
    side = (("old_logps", old_logps), ("mask", mask), ("ref_logps", ref_logps),
            ("entropies", entropies), ("sampling_logps", sampling_logps))  # fmt: skip
    for name, t in side:
        if t is not None:
            check_tensor(t, name, shape, like="logps")
    if not isinstance(advantages, torch.Tensor):
        raise TypeError("advantages must be a torch.Tensor")
    if advantages.shape not in ((shape[0],), shape):
        raise ShapeError(
            f"advantages must be [{shape[0]}] or {list(shape)}, got {tuple(advantages.shape)}"
        )
    loss_type = check_choice(loss_type, "loss_type", GRPO_LOSS_TYPES)
    level = check_choice(importance_sampling_level, "importance_sampling_level",
                         ("token", "sequence"))  # fmt: skip
    beta = check_range(beta, "beta", 0.0, math.inf)
    if beta > 0 and ref_logps is None:
        raise InvalidInputError("beta > 0 needs ref_logps")
    eps_low = check_positive(epsilon_low, "epsilon_low")
    if loss_type == "cispo" and epsilon_high is None:
        # TRL falls back to epsilon (0.2): a cap below 1 that shrinks every token's weight
        raise InvalidInputError(
            "loss_type='cispo' caps the ratio at epsilon_high itself (ScaleRL's eps_max, "
            "recommended 5.0): pass epsilon_high"
        )
    eps_high = eps_low if epsilon_high is None else check_positive(epsilon_high, "epsilon_high")
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise InvalidInputError("loss_type='dr_grpo' needs max_completion_length")
    if max_completion_length is not None:
        max_completion_length = check_int(max_completion_length, "max_completion_length", 1)
    delta = check_positive(delta, "delta", allow_none=True)
    if num_items_in_batch is not None and not isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = check_positive(num_items_in_batch, "num_items_in_batch")
    use_bias_correction_kl = check_bool(use_bias_correction_kl, "use_bias_correction_kl")
    tau_pos = check_positive(sapo_temperature_pos, "sapo_temperature_pos")
    tau_neg = check_positive(sapo_temperature_neg, "sapo_temperature_neg")
    vespo = [check_finite(v, n) for v, n in ((vespo_k_pos, "vespo_k_pos"),
             (vespo_lambda_pos, "vespo_lambda_pos"), (vespo_k_neg, "vespo_k_neg"),
             (vespo_lambda_neg, "vespo_lambda_neg"))]  # fmt: skip
    top = check_range(top_entropy_quantile, "top_entropy_quantile", 0.0, 1.0, hi_open=False)
    if top < 1.0 and entropies is None:
        raise InvalidInputError("top_entropy_quantile < 1 needs the per-token entropies")
    if off_policy_mask_threshold is not None:
        off_policy_mask_threshold = check_finite(
            off_policy_mask_threshold, "off_policy_mask_threshold"
        )
    if sampling_correction is not None:
        sampling_correction = check_choice(
            sampling_correction, "sampling_correction", terms.SAMPLING_CORRECTIONS
        )
        if sampling_logps is None:
            raise InvalidInputError("sampling_correction needs sampling_logps")
        if loss_type == "vespo" and sampling_correction.startswith("sequence"):
            raise InvalidInputError(
                "loss_type='vespo' takes a token-level sampling_correction ('token_truncate' or "
                f"'token_mask'), got {sampling_correction!r}"
            )
    c_min, c_max = (
        None if c is None else check_range(c, name, 0.0, math.inf)
        for c, name in ((sampling_clip_min, "sampling_clip_min"),
                        (sampling_clip_max, "sampling_clip_max"))
    )  # fmt: skip
    if c_min is not None and c_max is not None and c_min > c_max:
        raise InvalidInputError(
            f"sampling_clip_min ({c_min}) must not exceed sampling_clip_max ({c_max})"
        )
    truncate = sampling_correction is not None and sampling_correction.endswith("truncate")
    if truncate and c_min is None and c_max is None:
        raise InvalidInputError(f"{sampling_correction!r} needs a sampling_clip_min or _max")
    if entropies is not None:
        check_finite_where(entropies, "entropies", mask)

    mask = mask.to(logps.dtype)
    adv = advantages.unsqueeze(1) if advantages.ndim == 1 else advantages
    old = logps.detach() if old_logps is None else old_logps.detach()
    is_ratio = None
    if sampling_correction is not None:
        is_ratio = terms.rollout_ratio(
            old, sampling_logps.detach(), mask, sampling_correction, c_min, c_max
        )
    keep = None
    if off_policy_mask_threshold is not None:
        sampler = old if sampling_logps is None else sampling_logps.detach()
        keep = terms.off_policy_keep(adv, logps, sampler, mask, off_policy_mask_threshold)
    high_entropy = terms.high_entropy_mask(entropies, mask, top) if top < 1.0 else None

    log_ratio = logps - old
    if level == "sequence":
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_w = log_ratio
    coef_1 = torch.exp(log_w)
    kl = None
    if beta > 0:
        diff = ref_logps - logps
        kl = torch.exp(diff) - diff - 1
        if use_bias_correction_kl:
            kl = kl * coef_1
    phi = None
    if loss_type == "cispo":
        per_token = -torch.clamp(coef_1, max=eps_high).detach() * adv * logps
    elif loss_type == "sapo":
        tau = torch.where(adv > 0, adv.new_tensor(tau_pos), adv.new_tensor(tau_neg))
        per_token = -torch.sigmoid(tau * (coef_1 - 1)) * 4 / tau * adv
    elif loss_type == "vespo":
        phi = terms.vespo_weights(adv, log_ratio.detach(), mask, is_ratio, *vespo)
        per_token = -phi * adv * logps
    else:
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        if delta is not None:
            coef_1 = torch.clamp(coef_1, max=delta)
        per_token = -torch.min(coef_1 * adv, coef_2 * adv)
    if keep is not None:
        per_token = per_token * keep
    if high_entropy is not None:
        per_token = per_token * high_entropy
    if is_ratio is not None and loss_type != "vespo":
        per_token = per_token * is_ratio
    if kl is not None:
        per_token = per_token + beta * kl
    per_token = per_token.expand(shape)

    token_sum = (per_token * mask).sum(-1)
    count = mask.sum(-1).clamp(min=1.0)
    seq_mean = token_sum / count
    if loss_type in ("grpo", "sapo"):
        loss = seq_mean.mean()
    elif loss_type == "bnpo":
        loss = token_sum.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = token_sum.sum() / (shape[0] * max_completion_length)
    elif loss_type == "luspo":
        loss = token_sum.mean()
    else:
        denom = (
            mask.sum()
            if num_items_in_batch is None
            else torch.as_tensor(num_items_in_batch, dtype=logps.dtype, device=logps.device)
        )
        loss = token_sum.sum() / denom.clamp(min=1.0)
    metrics = _grpo_metrics(
        coef_1.detach(), adv, mask, loss_type, eps_low, eps_high, kl, phi, entropies
    )
    if sampling_logps is not None:
        metrics.update(terms.rollout_metrics(old, sampling_logps.detach(), mask, is_ratio))
    return loss_output(loss, seq_mean, metrics)


@torch.no_grad()
def _grpo_metrics(coef_1, adv, mask, loss_type, eps_low, eps_high, kl, phi, entropies):
    """TRL's logged metrics of :func:`grpo_loss` (masked means over the scored tokens, or
    over the sequences for per-sequence values), and the ratio's mean / min / max."""
    dtype = mask.dtype
    total = mask.sum().clamp(min=1.0)

    def mean(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # one value per sequence
            return x.to(dtype).mean()
        return (x.to(dtype) * mask).sum() / total

    def per_seq(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            return x.to(dtype).squeeze(1)
        return (x.to(dtype) * mask).sum(-1) / mask.sum(-1)

    def nan_extreme(x: torch.Tensor, fn) -> torch.Tensor:
        low, high = masked_stats(x, ~torch.isnan(x), empty=math.nan)[1:]
        return low if fn is torch.min else high

    metrics: dict[str, torch.Tensor] = {}
    if loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        low = (coef_1 < 1 - eps_low) & (adv < 0)
        high = (coef_1 > 1 + eps_high) & (adv > 0)
        metrics["clip_ratio/low_mean"] = mean(low)
        metrics["clip_ratio/high_mean"] = mean(high)
        metrics["clip_ratio/region_mean"] = mean(low | high)
        metrics["clip_ratio/low_min"] = nan_extreme(per_seq(low), torch.min)
        metrics["clip_ratio/high_max"] = nan_extreme(per_seq(high), torch.max)
    elif loss_type == "cispo":
        metrics["cispo_clip_ratio"] = mean((coef_1 > eps_high) & (adv > 0))
    elif loss_type == "vespo":
        metrics["vespo/phi_seq_mean"] = mean(phi)
    _, low, high = masked_stats(coef_1.expand(mask.shape), mask.bool(), empty=math.nan)
    metrics["ratio/mean"] = mean(coef_1)
    metrics["ratio/min"], metrics["ratio/max"] = low, high
    if kl is not None:
        metrics["kl"] = mean(kl.detach())
    if entropies is not None:
        metrics["entropy"] = mean(entropies.detach())
    return metrics


def pama_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_advantages: bool = True,
    **grpo_options,
) -> LossOutput:
    """PAMA (Pareto multi-objective alignment): the clipped surrogate of :func:`grpo_loss`
    with the combined advantage ``s*`` of ``n`` objectives.

    ``advantages [B, n]`` holds one advantage per objective; with ``clip_advantages`` (Noon
    PPO) they are clipped to ``max(A, 0)`` first. ``s*`` is the projection of 0 onto
    ``[min_i a_i, max_i a_i]`` per sample, computed by the Rust core
    (:func:`fastalign.pareto.pama`). Other options go to :func:`grpo_loss`. Metrics add
    ``pama/advantage_mean`` and ``pama/zero_fraction`` (samples whose objectives disagree).
    """
    from fastalign.pareto import pama

    check_float_tensor(logps, "logps")
    check_tensor(advantages, "advantages")
    if advantages.ndim != 2:
        raise ShapeError(
            "advantages must be a [B, n] tensor (one column per objective), got "
            f"{list(advantages.shape)}"
        )
    a = advantages.detach()
    if clip_advantages:
        a = a.clamp(min=0)
    s_star = torch.from_numpy(pama(a.double().cpu().numpy())).to(
        device=logps.device, dtype=logps.dtype
    )
    out = grpo_loss(logps, old_logps, s_star, mask, **grpo_options)
    out.metrics["pama/advantage_mean"] = s_star.mean()
    out.metrics["pama/zero_fraction"] = (s_star == 0).to(logps.dtype).mean()
    return out


def rank_grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    item_ids: torch.Tensor,
    relevance: torch.Tensor,
    group_size: int,
    *,
    reward: str = "dcg",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    eps: float = 1e-4,
) -> LossOutput:
    """Rank-GRPO for ranked-list outputs (e.g. LLM recommenders): the item, not the token or
    the sequence, is the unit of the importance ratio and of the advantage.

    Each completion lists ``K`` items; ``item_ids [B, T]`` says which item (0..K-1) each
    token belongs to (-1: no item). Per completion ``i`` and rank ``k``:

    - reward ``r_ik``: ``relevance[i, k]`` (``reward="relevance"``) or the causal DCG
      ``sum_{j >= k} rel_ij / log2(j + 2)`` (0-based ``j``; ``reward="dcg"``);
    - advantage: ``r_ik`` normalized per rank position across the ``group_size`` completions
      of the same prompt, ``(r_ik - mean) / (std + eps)`` (Bessel-corrected std);
    - ratio ``u_ik = exp(mean over item-k tokens of (lp - lp_old))``;
    - loss ``-min(u A, clip(u, 1 - eps_low, 1 + eps_high) A)``,

    averaged over the items that have at least one token. ``losses`` is the per-completion
    mean over its items.
    """
    if logps.ndim != 2:
        raise ShapeError(f"logps must be [B, T], got {list(logps.shape)}")
    shape = logps.shape
    for name, t in (("old_logps", old_logps), ("item_ids", item_ids)):
        if t is not None:
            check_tensor(t, name, shape, like="logps")
    if relevance.ndim != 2 or relevance.shape[0] != shape[0]:
        raise ShapeError(f"relevance must be [{shape[0]}, K], got {list(relevance.shape)}")
    b, k = relevance.shape
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise InvalidInputError(f"group_size must be an int >= 2, got {group_size!r}")
    if b % group_size:
        raise InvalidInputError(f"{b} completions do not split into groups of {group_size}")
    if bool(((item_ids < -1) | (item_ids >= k)).any()):
        raise InvalidInputError(f"item_ids must be in [-1, {k})")
    if reward not in ("dcg", "relevance"):
        raise InvalidInputError(f"reward must be 'dcg' or 'relevance', got {reward!r}")
    eps_low = check_positive(epsilon_low, "epsilon_low")
    eps_high = eps_low if epsilon_high is None else check_positive(epsilon_high, "epsilon_high")

    rel = relevance.to(logps.dtype)
    if reward == "dcg":
        disc = 1.0 / torch.log2(torch.arange(k, device=rel.device, dtype=rel.dtype) + 2.0)
        r = torch.flip(torch.cumsum(torch.flip(rel * disc, [1]), 1), [1])
    else:
        r = rel
    grouped = r.view(-1, group_size, k)
    mean = grouped.mean(1, keepdim=True)
    std = grouped.std(1, keepdim=True)
    adv = ((grouped - mean) / (std + eps)).view(b, k)

    old = logps.detach() if old_logps is None else old_logps
    onehot = (item_ids[:, :, None] == torch.arange(k, device=item_ids.device)).to(logps.dtype)
    count = onehot.sum(1)  # [B, K] tokens per item
    mean_lr = torch.einsum("bt,btk->bk", logps - old, onehot) / count.clamp(min=1.0)
    u = torch.exp(mean_lr)
    per_item = -torch.min(u * adv, u.clamp(1 - eps_low, 1 + eps_high) * adv)
    present = (count > 0).to(logps.dtype)
    loss = (per_item * present).sum() / present.sum().clamp(min=1.0)
    losses = (per_item * present).sum(1) / present.sum(1).clamp(min=1.0)
    with torch.no_grad():
        clipped = ((u < 1 - eps_low) & (adv < 0)) | ((u > 1 + eps_high) & (adv > 0))
        n = present.sum().clamp(min=1.0)
        metrics = {
            "clip_ratio/region_mean": (clipped.to(logps.dtype) * present).sum() / n,
            "reward/mean": r.mean(),
        }
    return loss_output(loss, losses, metrics)
