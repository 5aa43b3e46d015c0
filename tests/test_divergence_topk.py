"""fastalign.topk_divergence (a served teacher's top-k log-probs) and token_unlikelihood:
against direct float64 computations on materialized student logits (values and student
gradients), k = V equal to the full teacher of token_divergence, both tail rules, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign.divergence import token_divergence, token_unlikelihood, topk_divergence
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference.divergence import divergence as ref_divergence
from fastalign.reference.divergence import logits as ref_logits


def _student(seed, n, h, v, bias=False):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(n, h, generator=g, dtype=torch.float64) * 2
    ws = torch.randn(v, h, generator=g, dtype=torch.float64) / h**0.5
    bs = torch.randn(v, generator=g, dtype=torch.float64) if bias else None
    return hs, ws, bs


def _teacher_topk(seed, n, v, k):
    g = torch.Generator().manual_seed(seed + 7)
    full = torch.log_softmax(torch.randn(n, v, generator=g, dtype=torch.float64) * 3, -1)
    lp, ids = full.topk(k, dim=1)
    return lp, ids


def _direct(hs, ws, bs, lp_t, ids, kind, beta, tail, tr):
    """Materialized student log-softmax, gathered; the tails written out."""
    z = ref_logits(hs, ws, bs, tr.get("student_logit_scale", 1.0), tr.get("student_softcap"),
                   tr.get("temperature", 1.0), torch.float64)  # fmt: skip
    a = torch.log_softmax(z, -1).gather(1, ids)

    def out(x):
        if tail == "renormalize":
            return x - torch.logsumexp(x, 1, keepdim=True)
        return torch.cat([x, torch.log(1 - x.exp().sum(1, keepdim=True))], dim=1)

    return ref_divergence(out(a), out(lp_t), kind, beta)


_KIND = st.sampled_from([("forward_kl", 0.5), ("reverse_kl", 0.5), ("jsd", 0.5), ("jsd", 0.2),
                         ("jsd", 0.0), ("tvd", 0.5)])  # fmt: skip


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 6),
    v=st.integers(3, 30),
    k_frac=st.sampled_from([0.1, 0.5, 0.9]),
    kind=_KIND,
    tail=st.sampled_from(["renormalize", "bucket"]),
    transform=st.integers(0, 2),
    chunk=st.sampled_from([(None, None), (2, 5)]),
)
def test_topk_equals_the_direct_computation(seed, n, v, k_frac, kind, tail, transform, chunk):
    k = max(1, min(v - 1, int(v * k_frac)))
    hs, ws, bs = _student(seed, n, 5, v, bias=transform == 1)
    lp_t, ids = _teacher_topk(seed, n, v, k)
    tr = {}
    if transform == 1:
        tr = {"temperature": 2.0, "student_logit_scale": 1.5}
    elif transform == 2:
        tr = {"student_softcap": 3.0}
    leaves = [t.clone().requires_grad_(True) for t in (hs, ws)]
    got = topk_divergence(leaves[0], leaves[1], lp_t, ids, kind=kind[0], beta=kind[1],
                          tail=tail, student_bias=bs, chunk_rows=chunk[0], chunk_vocab=chunk[1],
                          **tr)  # fmt: skip
    up = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (got * up).sum().backward()
    ref_leaves = [t.clone().requires_grad_(True) for t in (hs, ws)]
    want = _direct(ref_leaves[0], ref_leaves[1], bs, lp_t, ids, kind[0], kind[1], tail, tr)
    (want * up).sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for a, b in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("tail", ["renormalize", "bucket"])
@pytest.mark.parametrize("kind", [("forward_kl", 0.5), ("reverse_kl", 0.5), ("jsd", 0.5),
                                  ("tvd", 0.5)])  # fmt: skip
def test_k_equal_to_v_is_the_full_teacher(kind, tail):
    hs, ws, bs = _student(3, 5, 6, 20, bias=True)
    g = torch.Generator().manual_seed(9)
    ht = torch.randn(5, 8, generator=g, dtype=torch.float64)
    wt = torch.randn(20, 8, generator=g, dtype=torch.float64)
    full_t = torch.log_softmax(ht @ wt.t(), -1)
    ids = torch.randperm(20, generator=g).repeat(5, 1)  # every token, in any order
    a = hs.clone().requires_grad_(True)
    got = topk_divergence(a, ws, full_t.gather(1, ids), ids, kind=kind[0], beta=kind[1],
                          tail=tail, student_bias=bs)  # fmt: skip
    got.sum().backward()
    c = hs.clone().requires_grad_(True)
    want = token_divergence(c, ws, ht, wt, kind=kind[0], beta=kind[1], student_bias=bs)
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(a.grad, c.grad, rtol=1e-8, atol=1e-11)


def test_topk_mask_and_bad_input():
    hs, ws, _ = _student(1, 4, 5, 12)
    lp, ids = _teacher_topk(1, 4, 12, 3)
    mask = torch.tensor([1, 0, 1, 0])
    a = hs.clone().requires_grad_(True)
    d = topk_divergence(a, ws, lp, ids, mask=mask)
    assert d[1] == 0
    assert d[3] == 0
    d.sum().backward()
    assert a.grad[1].abs().max() == 0
    with pytest.raises(InvalidInputError, match=r"topk_ids must be in \[0, 12\)"):
        topk_divergence(hs, ws, lp, ids + 12)
    rep = ids.clone()
    rep[2, 1] = rep[2, 0]
    with pytest.raises(InvalidInputError, match="repeat a token in row 2"):
        topk_divergence(hs, ws, lp, rep)
    with pytest.raises(InvalidInputError, match="log-probabilities"):
        topk_divergence(hs, ws, lp + 1.0, ids)
    with pytest.raises(ShapeError, match=r"topk_logprobs must be \[4, k\]"):
        topk_divergence(hs, ws, lp[:3], ids)
    with pytest.raises(ShapeError, match="topk_ids must have shape"):
        topk_divergence(hs, ws, lp, ids[:, :2])
    with pytest.raises(TypeError, match="integer"):
        topk_divergence(hs, ws, lp, ids.double())
    with pytest.raises(InvalidInputError, match="tail must be one of"):
        topk_divergence(hs, ws, lp, ids, tail="drop")
    nan = lp.clone()
    nan[0, 0] = math.nan
    with pytest.raises(InvalidInputError, match="topk_logprobs must be finite"):
        topk_divergence(hs, ws, nan, ids)


@settings(deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), peaked=st.booleans())
def test_unlikelihood_is_minus_log_one_minus_p(seed, n, peaked):
    hs, ws, bs = _student(seed, n, 6, 15, bias=True)
    if peaked:  # p(label) near 1 (1 - p down to ~1e-25): 1 - p must never be formed
        ws = ws * 12
    g = torch.Generator().manual_seed(seed)
    z = hs @ ws.t() + bs
    labels = z.argmax(1) if peaked else torch.randint(0, 15, (n,), generator=g)
    labels[torch.rand(n, generator=g) < 0.3] = -100
    a = hs.clone().requires_grad_(True)
    got = token_unlikelihood(a, ws, labels, bias=bs, chunk_vocab=4 if n % 2 else None)
    got.sum().backward()
    lp = torch.log_softmax(hs @ ws.t() + bs, -1)
    keep = labels != -100
    y = labels.clamp(min=0)
    picked = lp.gather(1, y[:, None]).squeeze(1)
    # the truth: 1 - p_y as the sum of the other tokens' probabilities (no cancellation)
    others = lp.exp().scatter(1, y[:, None], 0.0).sum(1)
    one_minus = torch.where(keep, others, 1.0)
    want = torch.where(keep, -torch.log(one_minus), 0.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # d/dz of -log(1 - p_y): p_y at y, -p_y p_v / (1 - p_y) elsewhere (written out with the
    # exact 1 - p_y: autograd through log_softmax forms 1 - p_y from a rounded p_y)
    p_all, p_y = lp.exp(), picked.exp()
    gz = -p_y[:, None] * p_all / one_minus[:, None]
    gz.scatter_(1, y[:, None], p_y[:, None])
    gz = torch.where(keep[:, None], gz, 0.0)
    torch.testing.assert_close(a.grad, gz @ ws, rtol=1e-10, atol=1e-12)
    assert bool((got[~keep] == 0).all())


def test_unlikelihood_bad_input_is_named():
    hs, ws, _ = _student(2, 3, 4, 6)
    with pytest.raises(InvalidInputError, match="labels"):
        token_unlikelihood(hs, ws, torch.tensor([0, 6, 1]))
    with pytest.raises(ShapeError, match="at least 2 tokens"):
        token_unlikelihood(hs, ws[:1], torch.tensor([0, 0, 0]))
    with pytest.raises(ShapeError, match="labels"):
        token_unlikelihood(hs, ws, torch.tensor([0, 1]))
    assert token_unlikelihood(hs, ws, torch.full((3,), -100)).abs().max() == 0
