"""``fastalign.token_divergence``: argument checks, masked rows dropped, the autograd
function of :mod:`fastalign.divergence._function`."""

from __future__ import annotations

import torch

from fastalign import _backend
from fastalign._validate import (
    check_bool,
    check_choice,
    check_count,
    check_finite_where,
    check_float_tensor,
    check_model_head,
    check_range,
    check_tensor,
)
from fastalign.divergence._function import KINDS, Spec, TwoHead, mode_of
from fastalign.errors import BackendUnavailableError, InvalidInputError, ShapeError
from fastalign.logprobs import _tiling

# the CPU tile per model: 32 MiB of fp32 logits (a [R, V] row block over the whole
# vocabulary); the row math holds ~4 such tiles at once
_CPU_TILE_BYTES = 32 * 2**20


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
    check_model_head(student_hidden, student_weight, student_bias, "student")
    check_model_head(teacher_hidden, teacher_weight, teacher_bias, "teacher")
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


def topk_divergence(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    topk_logprobs: torch.Tensor,
    topk_ids: torch.Tensor,
    *,
    kind: str = "forward_kl",
    beta: float = 0.5,
    tail: str = "renormalize",
    temperature: float = 1.0,
    student_bias: torch.Tensor | None = None,
    student_logit_scale: float = 1.0,
    student_softcap: float | None = None,
    mask: torch.Tensor | None = None,
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
) -> torch.Tensor:
    """Per-token divergence between a student (hidden states + LM head, no ``[N, V]``
    logits) and a teacher served as its top-k log-probs and token ids (what an inference
    server returns), so distillation needs no teacher head.

    The two distributions are compared over the teacher's ``k`` tokens, the vocabulary's
    tail handled by ``tail``:

    - ``"renormalize"``: both restricted to the ``k`` tokens and renormalized there (the
      tail is dropped; with every token given, the full distributions);
    - ``"bucket"``: ``k + 1`` outcomes, the tail lumped into one (mass ``1 - sum`` for each
      model; a mass below ``8 k eps`` of the dtype it was computed in is rounding, i.e. 0;
      ``reverse_kl`` is ``inf`` where the student has tail mass and the teacher none).

    ``kind`` and ``beta`` as :func:`token_divergence` (``"forward_kl"``: ``KL(teacher ||
    student)``, the usual soft-label distillation). The student's logits get ``temperature``,
    ``student_logit_scale`` and ``student_softcap``; the teacher's log-probs are used as given.

    Args:
        student_hidden, student_weight: ``[N, H]``, ``[V, H]``.
        topk_logprobs: ``[N, k]`` the teacher's log-probs (``<= 0``, finite on scored rows).
        topk_ids: ``[N, k]`` their token ids in ``[0, V)``, distinct within a row.
        mask: ``[N]`` rows to score; the others get 0 and no gradient.

    Returns:
        ``[N]`` divergences (float32; float64 for a float64 student), differentiable w.r.t.
        the student's hidden states, weight and bias.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> h, w = torch.randn(2, 4, generator=g), torch.randn(6, 4, generator=g)
        >>> full = torch.log_softmax(torch.randn(2, 6, generator=g), -1)  # a teacher
        >>> ids = torch.arange(6).repeat(2, 1)  # k = V: the full teacher
        >>> d = topk_divergence(h, w, full, ids, kind="forward_kl")
        >>> want = (full.exp() * (full - torch.log_softmax(h @ w.T, -1))).sum(-1)
        >>> bool(torch.allclose(d, want))
        True
    """
    from fastalign.divergence import _topk
    from fastalign.divergence._function import mode_of

    check_model_head(student_hidden, student_weight, student_bias, "student")
    n, vocab = student_hidden.shape[0], student_weight.shape[0]
    check_float_tensor(topk_logprobs, "topk_logprobs")
    if topk_logprobs.ndim != 2 or topk_logprobs.shape[0] != n or topk_logprobs.shape[1] == 0:
        raise ShapeError(
            f"topk_logprobs must be [{n}, k] with k >= 1 (student_hidden has {n} rows), got "
            f"{tuple(topk_logprobs.shape)}"
        )
    k = topk_logprobs.shape[1]
    check_tensor(topk_ids, "topk_ids", (n, k), like="topk_logprobs")
    if topk_ids.dtype.is_floating_point or topk_ids.dtype == torch.bool:
        raise TypeError(f"topk_ids must be an integer tensor, not {topk_ids.dtype}")
    kind = check_choice(kind, "kind", KINDS)
    beta = check_range(beta, "beta", 0.0, 1.0, hi_open=False)
    tail = check_choice(tail, "tail", _topk.TAILS)
    transform = _tiling.make_transform(temperature, student_logit_scale, student_softcap)
    chunk_rows = check_count(chunk_rows, "chunk_rows")
    chunk_vocab = check_count(chunk_vocab, "chunk_vocab")
    if mask is not None:
        check_tensor(mask, "mask", (n,), like="student_hidden's rows")
    keep = (
        torch.arange(n, device=student_hidden.device)
        if mask is None
        else (mask != 0).nonzero().squeeze(1)
    )
    ids = topk_ids.index_select(0, keep).long()
    lp_t = topk_logprobs.index_select(0, keep).detach().double()
    if ids.numel() and bool(((ids < 0) | (ids >= vocab)).any()):
        bad = ((ids < 0) | (ids >= vocab)).nonzero()[0]
        raise InvalidInputError(
            f"topk_ids must be in [0, {vocab}): row {int(keep[bad[0]])} has {int(ids[tuple(bad)])}"
        )
    if ids.numel() and bool((ids.sort(1).values.diff(dim=1) == 0).any()):
        row = int(keep[(ids.sort(1).values.diff(dim=1) == 0).any(1).nonzero()[0, 0]])
        raise InvalidInputError(f"topk_ids repeat a token in row {row}")
    check_finite_where(lp_t, "topk_logprobs", None)
    if bool((lp_t > 1e-6).any()):
        raise InvalidInputError("topk_logprobs must be log-probabilities (<= 0)")
    lp_t = lp_t.clamp(max=0.0)
    compute = _tiling.compute_dtype(student_hidden.dtype)
    hs = student_hidden.index_select(0, keep)
    budget = None if student_hidden.is_cuda else _CPU_TILE_BYTES
    tiles = _tiling.plan(hs.shape[0], vocab, student_hidden.device, chunk_rows=chunk_rows,
                         chunk_vocab=chunk_vocab, memory_budget=budget)  # fmt: skip
    a = _topk.LogpsAt.apply(hs, student_weight, student_bias, ids, transform, tiles).double()
    div = _topk.divergence(_topk.outcomes(a, tail, compute),
                           _topk.outcomes(lp_t, tail, topk_logprobs.dtype),
                           mode_of(kind, beta), beta).to(compute)  # fmt: skip
    if mask is None:
        return div
    full = torch.zeros(n, dtype=compute, device=student_hidden.device)
    return full.index_put((keep,), div)


def token_unlikelihood(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    logit_scale: float = 1.0,
    softcap: float | None = None,
    ignore_index: int = -100,
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
) -> torch.Tensor:
    """The unlikelihood term ``-log(1 - p(label))`` per token (Welleck et al. 2020; CUT's
    token-level term on flagged tokens), on the fused head (no ``[N, V]`` logits): computed
    as ``logsumexp(z) - logsumexp(z without the label)``, both folded over the tiles, so no
    ``1 - p`` is formed and ``p`` near 1 keeps full precision (``p = 1 - 1e-23`` gives
    52.96..., not ``inf``). Tokens whose label is ``ignore_index`` (use it for the tokens
    not flagged) get 0 and no gradient. The logit transform as :func:`fastalign.token_logps`.

    Example:
        >>> import torch
        >>> h, w = torch.zeros(2, 3), torch.zeros(4, 3)  # uniform over 4 tokens
        >>> token_unlikelihood(h, w, torch.tensor([1, -100]))  # -log(3/4)
        tensor([0.2877, 0.0000])
    """
    from fastalign._validate import check_head, check_labels
    from fastalign.divergence._topk import Unlikelihood

    n, vocab = check_head(hidden, weight, labels, bias)
    check_labels(labels, vocab, ignore_index)
    if vocab < 2:
        raise ShapeError("token_unlikelihood needs a vocabulary of at least 2 tokens")
    transform = _tiling.make_transform(temperature, logit_scale, softcap)
    chunk_rows = check_count(chunk_rows, "chunk_rows")
    chunk_vocab = check_count(chunk_vocab, "chunk_vocab")
    compute = _tiling.compute_dtype(hidden.dtype)
    keep = (labels != ignore_index).nonzero().squeeze(1)
    h = hidden.index_select(0, keep)
    budget = None if hidden.is_cuda else _CPU_TILE_BYTES
    tiles = _tiling.plan(h.shape[0], vocab, hidden.device, chunk_rows=chunk_rows,
                         chunk_vocab=chunk_vocab, memory_budget=budget)  # fmt: skip
    out = Unlikelihood.apply(h, weight, bias, labels.index_select(0, keep).long(), transform,
                             tiles)  # fmt: skip
    full = torch.zeros(n, dtype=compute, device=hidden.device)
    return full.index_put((keep,), out)
