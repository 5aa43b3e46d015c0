"""token_logps / sequence_logps: torch (chunked) and triton (interpreter) backends against a
float64 materialized reference, values and every gradient, plus the spec's properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastalign
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference.logprobs import token_logps as ref_token_logps

from _numerics import assert_fp32_contract, assert_rel


def make_case(n, h, v, seed, *, mask_frac=0.2, bias=False, dtype=torch.float32, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64) * (scale / math.sqrt(h))
    b = torch.randn(v, generator=g, dtype=torch.float64) if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    labels[torch.rand(n, generator=g) < mask_frac] = -100
    g_lp = torch.randn(n, generator=g, dtype=torch.float64)
    g_ent = torch.randn(n, generator=g, dtype=torch.float64)

    def cast(t):
        return None if t is None else t.to(dtype)

    return cast(hidden), cast(weight), cast(b), labels, g_lp, g_ent


def run(fn, hidden, weight, bias, labels, g_lp, g_ent, *, entropy, **kw):
    """Outputs and gradients (hidden, weight[, bias]) of sum(g_lp*logp [+ g_ent*entropy])."""
    leaves = [
        hidden.detach().clone().requires_grad_(True),
        weight.detach().clone().requires_grad_(True),
    ]
    b = None
    if bias is not None:
        b = bias.detach().clone().requires_grad_(True)
        leaves.append(b)
    out = fn(leaves[0], leaves[1], labels, bias=b, return_entropy=entropy, **kw)
    outs = out if isinstance(out, tuple) else (out,)
    loss = (outs[0] * g_lp.to(outs[0].dtype)).sum()
    if entropy:
        loss = loss + (outs[1] * g_ent.to(outs[1].dtype)).sum()
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], list(grads)


def check_against_float64(case, *, entropy, backend, tol_out, tol_grad, **kw):
    """fp32 outputs and gradients of ``backend`` vs float64, under the contract of
    _numerics.assert_fp32_contract (PyTorch's own fp32 path is the fallback yardstick)."""
    hidden, weight, bias, labels, g_lp, g_ent = case
    outs, grads = run(fastalign.token_logps, *case, entropy=entropy, backend=backend, **kw)
    kw.pop("chunk_rows", None)
    kw.pop("chunk_vocab", None)

    def d(t):
        return None if t is None else t.double()

    ref_outs, ref_grads = run(
        ref_token_logps, d(hidden), d(weight), d(bias), labels, g_lp, g_ent, entropy=entropy, **kw
    )
    nat_outs, nat_grads = run(
        ref_token_logps, hidden, weight, bias, labels, g_lp, g_ent, entropy=entropy, **kw
    )
    for name, got, want, nat in zip(("logps", "entropy"), outs, ref_outs, nat_outs, strict=False):
        assert_fp32_contract(got, want, nat, tol_out, name)
    for name, got, want, nat in zip(
        ("dhidden", "dweight", "dbias"), grads, ref_grads, nat_grads, strict=False
    ):
        assert_fp32_contract(got, want, nat, tol_grad, name)
    return outs, grads


transforms = st.sampled_from(
    [
        {},
        {"temperature": 0.7},
        {"logit_scale": 1.7},
        {"softcap": 4.0},
        {"softcap": 2.5, "temperature": 1.3, "logit_scale": 0.6},
    ]
)


def head_cases(n: int, h: int, masks: list[float], transform) -> dict:
    """Strategies of one fused-head call: up to ``n`` rows of width up to ``h``, the seed,
    the masked fraction, bias, entropy and the logit transform (the vocabulary: the caller's)."""
    return dict(n=st.integers(0, n), h=st.integers(1, h), seed=st.integers(0, 2**31 - 1),
                mask_frac=st.sampled_from(masks), bias=st.booleans(), entropy=st.booleans(),
                transform=transform)  # fmt: skip


HEAD_CASES = head_cases(40, 40, [0.0, 0.3, 1.0], transforms)


@given(
    **HEAD_CASES,
    v=st.integers(1, 120),
    chunk_rows=st.integers(1, 50),
    chunk_vocab=st.one_of(st.none(), st.integers(1, 130)),
)
def test_torch_backend_fp32_vs_float64(
    n, h, v, seed, mask_frac, bias, entropy, transform, chunk_rows, chunk_vocab
):
    case = make_case(n, h, v, seed, mask_frac=mask_frac, bias=bias)
    outs, grads = check_against_float64(
        case,
        entropy=entropy,
        backend="torch",
        tol_out=1e-5,
        tol_grad=1e-4,
        chunk_rows=chunk_rows,
        chunk_vocab=chunk_vocab,
        **transform,
    )
    labels = case[3]
    masked = labels == -100
    assert outs[0].dtype == torch.float32
    assert torch.all(outs[0] <= 0)
    assert torch.all(outs[0][masked] == 0)
    assert torch.all(grads[0][masked] == 0)  # exactly zero gradient on masked rows
    if entropy:
        ent = outs[1]
        assert torch.all(ent >= 0)
        assert torch.all(ent <= math.log(v) + 1e-5)
        assert torch.all(ent[masked] == 0)


@given(
    n=st.integers(1, 30),
    v=st.integers(2, 90),
    seed=st.integers(0, 2**31 - 1),
    rows_a=st.integers(1, 30),
    rows_b=st.integers(1, 30),
    vocab_a=st.integers(1, 90),
    vocab_b=st.one_of(st.none(), st.integers(1, 90)),
)
def test_chunk_size_independence_float64(n, v, seed, rows_a, rows_b, vocab_a, vocab_b):
    """Row blocks and vocabulary slices (ragged last ones included) change nothing but
    rounding."""
    case = make_case(n, 13, v, seed, bias=True, dtype=torch.float64)
    opts = dict(entropy=True, backend="torch", softcap=3.0)
    res = [
        run(fastalign.token_logps, *case, chunk_rows=r, chunk_vocab=c, **opts)
        for r, c in ((rows_a, vocab_a), (rows_b, vocab_b))
    ]
    for a, b in zip(res[0][0] + res[0][1], res[1][0] + res[1][1], strict=True):
        assert_rel(a, b, 1e-12, "chunking")


@given(n=st.integers(1, 25), seed=st.integers(0, 2**31 - 1))
def test_row_permutation_permutes_outputs(n, seed):
    hidden, weight, _, labels, _, _ = make_case(n, 9, 31, seed, dtype=torch.float64)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    lp, ent = fastalign.token_logps(hidden, weight, labels, return_entropy=True, backend="torch")
    lp_p, ent_p = fastalign.token_logps(
        hidden[perm], weight, labels[perm], return_entropy=True, backend="torch"
    )
    assert_rel(lp_p, lp[perm], 1e-13, "logps")
    assert_rel(ent_p, ent[perm], 1e-13, "entropy")


@given(seed=st.integers(0, 2**31 - 1), temperature=st.floats(0.2, 5.0))
def test_temperature_equals_scaling_the_weight(seed, temperature):
    hidden, weight, _, labels, _, _ = make_case(17, 8, 29, seed, dtype=torch.float64)
    a = fastalign.token_logps(hidden, weight, labels, temperature=temperature, backend="torch")
    b = fastalign.token_logps(hidden, weight / temperature, labels, backend="torch")
    assert_rel(a, b, 1e-12, "temperature")


@given(seed=st.integers(0, 2**31 - 1), reduction=st.sampled_from(["sum", "mean", "none"]))
def test_sequence_logps_reduces_token_logps(seed, reduction):
    hidden, weight, _, labels, _, _ = make_case(
        4 * 9, 6, 23, seed, mask_frac=0.4, dtype=torch.float64
    )
    tok = fastalign.token_logps(hidden, weight, labels, backend="torch").reshape(4, 9)
    seq = fastalign.sequence_logps(
        hidden.reshape(4, 9, 6), weight, labels.reshape(4, 9), reduction=reduction, backend="torch"
    )
    mask = labels.reshape(4, 9) != -100
    want = {"none": tok, "sum": tok.sum(1), "mean": tok.sum(1) / mask.sum(1).clamp(min=1)}
    assert_rel(seq, want[reduction], 1e-13, reduction)


def test_sequence_logps_entropy_and_reference_backend():
    hidden, weight, _, labels, _, _ = make_case(3 * 5, 7, 11, 0, mask_frac=0.3)
    args = (hidden.reshape(3, 5, 7), weight, labels.reshape(3, 5))
    lp, ent = fastalign.sequence_logps(*args, reduction="mean", return_entropy=True)
    lp_r, ent_r = fastalign.sequence_logps(
        *args, reduction="mean", return_entropy=True, backend="reference"
    )
    assert_rel(lp, lp_r, 1e-6, "logps")
    assert_rel(ent, ent_r, 1e-6, "entropy")


def test_all_masked_returns_zeros_connected_to_the_graph():
    hidden = torch.randn(4, 5, requires_grad=True)
    weight = torch.randn(7, 5, requires_grad=True)
    lp, ent = fastalign.token_logps(hidden, weight, torch.full((4,), -100), return_entropy=True)
    assert torch.equal(lp, torch.zeros(4))
    assert torch.equal(ent, torch.zeros(4))
    (lp.sum() + ent.sum()).backward()
    assert torch.equal(hidden.grad, torch.zeros(4, 5))
    assert torch.equal(weight.grad, torch.zeros(7, 5))


def test_tied_weight_gets_both_gradients():
    emb = torch.nn.Embedding(11, 6)
    ids = torch.tensor([1, 4, 7, 2])
    hidden = torch.tanh(emb(ids))
    lp = fastalign.token_logps(hidden, emb.weight, torch.tensor([4, 7, 2, 9]))
    lp.sum().backward()
    g_fast = emb.weight.grad.clone()
    emb.weight.grad = None
    hidden = torch.tanh(emb(ids))
    ref_token_logps(hidden, emb.weight, torch.tensor([4, 7, 2, 9])).sum().backward()
    assert_rel(g_fast, emb.weight.grad, 1e-5, "tied weight grad")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_error_within_2x_of_torch(dtype):
    """bf16/fp16: fastalign's error vs float64 is within 2x of PyTorch's own path in that
    dtype (materialized logits, log_softmax in that dtype), plus a small atol."""
    hidden, weight, _, labels, g_lp, _ = make_case(64, 48, 300, 1, dtype=dtype)
    outs, grads = run(
        fastalign.token_logps,
        hidden,
        weight,
        None,
        labels,
        g_lp,
        None,
        entropy=False,
        backend="torch",
    )
    ref_outs, ref_grads = run(
        ref_token_logps, hidden.double(), weight.double(), None, labels, g_lp, None, entropy=False
    )

    def torch_native(h, w, y, bias=None, return_entropy=False):
        logits = h @ w.t()
        lp = torch.log_softmax(logits, -1).gather(-1, y.clamp(min=0)[:, None])[:, 0]
        return torch.where(y != -100, lp, torch.zeros_like(lp))

    nat_outs, nat_grads = run(torch_native, hidden, weight, None, labels, g_lp, None, entropy=False)

    def err(a, b):
        return float((a.double() - b).abs().max())

    assert err(outs[0], ref_outs[0]) <= 2 * err(nat_outs[0], ref_outs[0]) + 1e-6
    for got, nat, want in zip(grads, nat_grads, ref_grads, strict=True):
        assert got.dtype == dtype
        assert err(got, want) <= 2 * err(nat, want) + 1e-6


def test_nan_hidden_propagates_to_its_row_only():
    hidden, weight, _, labels, _, _ = make_case(5, 4, 9, 0, mask_frac=0.0)
    hidden[2, 1] = float("nan")
    lp = fastalign.token_logps(hidden, weight, labels, backend="torch")
    assert torch.isnan(lp[2])
    assert torch.isfinite(lp[[0, 1, 3, 4]]).all()


def test_bad_input():
    h, w = torch.randn(4, 3), torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 3])
    with pytest.raises(InvalidInputError, match=r"outside \[0, 6\)"):
        fastalign.token_logps(h, w, torch.tensor([0, 6, 1, -100]))
    with pytest.raises(InvalidInputError, match=r"outside \[0, 6\)"):
        fastalign.token_logps(h, w, torch.tensor([0, -1, 1, 2]))
    with pytest.raises(ShapeError, match=r"weight must be \[V, 3\]"):
        fastalign.token_logps(h, torch.randn(6, 4), y)
    with pytest.raises(ShapeError, match=r"labels must be \[4\]"):
        fastalign.token_logps(h, w, y[:3])
    with pytest.raises(ShapeError, match=r"hidden must be \[N, H\]"):
        fastalign.token_logps(h[None], w, y)
    with pytest.raises(ShapeError, match=r"bias must be \[6\]"):
        fastalign.token_logps(h, w, y, bias=torch.zeros(5))
    with pytest.raises(TypeError, match="must share a dtype"):
        fastalign.token_logps(h, w.double(), y)
    with pytest.raises(TypeError, match="integer tensor"):
        fastalign.token_logps(h, w, y.float())
    for name in ("temperature", "logit_scale", "softcap"):
        with pytest.raises(InvalidInputError, match=name):
            fastalign.token_logps(h, w, y, **{name: -1.0})
        with pytest.raises(InvalidInputError, match=name):
            fastalign.token_logps(h, w, y, **{name: float("inf")})
    with pytest.raises(InvalidInputError, match="chunk_rows"):
        fastalign.token_logps(h, w, y, chunk_rows=0)
    with pytest.raises(TypeError, match="process_group"):
        fastalign.token_logps(h, w, y, process_group=object())
    with pytest.raises(InvalidInputError, match="reduction"):
        fastalign.sequence_logps(h[None], w, y[None], reduction="max")
    with pytest.raises(ShapeError, match=r"\[B, T, H\]"):
        fastalign.sequence_logps(h, w, y)


@pytest.mark.interpreter
@given(**HEAD_CASES, v=st.integers(1, 100))
def test_triton_backend_fp32_vs_float64(n, h, v, seed, mask_frac, bias, entropy, transform):
    case = make_case(n, h, v, seed, mask_frac=mask_frac, bias=bias)
    outs, grads = check_against_float64(
        case, entropy=entropy, backend="triton", tol_out=1e-5, tol_grad=1e-4, **transform
    )
    masked = case[3] == -100
    assert torch.all(outs[0][masked] == 0)
    assert torch.all(grads[0][masked] == 0)


@pytest.mark.interpreter
def test_first_fused_triton_kernel_vocab_split_and_backward_chunks(monkeypatch):
    """The first fused GEMM-with-epilogue kernel (kept for the device comparison, reached
    only through ``fastalign.logprobs._fused_gemm``): enough vocab tiles for the forward to
    split V across programs, and a backward chunk smaller than N, so the partial merge and
    the fp32 dW accumulation across chunks run."""
    from fastalign.kernels import fused_logprobs as k
    from fastalign.logprobs import _fused_gemm
    from fastalign.logprobs._tiling import Transform

    real_backward = k.backward
    monkeypatch.setattr(
        k, "backward", lambda *a, **kw: real_backward(*a, **kw, chunk_bytes=16 * 4 * 300)
    )
    hidden, weight, bias, labels, g_lp, g_ent = make_case(50, 20, 300, 7, mask_frac=0.0, bias=True)

    def fused(h, w, y, *, bias, return_entropy, softcap):
        return _fused_gemm.fused_logps(h, w, bias, y, Transform(softcap=softcap), return_entropy)

    outs, grads = run(fused, hidden, weight, bias, labels, g_lp, g_ent, entropy=True, softcap=5.0)
    d = [t.double() for t in (hidden, weight, bias)]
    ref_outs, ref_grads = run(ref_token_logps, *d, labels, g_lp, g_ent, entropy=True, softcap=5.0)
    for got, want in zip(outs + grads, ref_outs + ref_grads, strict=True):
        assert_rel(got.double(), want, 1e-4, "fused kernel")


@pytest.mark.parametrize(
    "backend", ["torch", pytest.param("triton", marks=pytest.mark.interpreter)]
)
@pytest.mark.parametrize("entropy", [False, True])
def test_gradient_exact_when_the_label_is_almost_certain(backend, entropy):
    """Found by hypothesis (n=2, h=1, v=2, seed 9759863): with p_label = 0.99997 the label's
    gradient g (1 - p_label) formed from a rounded p_label kept 3 digits (dhidden off by
    3e-3 relative, 6x PyTorch's error); it is now formed as -g expm1(logp)."""
    case = make_case(2, 1, 2, 9759863, mask_frac=0.0)
    check_against_float64(case, entropy=entropy, backend=backend, tol_out=1e-5, tol_grad=1e-4)
    # sharper than hypothesis' example: p_label = 1 - 4e-9, beyond fp32's resolution near 1
    hidden = torch.tensor([[4.0], [-3.0]])
    weight = torch.tensor([[2.4], [-2.4]])
    labels = torch.tensor([0, 1])
    g = torch.tensor([1.0, -0.5], dtype=torch.float64)
    check_against_float64(
        (hidden, weight, None, labels, g, g.flip(0)),
        entropy=entropy,
        backend=backend,
        tol_out=1e-5,
        tol_grad=1e-4,
    )


def test_labels_whose_dtype_cannot_hold_ignore_index_are_refused():
    """uint8 labels compared with ignore_index=-100 in uint8, where -100 is 156: token 156
    scored 0 as if it were a prompt position (token_logps, logps_from_logits, every caller)."""
    h, w = torch.randn(2, 8), torch.randn(300, 8)
    y8 = torch.tensor([156, 3], dtype=torch.uint8)
    with pytest.raises(TypeError, match="cannot hold ignore_index=-100"):
        fastalign.token_logps(h, w, y8)
    with pytest.raises(TypeError, match="cannot hold ignore_index=-100"):
        fastalign.logps_from_logits(torch.randn(2, 300), y8)
    with pytest.raises(TypeError, match="cannot hold ignore_index"):
        fastalign.sequence_logps(h[None], w, y8[None])
    # a dtype that holds it works, and uint8 with a representable ignore_index too
    got = fastalign.token_logps(h, w, y8.long())
    assert got[0] != 0
    torch.testing.assert_close(fastalign.token_logps(h, w, y8, ignore_index=255), got)
