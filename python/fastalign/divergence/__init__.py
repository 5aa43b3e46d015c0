"""Two-head divergences (distillation, and the exact per-token KL to a reference model):
:func:`token_divergence` from both models' hidden states and LM heads, without ``[N, V]``
logits."""

from __future__ import annotations

from fastalign.divergence._api import token_divergence
from fastalign.divergence._function import KINDS as DIVERGENCE_KINDS

__all__ = ["DIVERGENCE_KINDS", "token_divergence"]
