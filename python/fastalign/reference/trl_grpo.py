"""TRL 1.16's GRPO loss, run as TRL runs it: ``GRPOTrainer._compute_loss`` called on a
stand-in trainer whose model returns given per-token log-probs (and entropies), with the
rollout-engine correction ratio and its metrics as TRL's generation step forms them
(``_generate_and_score_completions`` computes them inline: :func:`rollout` transcribes those
lines, and the tests check that the installed TRL still holds :data:`ROLLOUT_LINES`).

Used by the parity tests and by ``fastalign bench --only rl``; needs ``trl``.
"""

from __future__ import annotations

import math
import types
from collections import defaultdict
from typing import Any

import torch

__all__ = ["ROLLOUT_LINES", "compute_loss", "rollout"]


class _Accelerator:
    """A single-process accelerate stand-in: reductions and gathers are the identity."""

    num_processes = 1
    sync_gradients = True

    @staticmethod
    def reduce(x, reduction="sum"):
        return x

    @staticmethod
    def gather(x):
        return x

    @staticmethod
    def pad_across_processes(x, dim=0, pad_index=0):
        return x

    gather_for_metrics = gather


ROLLOUT_LINES = (
    "per_token_logps_diff = (old_per_token_logps - sampling_per_token_logps) * mask",
    "per_token_logps_diff = torch.nan_to_num(per_token_logps_diff, nan=0.0)",
    "per_sequence_logps_diff = per_token_logps_diff.sum(dim=-1, keepdim=True)",
    "vllm_importance_sampling_ratio = torch.exp(logps_diff)",
    "vllm_importance_sampling_ratio = torch.clamp( vllm_importance_sampling_ratio, "
    "min=self.vllm_importance_sampling_clip_min, max=self.vllm_importance_sampling_clip_max, )",
    "invalid_mis_mask = (vllm_importance_sampling_ratio < min_val) | ( "
    "vllm_importance_sampling_ratio > max_val )",
    "vllm_importance_sampling_ratio = vllm_importance_sampling_ratio.masked_fill( "
    "invalid_mis_mask, value=0.0 )",
    "delta = torch.abs(old_per_token_logps - sampling_per_token_logps)",
    "delta = delta[mask & ~torch.isnan(delta)]",
    "flat_is_ratio = vllm_importance_sampling_ratio.flatten()",
    "flat_is_ratio = vllm_importance_sampling_ratio[mask]",
)


def rollout(old, sampling, mask, mode, c_min, c_max):
    """TRL 1.16's rollout correction ratio and mismatch metrics (the lines above)."""
    diff = torch.nan_to_num((old - sampling) * mask, nan=0.0)
    seq_level = mode in ("sequence_mask", "sequence_truncate")
    ratio = torch.exp(diff.sum(dim=-1, keepdim=True) if seq_level else diff)
    if mode.endswith("truncate"):
        ratio = torch.clamp(ratio, min=c_min, max=c_max)
    else:
        lo = -math.inf if c_min is None else c_min
        hi = math.inf if c_max is None else c_max
        ratio = ratio.masked_fill((ratio < lo) | (ratio > hi), value=0.0)
    sel = mask.bool()
    delta = torch.abs(old - sampling)
    delta = delta[sel & ~torch.isnan(delta)]
    flat = ratio.flatten() if seq_level else ratio[sel]
    zero = torch.tensor(0.0, dtype=old.dtype)
    metrics = {
        "sampling/sampling_logp_difference/mean": delta.mean() if delta.numel() else zero,
        "sampling/sampling_logp_difference/max": delta.max() if delta.numel() else zero,
        "sampling/importance_sampling_ratio/min": flat.min() if flat.numel() else zero,
        "sampling/importance_sampling_ratio/mean": flat.mean() if flat.numel() else zero,
        "sampling/importance_sampling_ratio/max": flat.max() if flat.numel() else zero,
    }
    return ratio, metrics


def compute_loss(
    logps,
    old,
    ref,
    adv,
    mask,
    *,
    loss_type,
    beta,
    eps_low,
    eps_high,
    delta,
    level,
    max_len,
    num_items,
    entropies=None,
    top_entropy_quantile=1.0,
    off_policy_mask_threshold=None,
    use_bias_correction_kl=False,
    sampling=None,
    mode=None,
    clip_min=None,
    clip_max=3.0,
    sapo=(1.0, 1.05),
    vespo=(2.0, 3.0, 3.0, 2.0),
) -> tuple[torch.Tensor, dict[str, Any]]:
    """TRL's loss and logged metrics (the rollout metrics included when ``mode`` is set)."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    b, t = logps.shape
    trainer = types.SimpleNamespace(
        top_entropy_quantile=top_entropy_quantile,
        off_policy_mask_threshold=off_policy_mask_threshold,
        importance_sampling_level=level,
        beta=beta,
        loss_type=loss_type,
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        use_vllm=mode is not None,
        vllm_importance_sampling_correction=mode is not None,
        model=types.SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_len,
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        _entropy_bonus_enabled=False,
        args=types.SimpleNamespace(
            use_bias_correction_kl=use_bias_correction_kl,
            delta=delta,
            steps_per_generation=1,
            sapo_temperature_pos=sapo[0],
            sapo_temperature_neg=sapo[1],
            vespo_k_pos=vespo[0],
            vespo_lambda_pos=vespo[1],
            vespo_k_neg=vespo[2],
            vespo_lambda_neg=vespo[3],
        ),
        _metrics={"train": defaultdict(list)},
    )
    trainer.get_off_policy_mask = GRPOTrainer.get_off_policy_mask
    trainer.get_gamma_weights = GRPOTrainer.get_gamma_weights
    trainer.get_high_entropy_mask = types.MethodType(GRPOTrainer.get_high_entropy_mask, trainer)
    ent = torch.zeros_like(logps) if entropies is None else entropies
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, ent, None)
    inputs = {
        "prompt_ids": torch.zeros(b, 1, dtype=torch.long, device=logps.device),
        "prompt_mask": torch.ones(b, 1, dtype=torch.long, device=logps.device),
        "completion_ids": torch.zeros(b, t, dtype=torch.long, device=logps.device),
        "completion_mask": mask,
        "advantages": adv,
        "old_per_token_logps": old,
        "num_items_in_batch": torch.tensor(float(num_items), device=logps.device),
    }
    metrics: dict[str, Any] = {}
    if sampling is not None:
        inputs["sampling_per_token_logps"] = sampling
    if mode is not None:
        old_or_lp = logps.detach() if old is None else old
        inputs["importance_sampling_ratio"], rollout_metrics = rollout(
            old_or_lp, sampling, mask, mode, clip_min, clip_max
        )
        metrics.update({k: v.item() for k, v in rollout_metrics.items()})
    if beta:
        inputs["ref_per_token_logps"] = ref
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    metrics.update({k: v[-1] for k, v in trainer._metrics["train"].items()})
    return loss, metrics
