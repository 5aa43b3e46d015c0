"""TRL integration: TRL's trainers compute their log-probs through fastalign.

Recent TRL releases (1.x) never build full logits in their trainers: ``add_fused_lm_head``
patches the model so that ``model(..., labels=..., fused_lm_head=True)`` runs the backbone and
hands the last hidden states and the LM head's weight to one chunked log-prob function
(``trl.trainer.utils._ChunkedLogProbFunction``). DPOTrainer, KTOTrainer, GRPOTrainer,
RLOOTrainer and SFTTrainer all go through it. :func:`enable` swaps that one function for
fastalign's fused head (the tiling driver: cuBLAS GEMMs and Triton row kernels on CUDA, the
torch path elsewhere) and makes TRL hand over only the positions it scores (prompt and padding
rows are dropped before any matmul, on every device).

``DistillationTrainer``'s two-head divergence (TRL's ``ChunkedDivergenceFunction``) goes
through :func:`fastalign.token_divergence` (:class:`FastalignDivergenceFunction`), with only
the completion positions projected on every device.

It also routes stock ``DPOTrainer``'s loss through fastalign's 3-pass fused DPO step
(``dpo_loss=True``, the default; ``fastalign.integrations._trl_dpo``): the policy's head is
captured as TRL hands it over, and the gradient is formed in the forward, one group of pairs
at a time, so the backward recomputes no logits. Loss types, ``loss_weights``,
``f_divergence_type``, ``label_smoothing``, ``ld_alpha`` and ``use_weighting`` follow TRL
1.16's definitions, and the logged metrics are TRL's. Everything else stays TRL's: data
collation, reference-model handling, the other trainers' losses, logging and the optimizer.

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

__all__ = [
    "FastalignDivergenceFunction",
    "FastalignLogProbFunction",
    "disable",
    "enable",
    "enabled",
    "is_enabled",
]

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
    memory_budget: int | None = None  # of the fused DPO loss's kept tiles

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

        def asked(name: str, value: torch.Tensor | None) -> torch.Tensor | None:
            return value if name in outputs else None

        from fastalign.integrations import _trl_dpo

        captured = _trl_dpo.capturing()
        if captured is not None:  # the fused DPO loss takes the head from here
            from fastalign.logprobs._tiling import make_transform

            tf = make_transform(opts.temperature, opts.logit_scale, opts.softcap)
            captured.append(dict(hidden=hidden, weight=weight, bias=bias, targets=targets,
                                 compute=compute, transform=tf))  # fmt: skip
            # zeros that still depend on the hidden states and the head, so that DDP's
            # unused-parameter search finds every parameter the fused loss will reach
            zeros = hidden.detach().new_zeros(targets.shape[0], dtype=torch.float32)
            if hidden.requires_grad or weight.requires_grad:
                link = hidden.reshape(-1)[:1].float().sum() + weight.reshape(-1)[:1].float().sum()
                zeros = zeros + 0.0 * link
            return (
                zeros,
                zeros.clone() if want_entropy else None,
                asked("log_sum_sq_probs", zeros.clone()),
                asked("mean_logits", zeros.clone()),
                asked("is_top1", zeros.bool()),
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

        return (
            out.logps,
            out.entropy,
            asked("log_sum_sq_probs", out.log_sum_sq_probs),
            asked("mean_logits", out.mean_logits),
            asked("is_top1", out.is_top1),
        )


class FastalignDivergenceFunction:
    """A drop-in for TRL's ``ChunkedDivergenceFunction`` (what ``DistillationTrainer``'s
    ``_chunked_divergence_loss`` calls): the same arguments, the same two outputs (per-token
    divergence with the student's gradients, the student's entropy without), computed by
    :func:`fastalign.token_divergence` (``kind="jsd"``: ``beta`` 0 / 1 are TRL's forward /
    reverse KL). ``backend`` and ``chunk_rows`` are set by :func:`enable`."""

    backend: str = "auto"
    chunk_rows: int | None = None

    @classmethod
    def apply(
        cls,
        student_hidden: torch.Tensor,
        student_weight: torch.Tensor,
        student_bias: torch.Tensor | None,
        teacher_hidden: torch.Tensor,
        teacher_weight: torch.Tensor,
        teacher_bias: torch.Tensor | None,
        beta: float,
        temperature: float = 1.0,
        student_logit_scale: float = 1.0,
        student_final_logit_softcapping: float | None = None,
        teacher_logit_scale: float = 1.0,
        teacher_final_logit_softcapping: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from fastalign.divergence import token_divergence

        for w in (student_weight, teacher_weight):
            if hasattr(w, "ds_id"):  # a DeepSpeed ZeRO-3 parameter
                raise NotImplementedError(
                    "fastalign.integrations.trl does not support DeepSpeed ZeRO-3 partitioned "
                    "LM heads yet; call fastalign.integrations.trl.disable()"
                )
        device = student_hidden.device.type

        def dtype_of(h: torch.Tensor) -> torch.dtype:  # TRL's rule: the autocast dtype if on
            autocast = torch.is_autocast_enabled(device)
            return torch.get_autocast_dtype(device) if autocast else h.dtype

        s_dt, t_dt = dtype_of(student_hidden), dtype_of(teacher_hidden)
        backend = "torch" if cls.backend in ("auto", "triton") else cls.backend
        with torch.autocast(device, enabled=False):
            div, ent = token_divergence(
                student_hidden.to(s_dt), student_weight.to(s_dt), teacher_hidden.to(t_dt),
                teacher_weight.to(t_dt), kind="jsd", beta=float(beta),
                temperature=float(temperature),
                student_bias=None if student_bias is None else student_bias.to(s_dt),
                teacher_bias=None if teacher_bias is None else teacher_bias.to(t_dt),
                student_logit_scale=float(student_logit_scale),
                teacher_logit_scale=float(teacher_logit_scale),
                student_softcap=student_final_logit_softcapping,
                teacher_softcap=teacher_final_logit_softcapping, return_entropy=True,
                backend=backend, chunk_rows=cls.chunk_rows,
            )  # fmt: skip
        return div.float(), ent.float()


def _route_divergence(on: bool) -> None:
    """Installs (or removes) the divergence drop-in in TRL's DistillationTrainer module."""
    try:
        from trl.trainer import distillation_trainer as dt
    except ImportError:  # TRL without DistillationTrainer
        return
    if not hasattr(dt, "ChunkedDivergenceFunction"):
        return
    if on:
        _saved.setdefault("dt.ChunkedDivergenceFunction", dt.ChunkedDivergenceFunction)
        _saved.setdefault("dt._use_triton", dt._use_triton)
        dt.ChunkedDivergenceFunction = FastalignDivergenceFunction
        dt._use_triton = _compact_everywhere  # score only the completion rows, on any device
    elif _saved is not None:
        for name in ("ChunkedDivergenceFunction", "_use_triton"):
            if "dt." + name in _saved:
                setattr(dt, name, _saved["dt." + name])


def _compact_everywhere(device: torch.device) -> bool:
    """TRL scores only the labelled positions where this returns True."""
    return True


def enable(
    *,
    backend: str = "auto",
    chunk_rows: int | None = None,
    dpo_loss: bool = True,
    memory_budget: int | None = None,
) -> None:
    """Routes TRL's fused LM-head log-probs through fastalign, process-wide, until
    :func:`disable`. Idempotent; a second call updates the options.

    Args:
        backend: ``"auto"`` (Triton on CUDA, chunked torch elsewhere), ``"triton"``,
            ``"torch"`` or ``"reference"`` (materialized logits; for debugging).
        chunk_rows: tokens per chunk of the torch path (default: about 128 MB of float32
            logits per chunk); results do not depend on it.
        dpo_loss: also route stock ``DPOTrainer``'s loss through the 3-pass fused DPO step
            (the gradient formed in the forward; see
            ``fastalign.integrations._trl_dpo``); what it does not cover runs TRL's own
            loss on fastalign's log-probs, logged once.
        memory_budget: bytes of the fused DPO step's kept logits tiles per group of pairs
            (default 1 GiB on CUDA, 128 MiB elsewhere; see
            :class:`fastalign.losses.FusedLinearPreferenceLoss`).

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
    if not isinstance(dpo_loss, bool):
        raise TypeError(f"dpo_loss must be a bool, not {type(dpo_loss).__name__}")
    from fastalign._validate import check_count

    memory_budget = check_count(memory_budget, "memory_budget")
    utils = _trl_utils()
    with _lock:
        if _saved is None:
            _saved = {
                "_ChunkedLogProbFunction": utils._ChunkedLogProbFunction,
                "_use_triton": utils._use_triton,
            }
        FastalignLogProbFunction.backend = backend
        FastalignLogProbFunction.chunk_rows = chunk_rows
        FastalignLogProbFunction.memory_budget = memory_budget
        FastalignDivergenceFunction.backend = backend
        FastalignDivergenceFunction.chunk_rows = chunk_rows
        utils._ChunkedLogProbFunction = FastalignLogProbFunction
        utils._use_triton = _compact_everywhere
        _route_dpo_loss(dpo_loss)
        _route_divergence(True)


_dpo_original: Any = None


def _route_dpo_loss(on: bool) -> None:
    """Installs (or removes) the fused DPO loss on ``trl.DPOTrainer._compute_loss``."""
    global _dpo_original
    try:
        from trl.trainer.dpo_trainer import DPOTrainer
    except ImportError:  # pragma: no cover - TRL without DPOTrainer
        return
    if on and _dpo_original is None:
        from fastalign.integrations import _trl_dpo

        original = DPOTrainer._compute_loss

        def _compute_loss(self, model, inputs, return_outputs):
            return _trl_dpo.compute_loss(
                original, self, model, inputs, return_outputs, FastalignLogProbFunction
            )

        _dpo_original = original
        DPOTrainer._compute_loss = _compute_loss
    elif not on and _dpo_original is not None:
        DPOTrainer._compute_loss = _dpo_original
        _dpo_original = None


def disable() -> None:
    """Restores TRL's own log-prob function (a no-op when not enabled)."""
    global _saved
    with _lock:
        if _saved is None:
            return
        utils = _trl_utils()
        _route_divergence(False)
        for name, value in _saved.items():
            if not name.startswith("dt."):
                setattr(utils, name, value)
        _route_dpo_loss(False)
        _saved = None


def is_enabled() -> bool:
    """Whether TRL's log-probs currently go through fastalign."""
    return _saved is not None


@contextlib.contextmanager
def enabled(
    *,
    backend: str = "auto",
    chunk_rows: int | None = None,
    dpo_loss: bool = True,
    memory_budget: int | None = None,
) -> Iterator[None]:
    """:func:`enable` for the duration of a ``with`` block, then the previous state."""
    was = is_enabled()
    previous = (
        FastalignLogProbFunction.backend,
        FastalignLogProbFunction.chunk_rows,
        _dpo_original is not None,
        FastalignLogProbFunction.memory_budget,
    )
    enable(backend=backend, chunk_rows=chunk_rows, dpo_loss=dpo_loss, memory_budget=memory_budget)
    try:
        yield
    finally:
        if was:
            enable(backend=previous[0], chunk_rows=previous[1], dpo_loss=previous[2],
                   memory_budget=previous[3])  # fmt: skip
        else:
            disable()
