"""``fastalign.token_divergence``: argument checks, masked rows dropped, the autograd
function of :mod:`fastalign.divergence._function`."""

from __future__ import annotations

from typing import Any

import torch

from fastalign import _backend
from fastalign._validate import (
    check_bool,
    check_choice,
    check_count,
    check_float_tensor,
    check_range,
    check_tensor,
)
from fastalign.divergence._function import KINDS, Spec, TwoHead, mode_of
from fastalign.errors import BackendUnavailableError, ShapeError
from fastalign.logprobs import _tiling

# the CPU tile per model: 32 MiB of fp32 logits (a [R, V] row block over the whole
# vocabulary); the row math holds ~4 such tiles at once
_CPU_TILE_BYTES = 32 * 2**20


def _check_head(hidden: Any, weight: Any, bias: Any, who: str) -> None:
    check_float_tensor(hidden, f"{who}_hidden")
    check_float_tensor(weight, f"{who}_weight")
    if hidden.ndim != 2 or weight.ndim != 2:
        raise ShapeError(
            f"{who}_hidden must be [N, H] and {who}_weight [V, H]; got "
            f"{tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    if weight.shape[1] != hidden.shape[1]:
        raise ShapeError(
            f"{who}_weight must be [V, {hidden.shape[1]}] to match {who}_hidden, got "
            f"{tuple(weight.shape)}"
        )
    if weight.device != hidden.device:
        raise ShapeError(f"{who}_weight is on {weight.device} but {who}_hidden on {hidden.device}")
    if bias is not None:
        check_float_tensor(bias, f"{who}_bias")
        check_tensor(bias, f"{who}_bias", (weight.shape[0],), like=f"{who}_weight's rows")
        if bias.device != hidden.device:
            raise ShapeError(f"{who}_bias is on {bias.device} but {who}_hidden on {hidden.device}")


def token_divergence(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    *,
    kind: str = "jsd",
    beta: float = 0.5,
    temperature: float = 1.0,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    student_logit_scale: float = 1.0,
    teacher_logit_scale: float = 1.0,
    student_softcap: float | None = None,
    teacher_softcap: float | None = None,
    mask: torch.Tensor | None = None,
    return_entropy: bool = False,
    backend: str = "auto",
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Per-token divergence between a student's and a teacher's next-token distributions,
    from both models' last hidden states and LM heads, never holding a ``[N, V]`` tensor of
    either model.

    Each model's logits: ``z = softcap * tanh(((h W^T + b) * logit_scale) / softcap) /
    temperature``; ``p = softmax(z_student)``, ``q = softmax(z_teacher)``. ``kind``:

    - ``"jsd"``: TRL's generalized Jensen-Shannon divergence (GKD, Agarwal et al. 2024):
      ``beta KL(q || m) + (1 - beta) KL(p || m)`` with ``m = (1 - beta) p + beta q``;
      ``beta = 0`` is ``KL(q || p)`` and ``beta = 1`` is ``KL(p || q)``, as TRL's
      ``generalized_jsd_loss`` and ``ChunkedDivergenceFunction`` define them;
    - ``"forward_kl"``: ``KL(q || p)`` (the teacher's expectation: SFT on soft labels);
    - ``"reverse_kl"``: ``KL(p || q)`` (mode seeking; with a frozen reference model as the
      "teacher", the exact per-token KL(pi || pi_ref) that ``rl.kl`` estimates);
    - ``"tvd"``: total variation ``sum |p - q| / 2``.

    Differentiable w.r.t. the student's hidden states, weight and bias; the teacher is frozen
    (no teacher gradient is formed). Rows where ``mask`` is 0 are dropped before any matmul
    and get 0.

    Args:
        student_hidden, student_weight: ``[N, H_s]``, ``[V, H_s]``.
        teacher_hidden, teacher_weight: ``[N, H_t]``, ``[V, H_t]`` (the same ``V``).
        kind, beta: the divergence (above); ``beta`` in ``[0, 1]``, read by ``"jsd"`` only.
        temperature: applied to both models' logits.
        student_bias, teacher_bias: ``[V]`` LM-head biases.
        student_logit_scale, teacher_logit_scale, student_softcap, teacher_softcap: each
            model's logit transform (Cohere's scale, Gemma's final-logit softcapping).
        mask: ``[N]`` rows to score (non-zero).
        return_entropy: also return the student's entropy per token (not differentiable).
        backend: ``"auto"`` / ``"torch"``: the tiling driver with torch row math (cuBLAS /
            BLAS GEMMs for both heads); ``"reference"``: the materialized computation. (The
            Triton row kernel for two heads is not built yet: ``"triton"`` raises.)
        chunk_rows, chunk_vocab: the driver's tiles (default: on CUDA 4096 x 4096; elsewhere
            one slice over the vocabulary, rows for a 32 MiB fp32 tile per model).

    Returns:
        ``[N]`` divergences (float32; float64 for a float64 student), or ``(divergence,
        entropy)``.

    Example:
        >>> import torch, fastalign
        >>> g = torch.Generator().manual_seed(0)
        >>> hs, ws = torch.randn(3, 8, generator=g), torch.randn(50, 8, generator=g)
        >>> d = fastalign.token_divergence(hs, ws, hs, ws, kind="reverse_kl")
        >>> d.abs().max() < 1e-6  # identical heads
        tensor(True)
    """
    _check_head(student_hidden, student_weight, student_bias, "student")
    _check_head(teacher_hidden, teacher_weight, teacher_bias, "teacher")
    n, vocab = student_hidden.shape[0], student_weight.shape[0]
    if teacher_hidden.shape[0] != n:
        raise ShapeError(f"teacher_hidden has {teacher_hidden.shape[0]} rows, student_hidden {n}")
    if teacher_weight.shape[0] != vocab:
        raise ShapeError(
            f"the vocabularies differ: student_weight has {vocab} rows, teacher_weight "
            f"{teacher_weight.shape[0]}"
        )
    if vocab == 0:
        raise ShapeError("the vocabulary is empty (student_weight has no rows)")
    if teacher_hidden.device != student_hidden.device:
        raise ShapeError(
            f"teacher_hidden is on {teacher_hidden.device} but student_hidden on "
            f"{student_hidden.device}"
        )
    kind = check_choice(kind, "kind", KINDS)
    beta = check_range(beta, "beta", 0.0, 1.0, hi_open=False)
    s_tr = _tiling.make_transform(temperature, student_logit_scale, student_softcap)
    t_tr = _tiling.Transform(s_tr.temperature,
                             *_student_like(teacher_logit_scale, teacher_softcap))  # fmt: skip
    return_entropy = check_bool(return_entropy, "return_entropy")
    chunk_rows = check_count(chunk_rows, "chunk_rows")
    chunk_vocab = check_count(chunk_vocab, "chunk_vocab")
    if mask is not None:
        check_tensor(mask, "mask", (n,), like="student_hidden's rows")
    which = _backend.resolve(backend, student_hidden.device.type)
    if which == "triton":
        if backend == "triton":
            raise BackendUnavailableError(
                "the Triton row kernel of token_divergence is not built yet; backend='torch' "
                "runs the same tiling (cuBLAS GEMMs) with torch row math on CUDA"
            )
        which = "torch"
    if which == "reference":
        from fastalign.reference.divergence import token_divergence as ref

        return ref(
            student_hidden, student_weight, teacher_hidden, teacher_weight, kind=kind,
            beta=beta, temperature=temperature, student_bias=student_bias,
            teacher_bias=teacher_bias, student_logit_scale=student_logit_scale,
            teacher_logit_scale=teacher_logit_scale, student_softcap=student_softcap,
            teacher_softcap=teacher_softcap, mask=mask, return_entropy=return_entropy,
        )  # fmt: skip
    compute = _tiling.compute_dtype(student_hidden.dtype)
    keep = None if mask is None else (mask != 0).nonzero().squeeze(1)
    hs = student_hidden if keep is None else student_hidden.index_select(0, keep)
    ht = teacher_hidden if keep is None else teacher_hidden.index_select(0, keep)
    m = hs.shape[0]
    cuda = student_hidden.device.type == "cuda"
    tiles = _tiling.plan(m, vocab, student_hidden.device, chunk_rows=chunk_rows,
                         chunk_vocab=chunk_vocab,
                         memory_budget=None if cuda else _CPU_TILE_BYTES)  # fmt: skip
    spec = Spec(mode_of(kind, beta), beta, s_tr, t_tr, tiles)
    div, ent = TwoHead.apply(hs, student_weight, student_bias, ht, teacher_weight,
                             teacher_bias, spec)  # fmt: skip
    if keep is not None:
        full = torch.zeros(n, dtype=compute, device=student_hidden.device)
        div = full.index_put((keep,), div)
        ent = torch.zeros_like(full).index_put_((keep,), ent.detach())
    return (div, ent) if return_entropy else div


def _student_like(logit_scale: float, softcap: float | None) -> tuple[float, float | None]:
    """The teacher's scale and softcap, checked under their own names."""
    from fastalign._validate import check_positive

    return (
        check_positive(logit_scale, "teacher_logit_scale"),  # type: ignore[return-value]
        check_positive(softcap, "teacher_softcap", allow_none=True),
    )
