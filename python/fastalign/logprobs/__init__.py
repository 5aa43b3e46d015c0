"""Per-token log-probabilities of selected tokens.

``token_logps`` / ``sequence_logps`` go from the last hidden states and the LM head straight
to log-probs without ever holding the ``[tokens, vocab]`` logits (a tiling driver over row
blocks and vocabulary slices, cuBLAS / BLAS GEMMs, row kernels in Triton or torch, a
backward that recomputes each tile); ``logps_from_logits`` works on logits a model already
produced. All take ``backend="auto" | "triton" | "torch" | "reference"`` (see
:mod:`fastalign._backend`).

Numerics: logits tiles and every reduction are float32 (float64 for float64 inputs); the
result is float32, or float64 for float64 inputs. NaN or Inf in the inputs propagate to NaN
in the affected rows: they are never hidden.

Layout of the package: ``_api`` (the public functions and :func:`fused_head`, the entry for
integrations, with :class:`HeadOptions`), ``_tiling`` (the driver: tile plan, GEMMs, forward
fold and backward), ``_rows_torch`` / ``_rows_triton``
(the row passes), ``_function`` (the custom ops and their autograd), ``_parallel`` (the
vocab-parallel path), ``_selective`` (``logps_from_logits``), ``_fused_gemm`` (the first
fused Triton kernel, kept for device comparisons only). Argument checks are
:mod:`fastalign._validate`'s, as everywhere in fastalign.
"""

from __future__ import annotations

from fastalign.logprobs._api import (
    HeadOptions,
    HeadOutputs,
    fused_head,
    sequence_logps,
    token_logps,
)
from fastalign.logprobs._selective import logps_from_logits

__all__ = [
    "HeadOptions",
    "HeadOutputs",
    "fused_head",
    "logps_from_logits",
    "sequence_logps",
    "token_logps",
]
