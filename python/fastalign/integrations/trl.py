"""TRL integration: TRL's trainers compute their log-probs through fastalign.

Recent TRL releases (1.x) never build full logits in their trainers: ``add_fused_lm_head``
patches the model so that ``model(..., labels=..., fused_lm_head=True)`` runs the backbone and
hands the last hidden states and the LM head's weight to one chunked log-prob function
(``trl.trainer.utils._ChunkedLogProbFunction``). DPOTrainer, KTOTrainer, GRPOTrainer,
RLOOTrainer and SFTTrainer all go through it. :func:`enable` swaps that one function for
X
torch path elsewhere) and makes TRL hand over only the positions it scores (prompt and padding
rows are dropped before any matmul, on every device). Nothing else in the trainer changes:
its data collation, reference-model handling, loss formulas, logging and optimizer stay TRL's.

Example::

    import fastalign.integrations.trl as fa_trl
    from trl import DPOConfig, DPOTrainer

    fa_trl.enable()                      # before or after building the trainer
    DPOTrainer(model=model, args=DPOConfig(...), train_dataset=ds, ...).train()

    with fa_trl.enabled(chunk_rows=256):  # or for a block only
        trainer.train()

What is covered: the log-probs, entropies and TRL's metric-only statistics (``mean_logits``,
``is_top1``, ``log_sum_sq_probs``) with the temperature, ``logit_scale`` and final-logit
softcapping TRL reads from the model config; tied embeddings; autocast (the head runs in the
autocast dtype, as TRL's own function does); gradient checkpointing and PEFT adapters on the
backbone (the head is read after them); FSDP2 heads (TRL gathers the DTensor before the call,
and the gradient flows back through ``full_tensor``).

Under autocast with float32 master weights the head runs on the weight rounded to the
autocast dtype one vocabulary slice at a time (``HeadOptions(cast_weight=True)``: no whole
bf16 copy of a ``[V, H]`` weight and of its gradient), and dW is accumulated in float32
against the float32 weight, as TRL's own function does.

Not covered: DeepSpeed ZeRO-3 partitioned heads (their backward must re-gather the weight;
:func:`enable` raises on such a weight rather than read an empty one), and TRL's CPO / ORPO
trainers, which still materialize logits (``concatenated_forward``); for those, compute the
loss with :class:`fastalign.losses.FusedLinearPreferenceLoss` in a subclass.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from fastalign.errors import InvalidInputError
from fastalign.logprobs import HeadOptions, fused_head

__all__ = ["FastalignLogProbFunction", "disable", "enable", "enabled", "is_enabled"]

_lock = threading.Lock()
_saved: dict[str, Any] | None = None


def _trl_utils() -> Any:
    try:
        import trl
        from trl.trainer import utils
    except ImportError as e:  # pragma: no cover - exercised only without TRL
        raise ImportError("fastalign.integrations.trl needs TRL (pip install trl)") from e
    if not hasattr(utils, "_ChunkedLogProbFunction") or not hasattr(utils, "add_fused_lm_head"):
        raise ImportError(
            f"TRL {trl.__version__} has no fused LM-head path (trl.trainer.utils."
            "_ChunkedLogProbFunction, added in TRL 1.x); upgrade TRL, or compute losses with "
            "fastalign.losses.FusedLinearPreferenceLoss in a trainer subclass"
        )
    return utils


class FastalignLogProbFunction:
    """A drop-in for TRL's ``ChunkedLogProbFunction``: the same arguments, the same five
    outputs ``(log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1)`` (``None`` for
    outputs not requested), computed by :func:`fastalign.token_logps`.

    ``backend`` and ``chunk_rows`` are set by :func:`enable`.
    """

    backend: str = "auto"
    chunk_rows: int | None = None

    @classmethod
    def apply(
        cls,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk_size: int,  # TRL's vocabulary tile; fastalign sizes its own chunks
        final_logit_softcapping: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = ("log_probs",),
    ) -> tuple[torch.Tensor | None, ...]:
        del chunk_size
        if hasattr(weight, "ds_id"):  # a DeepSpeed ZeRO-3 parameter
            raise NotImplementedError(
                "fastalign.integrations.trl does not support DeepSpeed ZeRO-3 partitioned LM "
                "heads yet; call fastalign.integrations.trl.disable()"
            )
        device = hidden.device.type
        # TRL's rule: the head runs in the autocast dtype when autocast is on, else in the
        # hidden states' dtype (a float32 head under cast_lm_head_to_fp32 gets float32 hidden)
        if torch.is_autocast_enabled(device):
            compute = torch.get_autocast_dtype(device)
        else:
            compute = hidden.dtype
        stats = any(k in outputs for k in ("log_sum_sq_probs", "mean_logits", "is_top1"))
        want_entropy = "entropy" in outputs
        # fp32 master weights under autocast: the driver rounds the weight to the autocast
        # dtype one vocabulary slice at a time and accumulates dW in fp32 against it
        cast = weight.dtype == torch.float32 and compute in (torch.bfloat16, torch.float16)
        opts = HeadOptions(
            temperature=float(temperature),
            logit_scale=float(logit_scale),
            softcap=final_logit_softcapping,
            backend=cls.backend,
            chunk_rows=cls.chunk_rows,
            cast_weight=cast,
        )
        with torch.autocast(device, enabled=False):
            out = fused_head(
                hidden.to(compute),
                weight if cast else weight.to(compute),
                targets,
                None if bias is None else bias.to(compute),
                options=opts,
                entropy=want_entropy,
                stats=stats,
            )

        def asked(name: str, value: torch.Tensor | None) -> torch.Tensor | None:
            return value if name in outputs else None

        return (
            out.logps,
            out.entropy,
            asked("log_sum_sq_probs", out.log_sum_sq_probs),
            asked("mean_logits", out.mean_logits),
            asked("is_top1", out.is_top1),
        )


def _compact_everywhere(device: torch.device) -> bool:
    """TRL scores only the labelled positions where this returns True."""
    return True


def enable(*, backend: str = "auto", chunk_rows: int | None = None) -> None:
    """Routes TRL's fused LM-head log-probs through fastalign, process-wide, until
    :func:`disable`. Idempotent; a second call updates ``backend`` / ``chunk_rows``.

    Args:
        backend: ``"auto"`` (Triton on CUDA, chunked torch elsewhere), ``"triton"``,
            ``"torch"`` or ``"reference"`` (materialized logits; for debugging).
        chunk_rows: tokens per chunk of the torch path (default: about 128 MB of float32
            logits per chunk); results do not depend on it.

    Raises:
        ImportError: TRL is missing, or too old to have the fused LM-head path.
    """
    global _saved
    if backend not in ("auto", "triton", "torch", "reference"):
        raise InvalidInputError(
            f"backend must be 'auto', 'triton', 'torch' or 'reference', got {backend!r}"
        )
    if chunk_rows is not None and (
        isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1
    ):
        raise InvalidInputError(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
    utils = _trl_utils()
    with _lock:
        if _saved is None:
            _saved = {
                "_ChunkedLogProbFunction": utils._ChunkedLogProbFunction,
                "_use_triton": utils._use_triton,
            }
        FastalignLogProbFunction.backend = backend
        FastalignLogProbFunction.chunk_rows = chunk_rows
        utils._ChunkedLogProbFunction = FastalignLogProbFunction
        utils._use_triton = _compact_everywhere


def disable() -> None:
    """Restores TRL's own log-prob function (a no-op when not enabled)."""
    global _saved
    with _lock:
        if _saved is None:
            return
        utils = _trl_utils()
        for name, value in _saved.items():
            setattr(utils, name, value)
        _saved = None


def is_enabled() -> bool:
    """Whether TRL's log-probs currently go through fastalign."""
    return _saved is not None


@contextlib.contextmanager
def enabled(*, backend: str = "auto", chunk_rows: int | None = None) -> Iterator[None]:
    """:func:`enable` for the duration of a ``with`` block, then the previous state."""
    was = is_enabled()
    previous = (FastalignLogProbFunction.backend, FastalignLogProbFunction.chunk_rows)
    enable(backend=backend, chunk_rows=chunk_rows)
    try:
        yield
    finally:
        if was:
            enable(backend=previous[0], chunk_rows=previous[1])
        else:
            disable()
