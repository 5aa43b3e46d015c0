"""KTO: unpaired desirable / undesirable examples with a reference point from mismatched
pairs (Ethayarajh et al.), numerically TRL's KTOTrainer."""

from __future__ import annotations

import warnings

import torch

from fastalign._validate import check_batch, check_finite, check_positive
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses._common import LossOutput, loss_output

__all__ = ["kto"]


def kto(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    *,
    kl_policy_logps: torch.Tensor | None = None,
    kl_ref_logps: torch.Tensor | None = None,
    z0: float | torch.Tensor | None = None,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    loss_type: str = "kto",
) -> LossOutput:
    """KTO loss: desirable ``lam_D (1 - sig(beta (rho - z0)))``, undesirable
    ``lam_U (1 - sig(beta (z0 - rho)))``, ``rho = s_theta - s_ref``.

    The reference point ``z0 = max(0, mean(kl_policy_logps - kl_ref_logps))`` (detached) comes
    from the log-ratios of mismatched (prompt, completion) pairs — TRL builds them by pairing
    each prompt with the next example's completion — or is given directly as ``z0``.
    ``loss_type="apo_zero_unpaired"`` uses APO-zero's unpaired form (no reference point).

    Args:
        policy_logps, ref_logps: ``[B]`` summed completion log-probs.
        desirable: ``[B]`` bool (True = desirable / "chosen").
        kl_policy_logps, kl_ref_logps: ``[M]`` log-probs of the mismatched pairs.
        z0: precomputed reference point (instead of the mismatched log-probs).
        beta, desirable_weight, undesirable_weight: as in the paper (``lam_D``, ``lam_U``).
            A warning is raised when ``lam_D n_D / (lam_U n_U)`` is outside [1, 4/3], the
            range the KTO paper recommends.

    Returns:
        :class:`LossOutput`: ``losses`` in input order (``[B]``), ``loss`` their mean (as
        TRL's), metrics ``kl`` (= z0), ``rewards/chosen``, ``rewards/rejected``,
        ``rewards/margins``, ``logps/chosen``, ``logps/rejected`` (means over each group).
    """
    b, _, _ = check_batch(policy_logps=policy_logps, ref_logps=ref_logps)
    if not isinstance(desirable, torch.Tensor):
        raise TypeError(f"desirable must be a bool torch.Tensor, not {type(desirable).__name__}")
    if desirable.shape != (b,):
        raise ShapeError(
            f"desirable must be [{b}] to match the log-probs, got {tuple(desirable.shape)}"
        )
    if desirable.dtype != torch.bool:
        if bool(((desirable != 0) & (desirable != 1)).any()):
            raise InvalidInputError("desirable must hold only 0/1 (or bool) labels")
        desirable = desirable.bool()
    beta = check_positive(beta, "beta")
    lam_d = check_positive(desirable_weight, "desirable_weight")
    lam_u = check_positive(undesirable_weight, "undesirable_weight")
    if loss_type not in ("kto", "apo_zero_unpaired"):
        raise InvalidInputError(
            f"loss_type must be 'kto' or 'apo_zero_unpaired', got {loss_type!r}"
        )

    rho = policy_logps - ref_logps
    if loss_type == "kto":
        if z0 is None:
            if kl_policy_logps is None or kl_ref_logps is None:
                raise InvalidInputError(
                    "kto needs the reference point: pass z0, or kl_policy_logps and kl_ref_logps"
                )
            check_batch(kl_policy_logps=kl_policy_logps, kl_ref_logps=kl_ref_logps)
            z = (kl_policy_logps - kl_ref_logps).mean().detach().clamp(min=0)
        else:
            if not isinstance(z0, torch.Tensor):
                z0 = check_finite(z0, "z0")
            z = torch.as_tensor(z0, dtype=rho.dtype, device=rho.device).detach()
            if z.numel() != 1 or not bool(torch.isfinite(z).all()):
                raise InvalidInputError(f"z0 must be one finite number, got {z0!r}")
        z = z.to(rho.dtype)
        chosen = 1 - torch.sigmoid(beta * (rho - z))
        rejected = 1 - torch.sigmoid(beta * (z - rho))
    else:
        z = torch.zeros((), dtype=rho.dtype, device=rho.device)
        chosen = 1 - torch.sigmoid(beta * rho)
        rejected = torch.sigmoid(beta * rho)
    losses = torch.where(desirable, lam_d * chosen, lam_u * rejected)

    n_d = int(desirable.sum())
    n_u = b - n_d
    if n_d and n_u:
        ratio = lam_d * n_d / (lam_u * n_u)
        if not (1.0 <= ratio <= 4.0 / 3.0 + 1e-12):
            warnings.warn(
                f"KTO: desirable_weight * n_desirable / (undesirable_weight * n_undesirable) = "
                f"{ratio:.3f} is outside [1, 4/3], the range the KTO paper recommends",
                stacklevel=2,
            )
    with torch.no_grad():
        r = beta * rho.detach()
        metrics: dict[str, torch.Tensor] = {"kl": z}
        if n_d:
            metrics["rewards/chosen"] = r[desirable].mean()
            metrics["logps/chosen"] = policy_logps.detach()[desirable].mean()
        if n_u:
            metrics["rewards/rejected"] = r[~desirable].mean()
            metrics["logps/rejected"] = policy_logps.detach()[~desirable].mean()
        if n_d and n_u:
            metrics["rewards/margins"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
    return loss_output(losses.mean(), losses, metrics)
