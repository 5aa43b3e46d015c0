"""Two-head divergences (distillation, and the exact per-token KL to a reference model):
:func:`token_divergence` from both models' hidden states and LM heads, without ``[N, V]``
logits; :func:`topk_divergence` against a served teacher's top-k log-probs;
:func:`token_unlikelihood`, the ``-log(1 - p)`` term on the same fused head."""

from __future__ import annotations

from fastalign.divergence._api import token_divergence, token_unlikelihood, topk_divergence
from fastalign.divergence._function import KINDS as DIVERGENCE_KINDS
from fastalign.divergence._topk import TAILS as TOPK_TAILS

__all__ = [
    "DIVERGENCE_KINDS",
    "TOPK_TAILS",
    "token_divergence",
    "token_unlikelihood",
    "topk_divergence",
]
