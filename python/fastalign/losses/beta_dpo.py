"""beta-DPO: DPO with a batch-adaptive beta and data filtering (Wu et al., 2024)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from fastalign._validate import check_pairs, check_positive, check_range
from fastalign.losses._common import LossOutput, loss_output, pair_metrics

__all__ = ["BetaDPO"]


class BetaDPO(torch.nn.Module):
    """Stateful beta-DPO loss.

    Each call, with ``M_i = h_i = rho_w - rho_l`` (detached, unscaled):

    1. the running statistics are updated first: ``M0 <- g M0 + (1 - g) mean(M)``,
       ``S0 <- g S0 + (1 - g) std(M)`` (both start at 0; ``std`` is Bessel-corrected, 0 for a
       single pair);
    2. ``k = max(1, int(B (1 - rho)))`` pairs are kept, sampled without replacement with
       weights ``exp(-0.5 ((M_i - M0) / S0)^2)`` (uniform while ``S0 == 0``) from the
       module's own seeded generator;
    3. ``beta_b = max(1e-3, beta0 (1 + alpha (mean_kept(M) - M0)))`` (detached);
    4. ``loss = mean over kept pairs of -logsig(beta_b h)``.

    ``losses`` is ``[B]`` with 0 for the pairs filtered out. The statistics and the generator
    state are saved in ``state_dict`` (resuming reproduces the same sampling).

    Args:
        beta: ``beta0``. alpha: scaling of the batch-level adaptation (0 = fixed beta;
            the authors' example uses 0.6). rho: fraction of pairs filtered out.
        momentum: ``g``. seed: seed of the sampling generator.
    """

    def __init__(
        self,
        beta: float = 0.1,
        *,
        alpha: float = 0.0,
        rho: float = 0.2,
        momentum: float = 0.9,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.beta = check_positive(beta, "beta")
        alpha = check_range(alpha, "alpha", 0.0, math.inf)
        rho = check_range(rho, "rho", 0.0, 1.0)
        momentum = check_range(momentum, "momentum", 0.0, 1.0)
        self.alpha, self.rho, self.momentum = float(alpha), float(rho), float(momentum)
        self.register_buffer("m0", torch.zeros((), dtype=torch.float64))
        self.register_buffer("s0", torch.zeros((), dtype=torch.float64))
        self.generator = torch.Generator().manual_seed(int(seed))

    def extra_repr(self) -> str:
        return f"beta={self.beta}, alpha={self.alpha}, rho={self.rho}, momentum={self.momentum}"

    def get_extra_state(self) -> Any:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: Any) -> None:
        self.generator.set_state(state["generator"])

    def forward(
        self,
        policy_chosen_logps: torch.Tensor,
        policy_rejected_logps: torch.Tensor,
        ref_chosen_logps: torch.Tensor,
        ref_rejected_logps: torch.Tensor,
    ) -> LossOutput:
        b, _, _ = check_pairs(
            policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
        )
        rho_w = policy_chosen_logps - ref_chosen_logps
        rho_l = policy_rejected_logps - ref_rejected_logps
        h = rho_w - rho_l
        if b == 0:  # nothing to learn the margin statistics from: the state is left as it is
            metrics = pair_metrics(rho_w, rho_l, policy_chosen_logps, policy_rejected_logps)
            nan = torch.tensor(float("nan"))
            metrics.update(beta=nan, m0=self.m0.clone(), s0=self.s0.clone(), kept_fraction=nan)
            return loss_output(h.sum(), h, metrics)
        with torch.no_grad():
            m = h.detach().double().cpu()
            g = self.momentum
            std = m.std() if b > 1 else torch.zeros((), dtype=torch.float64)
            self.m0.mul_(g).add_((1 - g) * m.mean().to(self.m0.device))
            self.s0.mul_(g).add_((1 - g) * std.to(self.s0.device))
            m0, s0 = float(self.m0), float(self.s0)
            k = max(1, int(b * (1 - self.rho)))
            if s0 > 0:
                weights = torch.exp(-0.5 * ((m - m0) / s0) ** 2)
                if not bool(weights.sum() > 0):  # every pair far in the tails: uniform
                    weights = torch.ones(b, dtype=torch.float64)
            else:
                weights = torch.ones(b, dtype=torch.float64)
            kept = torch.multinomial(weights, k, replacement=False, generator=self.generator)
            kept = kept.sort().values.to(h.device)
            beta_b = max(1e-3, self.beta * (1 + self.alpha * (float(m[kept.cpu()].mean()) - m0)))
        per = -F.logsigmoid(beta_b * h.index_select(0, kept))
        losses = torch.zeros_like(h).index_copy(0, kept, per)
        metrics = pair_metrics(
            beta_b * rho_w, beta_b * rho_l, policy_chosen_logps, policy_rejected_logps
        )
        metrics.update(
            beta=torch.tensor(beta_b),
            m0=self.m0.clone(),
            s0=self.s0.clone(),
            kept_fraction=torch.tensor(k / b),
        )
        return loss_output(per.mean(), losses, metrics)
