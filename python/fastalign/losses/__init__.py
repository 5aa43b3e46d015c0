"""Alignment losses on per-sequence (or per-token) log-probs, exact to their published /
TRL definitions (``shared/spec/LOSSES.md``), autograd-native, returning
:class:`LossOutput` ``(loss, losses, metrics)``."""

from __future__ import annotations

from fastalign.losses._common import LossOutput
from fastalign.losses.beta_dpo import BetaDPO
from fastalign.losses.fused_linear import (
    FusedLinearGRPOLoss,
    FusedLinearKTOLoss,
    FusedLinearPreferenceLoss,
)
from fastalign.losses.game import (
    copg,
    dpa_reward,
    ema_update_,
    inpo,
    jbond,
    mnpo,
    nash_md,
    p3o,
    pro,
)
from fastalign.losses.grpo import (
    GRPO_LOSS_TYPES,
    group_advantages,
    grpo_loss,
    pama_loss,
    rank_grpo_loss,
    soft_overlong_penalty,
)
from fastalign.losses.kto import kto
from fastalign.losses.preference import F_DIVERGENCES, PREFERENCE_LOSS_TYPES, preference_loss
from fastalign.losses.reference_free import cpo, mappo, orpo, rpo, simpo, slic
from fastalign.losses.token_preference import (
    TOKEN_PREFERENCE_LOSS_TYPES,
    token_preference_loss,
)

__all__ = [
    "F_DIVERGENCES",
    "GRPO_LOSS_TYPES",
    "PREFERENCE_LOSS_TYPES",
    "TOKEN_PREFERENCE_LOSS_TYPES",
    "BetaDPO",
    "FusedLinearGRPOLoss",
    "FusedLinearKTOLoss",
    "FusedLinearPreferenceLoss",
    "LossOutput",
    "copg",
    "cpo",
    "dpa_reward",
    "ema_update_",
    "group_advantages",
    "grpo_loss",
    "inpo",
    "jbond",
    "kto",
    "mappo",
    "mnpo",
    "nash_md",
    "orpo",
    "p3o",
    "pama_loss",
    "preference_loss",
    "pro",
    "rank_grpo_loss",
    "rpo",
    "simpo",
    "slic",
    "soft_overlong_penalty",
    "token_preference_loss",
]
