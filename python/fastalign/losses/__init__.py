"""Alignment losses on per-sequence (or per-token) log-probs, exact to their published /
TRL definitions (``shared/spec/LOSSES.md``), autograd-native, returning
:class:`LossOutput` ``(loss, losses, metrics)``."""

from __future__ import annotations

from fastalign.losses._common import LossOutput
from fastalign.losses.preference import F_DIVERGENCES, PREFERENCE_LOSS_TYPES, preference_loss

__all__ = ["F_DIVERGENCES", "PREFERENCE_LOSS_TYPES", "LossOutput", "preference_loss"]
