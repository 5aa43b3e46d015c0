"""fastalign.token_divergence: the tiled two-head path against the materialized float64
reference (values, student gradients, entropies) over kinds, beta, temperature, scales,
softcaps, biases, masks and tile sizes; TRL 1.16's generalized_jsd_loss (float64) and
ChunkedDivergenceFunction (float32, its compute dtype) for parity; the fp32 contract (<= 2x
the materialized fp32 path's error vs float64); properties; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastalign
from fastalign.errors import BackendUnavailableError, InvalidInputError, ShapeError
from fastalign.reference.divergence import token_divergence as reference

from _numerics import assert_fp32_contract, max_abs_err


def heads(seed, n, hs, ht, v, dtype=torch.float64, scale=1.0, bias=False):
    g = torch.Generator().manual_seed(seed)
    out = dict(
        student_hidden=torch.randn(n, hs, generator=g, dtype=torch.float64) * scale,
        student_weight=torch.randn(v, hs, generator=g, dtype=torch.float64) / hs**0.5,
        teacher_hidden=torch.randn(n, ht, generator=g, dtype=torch.float64) * scale,
        teacher_weight=torch.randn(v, ht, generator=g, dtype=torch.float64) / ht**0.5,
    )
    if bias:
        out["student_bias"] = torch.randn(v, generator=g, dtype=torch.float64)
        out["teacher_bias"] = torch.randn(v, generator=g, dtype=torch.float64)
    return {k: t.to(dtype) for k, t in out.items()}


def run(fn, inputs, upstream, **kw):
    """fn's divergence, entropy and the student's gradients for ``sum(upstream * div)``."""
    leaves = {k: t.clone().requires_grad_(k.startswith("student")) for k, t in inputs.items()}
    div, ent = fn(*(leaves[k] for k in ("student_hidden", "student_weight", "teacher_hidden",
                                        "teacher_weight")),
                  student_bias=leaves.get("student_bias"), teacher_bias=leaves.get("teacher_bias"),
                  return_entropy=True, **kw)  # fmt: skip
    (div * upstream.to(div.dtype)).sum().backward()
    grads = [leaves[k].grad for k in ("student_hidden", "student_weight", "student_bias")
             if k in leaves]  # fmt: skip
    return div.detach(), ent, grads


_KIND = st.sampled_from([("jsd", 0.5), ("jsd", 0.0), ("jsd", 1.0), ("jsd", 0.1),
                         ("forward_kl", 0.5), ("reverse_kl", 0.5), ("tvd", 0.5)])  # fmt: skip


@settings(deadline=None)
@example(seed=0, n=1, v=1, kind=("jsd", 0.5), temperature=1.0, transform=0, bias=False,
         masked=False, chunk=(None, None))  # fmt: skip
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 9),
    v=st.integers(1, 40),
    kind=_KIND,
    temperature=st.sampled_from([1.0, 2.0, 0.7]),
    transform=st.integers(0, 3),
    bias=st.booleans(),
    masked=st.booleans(),
    chunk=st.sampled_from([(None, None), (3, None), (2, 7), (4, 16)]),
)
def test_tiled_equals_the_materialized_reference(seed, n, v, kind, temperature, transform, bias,
                                                 masked, chunk):  # fmt: skip
    inputs = heads(seed, n, 5, 7, v, scale=3.0, bias=bias)
    g = torch.Generator().manual_seed(seed + 1)
    mask = (torch.rand(n, generator=g) < 0.7).long() if masked else None
    upstream = torch.randn(n, generator=g, dtype=torch.float64)
    kw = dict(kind=kind[0], beta=kind[1], temperature=temperature, mask=mask)
    if transform & 1:
        kw.update(student_logit_scale=1.3, teacher_softcap=2.5)
    if transform & 2:
        kw.update(student_softcap=4.0, teacher_logit_scale=0.8)
    got = run(fastalign.token_divergence, inputs, upstream, chunk_rows=chunk[0],
              chunk_vocab=chunk[1], **kw)  # fmt: skip
    want = run(reference, inputs, upstream, **kw)
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-10, atol=1e-12)
    for a, b in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# -- TRL 1.16 ---------------------------------------------------------------------------------


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    beta=st.sampled_from([0.0, 0.5, 1.0, 0.2]),
    temperature=st.sampled_from([1.0, 2.0]),
)
def test_equals_trl_generalized_jsd_loss_in_float64(seed, beta, temperature):
    gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer")
    inputs = heads(seed, 6, 5, 4, 30, scale=2.0)
    zs = inputs["student_hidden"] @ inputs["student_weight"].t()
    zt = inputs["teacher_hidden"] @ inputs["teacher_weight"].t()
    labels = torch.tensor([[5, 1, -100], [2, -100, -100]])
    want = gkd.GKDTrainer.generalized_jsd_loss(zs.view(2, 3, 30), zt.view(2, 3, 30), labels=labels,
                                              beta=beta, temperature=temperature)  # fmt: skip
    got = fastalign.token_divergence(**inputs, kind="jsd", beta=beta, temperature=temperature,
                                     mask=(labels != -100).view(-1))  # fmt: skip
    assert got.sum().item() / 3 == pytest.approx(want.item(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("options", [{}, {"temperature": 2.0, "student_logit_scale": 1.5,
                                          "teacher_softcap": 3.0, "bias": True}])  # fmt: skip
def test_equals_trl_chunked_divergence_function(beta, options):
    """TRL's function computes in float32 whatever the inputs; so does this comparison."""
    kernels = pytest.importorskip("trl.kernels.chunked_divergence")
    options = dict(options)
    inputs = heads(
        3, 40, 16, 24, 300, dtype=torch.float32, scale=2.0, bias=options.pop("bias", False)
    )
    t = options.get("temperature", 1.0)
    upstream = torch.rand(40)

    def trl(hs, ws, ht, wt, *, student_bias=None, teacher_bias=None, **_):
        return kernels.ChunkedDivergenceFunction.apply(
            hs, ws, student_bias, ht, wt, teacher_bias, beta, t,
            options.get("student_logit_scale", 1.0), None, 1.0, options.get("teacher_softcap"),
        )  # fmt: skip

    theirs = run(trl, inputs, upstream)
    ours = run(fastalign.token_divergence, inputs, upstream, kind="jsd", beta=beta, **options)
    want = run(reference, {k: v.double() for k, v in inputs.items()}, upstream, kind="jsd",
               beta=beta, **options)  # fmt: skip
    for a, b, w in zip([ours[0], ours[1], *ours[2]], [theirs[0], theirs[1], *theirs[2]],
                       [want[0], want[1], *want[2]], strict=True):  # fmt: skip
        # both fp32; fastalign no further from float64 than TRL (plus a little slack)
        assert max_abs_err(a, w) <= 2 * max_abs_err(b, w) + 1e-6


# -- the fp32 contract: <= 2x the materialized fp32 path's error vs float64 -------------------


@pytest.mark.parametrize("kind", [("jsd", 0.5), ("forward_kl", 0.5), ("reverse_kl", 0.5),
                                  ("tvd", 0.5), ("jsd", 0.9)])  # fmt: skip
@pytest.mark.parametrize("chunk_vocab", [None, 512])
def test_fp32_error_at_most_twice_the_materialized_paths(kind, chunk_vocab):
    # long rows, peaked distributions (logits of std ~6: log-probs near 0 and near -20)
    inputs64 = heads(11, 64, 32, 48, 4096, scale=6.0, bias=True)
    inputs32 = {k: v.float() for k, v in inputs64.items()}
    upstream = torch.rand(64, generator=torch.Generator().manual_seed(2))
    kw = dict(kind=kind[0], beta=kind[1], temperature=1.0)
    want = run(reference, inputs64, upstream, **kw)
    naive = run(reference, inputs32, upstream, **kw)
    got = run(fastalign.token_divergence, inputs32, upstream, chunk_vocab=chunk_vocab, **kw)
    names = ["divergence", "entropy", "d student_hidden", "d student_weight", "d student_bias"]
    for name, a, n, w in zip(names, [got[0], got[1], *got[2]], [naive[0], naive[1], *naive[2]],
                             [want[0], want[1], *want[2]], strict=True):  # fmt: skip
        assert_fp32_contract(a, w, n, 1e-5, name)


# -- properties ---------------------------------------------------------------------------------


@settings(deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=_KIND)
def test_properties(seed, kind):
    inputs = heads(seed, 5, 6, 6, 25, scale=2.0)
    d = fastalign.token_divergence(**inputs, kind=kind[0], beta=kind[1])
    assert bool((d >= -1e-12).all())
    same = dict(inputs, teacher_hidden=inputs["student_hidden"],
                teacher_weight=inputs["student_weight"])  # fmt: skip
    assert fastalign.token_divergence(**same, kind=kind[0], beta=kind[1]).abs().max() < 1e-12
    if kind[0] == "tvd":
        assert bool((d <= 1 + 1e-12).all())


def test_jsd_is_symmetric_at_one_half_and_chunks_do_not_matter():
    a = heads(4, 6, 5, 5, 33, scale=2.0)
    swapped = {
        "student_hidden": a["teacher_hidden"],
        "student_weight": a["teacher_weight"],
        "teacher_hidden": a["student_hidden"],
        "teacher_weight": a["student_weight"],
    }
    d1 = fastalign.token_divergence(**a, kind="jsd", beta=0.5)
    d2 = fastalign.token_divergence(**swapped, kind="jsd", beta=0.5)
    torch.testing.assert_close(d1, d2, rtol=1e-12, atol=1e-14)
    for rows, vs in ((1, 1), (2, 5), (6, 33), (None, 8)):
        d = fastalign.token_divergence(**a, kind="jsd", beta=0.5, chunk_rows=rows, chunk_vocab=vs)
        torch.testing.assert_close(d, d1, rtol=1e-12, atol=1e-14)


def test_the_exact_kl_to_a_reference_model_is_what_rl_kl_estimates():
    """reverse_kl of policy vs reference heads = E_{y ~ pi}[k1] = E[k3], per token."""
    a = heads(5, 4, 6, 6, 20, scale=2.0)
    exact = fastalign.token_divergence(**a, kind="reverse_kl")
    zs = torch.log_softmax(a["student_hidden"] @ a["student_weight"].t(), -1)
    zt = torch.log_softmax(a["teacher_hidden"] @ a["teacher_weight"].t(), -1)
    for kind in ("k1", "k3"):
        est = fastalign.rl.kl(zs, zt, kind=kind, where="reward")  # every token of the vocabulary
        torch.testing.assert_close((zs.exp() * est).sum(-1), exact, rtol=1e-12, atol=1e-14)


def test_masked_rows_are_zero_and_get_no_gradient():
    a = heads(6, 5, 4, 4, 12)
    hs = a["student_hidden"].clone().requires_grad_(True)
    mask = torch.tensor([True, False, True, False, False])
    d, e = fastalign.token_divergence(**dict(a, student_hidden=hs), mask=mask, return_entropy=True)
    assert d[~mask].abs().max() == 0
    assert e[~mask].abs().max() == 0
    d.sum().backward()
    assert hs.grad[~mask].abs().max() == 0
    empty = fastalign.token_divergence(**a, mask=torch.zeros(5, dtype=torch.bool))
    assert empty.abs().max() == 0


def test_bad_input_is_named():
    a = heads(7, 3, 4, 5, 10)
    with pytest.raises(ShapeError, match="the vocabularies differ"):
        fastalign.token_divergence(**dict(a, teacher_weight=a["teacher_weight"][:9]))
    with pytest.raises(ShapeError, match="teacher_hidden has 2 rows"):
        fastalign.token_divergence(**dict(a, teacher_hidden=a["teacher_hidden"][:2]))
    with pytest.raises(ShapeError, match=r"student_weight must be \[V, 4\]"):
        fastalign.token_divergence(**dict(a, student_weight=a["teacher_weight"]))
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        fastalign.token_divergence(**a, kind="kl")
    with pytest.raises(InvalidInputError, match="beta must be in"):
        fastalign.token_divergence(**a, beta=1.5)
    with pytest.raises(InvalidInputError, match="temperature"):
        fastalign.token_divergence(**a, temperature=0.0)
    with pytest.raises(InvalidInputError, match="teacher_softcap"):
        fastalign.token_divergence(**a, teacher_softcap=-1.0)
    with pytest.raises(ShapeError, match="mask must have shape"):
        fastalign.token_divergence(**a, mask=torch.ones(4))
    with pytest.raises(ShapeError, match=r"student_bias must have shape"):
        fastalign.token_divergence(**a, student_bias=torch.zeros(9, dtype=torch.float64))
    with pytest.raises(TypeError, match="student_hidden"):
        fastalign.token_divergence(**dict(a, student_hidden=[[1.0]]))
    with pytest.raises(BackendUnavailableError):
        fastalign.token_divergence(**a, backend="triton")
    out = fastalign.token_divergence(**a, backend="reference")
    torch.testing.assert_close(out, fastalign.token_divergence(**a))
    assert not math.isnan(float(out.sum()))
