"""transformers integration: sequence log-probs of any causal LM without its logits.

:func:`sequence_logps` runs the model's backbone, takes the last hidden states and scores the
next-token labels through the LM head with :func:`fastalign.sequence_logps` (no
``[tokens, vocab]`` logits, forward or backward), honouring the head transforms the model's
config declares: ``logit_scale`` (Cohere), ``output_multiplier``, ``lm_head_multiplier``
(Falcon-H1), ``logits_scaling`` (Granite, MiniCPM3: divided; HyperCLOVA X: multiplied) and
``final_logit_softcapping`` (Gemma 2/3).

Example:
    >>> import torch
    >>> from fastalign.bench import tiny_lm
    >>> from fastalign.integrations.hf import sequence_logps
    >>> tok = tiny_lm.make_tokenizer()
    >>> model = tiny_lm.make_llama(tok)
    >>> ids = torch.tensor([[2, 5, 6, 7], [0, 2, 9, 10]])      # left-padded batch
    >>> mask = (ids != tok.pad_token_id).long()
    >>> sequence_logps(model, ids, mask).shape
    torch.Size([2])
"""

from __future__ import annotations

from typing import Any

import torch

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.logprobs import sequence_logps as _sequence_logps

__all__ = ["head_transform", "sequence_logps"]


def head_transform(config: Any) -> tuple[float, float | None]:
    """``(logit_scale, softcap)`` of a transformers config: the multiplier its LM head
    applies to the logits (1.0 when none) and its final-logit softcapping (``None``)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    softcap = getattr(text, "final_logit_softcapping", None)
    scale = getattr(text, "logit_scale", None)
    if scale is None:
        scale = getattr(text, "output_multiplier", None)
    if scale is None:
        scale = getattr(text, "lm_head_multiplier", None)
    if scale is None and getattr(text, "logits_scaling", None) is not None:
        scaling = float(text.logits_scaling)
        scale = scaling if getattr(text, "model_type", "") == "hyperclovax" else 1.0 / scaling
    return (1.0 if scale is None else float(scale)), (None if softcap is None else float(softcap))


def _backbone(model: Any) -> Any:
    if hasattr(model, "get_base_model") and callable(model.get_base_model):  # PEFT wrapper
        model = model.get_base_model()
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if backbone is None or backbone is model:
        backbone = getattr(model, "model", None)
    if backbone is None:
        raise TypeError(
            f"{type(model).__name__} has no backbone to read hidden states from "
            "(expected a transformers *ForCausalLM with a base_model_prefix)"
        )
    return backbone


def sequence_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    reduction: str = "sum",
    temperature: float = 1.0,
    return_entropy: bool = False,
    backend: str = "auto",
    chunk_rows: int | None = None,
    **model_kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence log-probs of ``labels`` under a transformers causal LM, next-token
    aligned as the model's own loss is: the label at position ``t + 1`` is scored from the
    hidden state at ``t`` (pass ``labels`` as you would to ``model(labels=...)``).

    Args:
        model: a transformers ``*ForCausalLM`` (or a PEFT model wrapping one).
        input_ids: ``[B, T]`` token ids.
        attention_mask: ``[B, T]`` (1 = token, 0 = padding); default all ones.
        labels: ``[B, T]`` ids to score, ``-100`` where not scored; default ``input_ids``,
            scoring every real token that follows a real token (not padding, not the first
            token after left padding).
        reduction: ``"sum"`` (default), ``"mean"`` over scored tokens, or ``"none"``
            (``[B, T - 1]`` per-token log-probs, 0 where not scored).
        temperature: divides the logits (after the config's scaling and softcapping).
        return_entropy: also return the entropies, reduced the same way.
        backend, chunk_rows: as for :func:`fastalign.token_logps`.
        model_kwargs: passed to the backbone (e.g. ``position_ids``).

    Returns:
        ``[B]`` float32 log-probs (float64 for a float64 model), or ``(logps, entropy)``.

    Gradients flow to every parameter the model's own loss would reach (backbone, head,
    tied embeddings). Under autocast the head runs in the autocast dtype.

    The backbone is called directly (``model.model``), not through ``model(...)``: hooks on
    the outer module (e.g. FSDP2 ``fully_shard`` on the root, DDP) do not run; wrap the
    backbone itself, or gather such parameters first.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        raise ShapeError(
            f"input_ids must be a [B, T] tensor, got {getattr(input_ids, 'shape', type(input_ids))}"
        )
    for name, t in (("attention_mask", attention_mask), ("labels", labels)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.shape != input_ids.shape):
            raise ShapeError(
                f"{name} must be a tensor shaped like input_ids {tuple(input_ids.shape)}, got "
                f"{getattr(t, 'shape', type(t))}"
            )
    if input_ids.shape[1] < 2:
        raise InvalidInputError("sequences need at least 2 tokens to score a next token")
    if labels is None:
        labels = input_ids
        if attention_mask is not None:
            # a real token is scored only from a real token: not from padding before it
            labels = labels.masked_fill(attention_mask == 0, -100)
            labels[:, 1:] = labels[:, 1:].masked_fill(attention_mask[:, :-1] == 0, -100)
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise TypeError(f"{type(model).__name__} has no LM head (get_output_embeddings())")
    if hasattr(head, "base_layer"):  # a PEFT tuner layer: its adapter is not in .weight
        raise NotImplementedError(
            "the LM head carries a PEFT adapter (e.g. LoRA on lm_head), which a fused head "
            "cannot apply; put adapters on the backbone, or use modules_to_save=['lm_head']"
        )
    weight, bias = head.weight, getattr(head, "bias", None)
    if hasattr(weight, "full_tensor"):  # a DTensor (FSDP2 / tensor parallel): gather it
        weight = weight.full_tensor()
    if bias is not None and hasattr(bias, "full_tensor"):
        bias = bias.full_tensor()
    scale, softcap = head_transform(model.config)
    out = _backbone(model)(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **model_kwargs
    )
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    hidden = hidden[:, :-1].to(weight.device)
    shifted = labels[:, 1:].to(weight.device)
    device = hidden.device.type
    compute = (
        torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    )
    with torch.autocast(device, enabled=False):
        return _sequence_logps(
            hidden.to(compute),
            weight.to(compute),
            shifted,
            reduction=reduction,
            bias=None if bias is None else bias.to(compute),
            temperature=temperature,
            logit_scale=scale,
            softcap=softcap,
            return_entropy=return_entropy,
            backend=backend,
            chunk_rows=chunk_rows,
        )
