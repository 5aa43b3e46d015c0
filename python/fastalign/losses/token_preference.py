"""The DPO family from per-token log-probs: segment-reduce to sequences and form the loss,
in one Triton launch on CUDA (``fastalign/kernels/preference_loss.py``) or as the torch
composition ``sums -> preference_loss`` elsewhere (the reference)."""

from __future__ import annotations

import torch

from fastalign import _backend
from fastalign._validate import (
    check_batch,
    check_finite,
    check_float_tensor,
    check_positive,
    check_range,
    check_tensor,
)
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses._common import LossOutput, loss_output
from fastalign.losses.preference import _ALPHA_CLAMP, F_DIVERGENCES, preference_loss

__all__ = ["TOKEN_PREFERENCE_LOSS_TYPES", "token_preference_loss"]

TOKEN_PREFERENCE_LOSS_TYPES = (
    "sigmoid",
    "cdpo",
    "hinge",
    "ipo",
    "robust",
    "sigmoid_norm",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "nca_pair",
    "exo_pair",
    "discopop",
    "aot",
    "aot_unpaired",
)
# batch-coupled (a sort across the batch): the torch composition runs them on every device
_SORTED = ("aot", "aot_unpaired")


class _KernelLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token_logps, mask, ref, loss_type, beta, eps, mean, options):
        from fastalign.kernels import preference_loss as k

        losses, grad = k.pair_loss(
            token_logps.contiguous(),
            mask.contiguous(),
            ref.contiguous(),
            loss_type=loss_type,
            beta=beta,
            label_smoothing=eps,
            mean=mean,
            **options,
        )
        ctx.save_for_backward(grad)
        ctx.dtype = token_logps.dtype
        ctx.mark_non_differentiable(losses)
        return losses.mean(), losses

    @staticmethod
    def backward(ctx, grad_loss, _grad_losses=None):
        (grad,) = ctx.saved_tensors
        return (grad * grad_loss).to(ctx.dtype), None, None, None, None, None, None, None


def token_preference_loss(
    policy_token_logps: torch.Tensor,
    mask: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    normalize: str = "mean",
    f_divergence: str = "reverse_kl",
    f_alpha: float = 0.5,
    discopop_tau: float = 0.05,
    backend: str = "auto",
) -> LossOutput:
    """DPO-family loss from per-token policy log-probs ``[2B, T]`` (chosen rows first, then
    rejected rows) and their mask, with per-sequence reference log-probs ``[B]`` each.

    Equals :func:`preference_loss` on the masked per-sequence sums (token counts from the
    mask for ``ipo`` with ``normalize="mean"`` and ``sigmoid_norm``). ``backend="triton"``
    (the default on CUDA) forms the loss and its gradient in one kernel launch, f-divergence
    scores included; the torch path is the composition. Supported types:
    :data:`TOKEN_PREFERENCE_LOSS_TYPES`; ``aot`` and ``aot_unpaired`` sort log-ratios across
    the batch, so they run as the torch composition on every device.
    """
    if loss_type not in TOKEN_PREFERENCE_LOSS_TYPES:
        raise InvalidInputError(
            f"loss_type must be one of {TOKEN_PREFERENCE_LOSS_TYPES}, got {loss_type!r}"
        )
    check_float_tensor(policy_token_logps, "policy_token_logps")
    if policy_token_logps.ndim != 2:
        raise ShapeError(
            f"policy_token_logps must be a [2B, T] tensor, got {list(policy_token_logps.shape)}"
        )
    two_b = policy_token_logps.shape[0]
    if two_b % 2:
        raise ShapeError(f"policy_token_logps has {two_b} rows: need chosen then rejected")
    check_tensor(mask, "mask", policy_token_logps.shape)
    b = two_b // 2
    check_batch(ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    if ref_chosen_logps.shape != (b,):
        raise ShapeError(
            f"ref_chosen_logps must be [{b}] (B pairs), got {list(ref_chosen_logps.shape)}"
        )
    beta = check_positive(beta, "beta")
    eps = check_range(label_smoothing, "label_smoothing", 0.0, 0.5)
    if normalize not in ("mean", "sum"):
        raise InvalidInputError(f"normalize must be 'mean' or 'sum', got {normalize!r}")
    mean = loss_type == "sigmoid_norm" or (loss_type == "ipo" and normalize == "mean")
    which = _backend.resolve(
        backend, policy_token_logps.device.type, triton_ok=policy_token_logps.dtype != torch.float64
    )
    if f_divergence not in F_DIVERGENCES:
        raise InvalidInputError(
            f"f_divergence must be one of {F_DIVERGENCES}, got {f_divergence!r}"
        )
    if loss_type == "exo_pair" and eps <= 0:
        raise InvalidInputError("exo_pair needs label_smoothing (its eps) > 0")
    discopop_tau = check_positive(discopop_tau, "discopop_tau")
    m = mask.bool()
    f_alpha = check_finite(f_alpha, "f_alpha")
    if which == "triton" and loss_type not in _SORTED:
        # the references in float64: the kernel forms s - s_ref from float64 sums
        ref = torch.cat([ref_chosen_logps, ref_rejected_logps]).detach().double()
        # the clamp of the composition, whose log-ratios take the promoted dtype
        promoted = torch.promote_types(
            policy_token_logps.dtype,
            torch.promote_types(ref_chosen_logps.dtype, ref_rejected_logps.dtype),
        )
        alpha_one = f_divergence == "alpha_divergence" and abs(f_alpha - 1.0) < 1e-6
        options = {  # alpha -> 1 is the reverse KL (as preference_loss treats it)
            "f_divergence": "reverse_kl" if alpha_one else f_divergence,
            "f_alpha": float(f_alpha),
            "alpha_clamp": _ALPHA_CLAMP[promoted],
            "discopop_tau": float(discopop_tau),
        }
        loss, losses = _KernelLoss.apply(
            policy_token_logps, m.to(torch.int8), ref, loss_type, beta, eps, mean, options
        )
        return loss_output(loss, losses, {})
    s = (policy_token_logps * m).sum(1)
    lengths = m.sum(1) if mean else None  # token counts only where the loss divides by them
    return preference_loss(
        s[:b],
        s[b:],
        ref_chosen_logps,
        ref_rejected_logps,
        loss_type=loss_type,
        beta=beta,
        label_smoothing=eps,
        chosen_lengths=None if lengths is None else lengths[:b],
        rejected_lengths=None if lengths is None else lengths[b:],
        normalize=normalize,
        f_divergence=f_divergence,
        f_alpha=f_alpha,
        discopop_tau=discopop_tau,
    )
