"""The 3-pass fused DPO step on the tiling driver: the forward keeps each logits tile as
``e = exp(z - off)`` (bf16 for bf16/fp16 heads, the compute dtype otherwise) and the backward
forms the gradient from it without a logits GEMM; slices past the memory budget are
recomputed. Triton row kernels (interpreter) vs their torch twins vs float64, the storage's
error bound, the GEMM count (3 passes when everything fits, 4 for recomputed slices), and
the low-precision rule (error vs float64 at most 2x the naive path's in that dtype)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign.logprobs import _rows_torch, _tiling
from fastalign.logprobs._tiling import RowState, Store, Tiles, Transform
from fastalign.losses import FusedLinearPreferenceLoss
from test_losses_fused_linear import composition, grads, make

from _numerics import assert_fp32_contract, max_abs_err

TRANSFORMS = [{}, {"temperature": 0.7}, {"softcap": 2.5, "temperature": 1.3, "logit_scale": 0.6}]


def _module(loss_type="sigmoid", **kw):
    extra = {"label_smoothing": 0.1} if loss_type == "robust" else {}
    return FusedLinearPreferenceLoss(loss_type, beta=0.3, **extra, **kw)


@pytest.mark.interpreter
@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 3),
    t=st.integers(3, 8),
    h=st.integers(1, 9),
    v=st.integers(2, 70),
    bias=st.booleans(),
    transform=st.sampled_from(TRANSFORMS),
    chunk_vocab=st.integers(1, 70),
    chunk_rows=st.sampled_from([None, 3]),
    memory_budget=st.sampled_from([1, 4 * 6 * 20, 10**9]),
    loss_type=st.sampled_from(["sigmoid", "ipo", "robust"]),
)
def test_triton_rows_vs_torch_twins_and_float64(
    seed, b, t, h, v, bias, transform, chunk_vocab, chunk_rows, memory_budget, loss_type
):
    """Loss, d hidden, d weight, d bias: the Triton store-fold and stored-gradient kernels
    and the torch twins, every split of stored / recomputed slices, ragged last slices and
    row blocks, bias and softcap, meet the fp32 contract vs float64 and agree."""
    hidden, weight, bvec, labels, ref_w, ref_l = make(seed, b, t, h, v, bias=bias,
                                                      dtype=torch.float32)  # fmt: skip
    tiles = dict(chunk_vocab=chunk_vocab, chunk_rows=chunk_rows, memory_budget=memory_budget)
    got = {}
    for be in ("triton", "torch"):
        mod = _module(loss_type, backend=be, **tiles, **transform)
        out, gs = grads(lambda x, w, bb, mod=mod: mod(x, w, labels, ref_w, ref_l, bias=bb),
                        hidden, weight, bvec)  # fmt: skip
        got[be] = [out.loss.detach(), *gs]
    kw = {"loss_type": loss_type, "beta": 0.3}
    if loss_type == "robust":
        kw["label_smoothing"] = 0.1

    def comp(x, w, bb, rw=ref_w, rl=ref_l):
        return composition(x, w, bb, labels, rw, rl, kw, transform)

    d = [None if x is None else x.double() for x in (hidden, weight, bvec)]
    want, g_want = grads(lambda x, w, bb: comp(x, w, bb, ref_w.double(), ref_l.double()), *d)
    nat, g_nat = grads(comp, hidden, weight, bvec)
    want, nat = want.loss.detach(), nat.loss.detach()
    names = ["loss", "dhidden", "dweight", "dbias"][: 3 + bias]
    for be in ("triton", "torch"):
        for name, g, w, x in zip(names, got[be], [want, *g_want], [nat, *g_nat],
                                 strict=True):  # fmt: skip
            assert_fp32_contract(g, w, x, 1e-5 if name == "loss" else 1e-4, f"{be} {name}")
    for a, c in zip(got["triton"], got["torch"], strict=True):
        scale = max(float(c.abs().max()), 1.0)
        assert max_abs_err(a, c) <= 1e-5 * scale


def _probs_from_store(z, dtype, chunk_vocab, rows=_rows_torch):
    """Folds the fp32 logits ``z`` slice by slice with a ``dtype`` store; returns the
    probabilities the stored backward uses, ``e exp((off - m) - log s)``, in float64."""
    n, v = z.shape
    tiles = Tiles(n, chunk_vocab)
    store = Store.empty(n, v, tiles, dtype, z.device, 10**12)
    st_ = RowState.empty(n, torch.float32, z.device, entropy=False, stats=False)
    y = torch.zeros(n, dtype=torch.long)
    for v0 in range(0, v, chunk_vocab):
        v1 = min(v, v0 + chunk_vocab)
        kept = store.tile(v0 // chunk_vocab, 0, n, v0, v1)
        rows.fold(z[:, v0:v1].clone(), None, y, v0, Transform(), st_, first=v0 == 0, store=kept)
    log_s = st_.s.log()
    p = torch.empty(n, v, dtype=torch.float64)
    for v0 in range(0, v, chunk_vocab):
        e, off = store.tile(v0 // chunk_vocab, 0, n, v0, min(v, v0 + chunk_vocab))
        p[:, v0 : v0 + e.shape[1]] = e.double() * torch.exp((off - st_.m) - log_s).double()[:, None]
    return p, store


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_exp_scaled_storage_error_bound(dtype):
    """bf16/fp16 heads keep bf16 ``exp(z - off)``: every probability to a relative 2^-8
    (one bf16 rounding, 2^-9, plus the fp32 factor), down to ~1e-30 of the row max, at
    logits up to +-40 where a bf16 logit would be off by up to 2^-3 in log space; and the
    probabilities' error is below the naive bf16 path's (softmax of bf16 logits)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 3000, generator=g) * 12
    z[:, 5] = 40.0  # a dominant logit far from 0
    z[0] = torch.linspace(-40, 40, 3000)
    p, store = _probs_from_store(z, dtype, 512)
    assert store.e.dtype == torch.bfloat16
    assert float(store.e.max()) == 1.0
    exact = torch.softmax(z.double(), -1)
    big = exact > 1e-30 * exact.amax(-1, keepdim=True)
    rel = ((p - exact).abs() / exact)[big]
    assert rel.max() <= 2.0**-8, rel.max()
    naive = torch.softmax(z.to(dtype).double(), -1)  # what bf16 logits give, exactly computed
    assert max_abs_err(p, exact) <= max_abs_err(naive, exact)


def test_fp32_heads_store_fp32():
    """fp32 heads keep fp32 tiles: probabilities as accurate as an fp32 softmax's."""
    z = torch.randn(8, 100) * 10
    p, store = _probs_from_store(z, torch.float32, 30)
    assert store.e.dtype == torch.float32
    exact = torch.softmax(z.double(), -1)
    naive = torch.softmax(z, -1).double()  # fp32 softmax: |z - m| 2^-24 relative, as here
    assert ((p - exact).abs() / exact).max() <= 2 * ((naive - exact).abs() / exact).max()


@pytest.mark.parametrize("which", ["torch", pytest.param("triton", marks=pytest.mark.interpreter)])
def test_triton_store_fold_equals_twin(which):
    """The Triton fold writes the same stored tile and offsets as the torch twin."""
    from fastalign.logprobs._rows import row_passes

    z = torch.randn(9, 77) * 5
    p_twin, s_twin = _probs_from_store(z, torch.bfloat16, 20)
    p, s = _probs_from_store(z, torch.bfloat16, 20, rows=row_passes(which))
    assert torch.equal(s.off, s_twin.off)
    assert max_abs_err(s.e.double(), s_twin.e.double()) <= 2.0**-8
    assert max_abs_err(p, p_twin) <= 2.0**-8 * float(p_twin.max())


@pytest.fixture
def gemm_calls(monkeypatch):
    """The vocabulary width of every logits GEMM the driver runs."""
    calls = []
    real = _tiling.logits_tile

    def counting(x, w, out):
        calls.append(w.shape[0])
        return real(x, w, out)

    monkeypatch.setattr(_tiling, "logits_tile", counting)
    return calls


@pytest.mark.parametrize("kept", [5, 2, 0])
def test_stored_slices_skip_the_logits_gemm(gemm_calls, kept):
    """Counts the logits GEMMs of one pair over 5 vocabulary slices: one per slice in the
    forward, none in the backward for the slices the budget keeps (3 passes), one more for
    each recomputed slice (the 4-pass cost); the results equal float64 every time."""
    hidden, weight, _, labels, ref_w, ref_l = make(1, 1, 12, 6, 50)
    n_tok = int((labels != -100).sum())
    vs = 10
    budget = max(1, kept * n_tok * vs * 8)  # float64 storage
    mod = _module(chunk_vocab=vs, memory_budget=budget)
    out, gs = grads(lambda x, w, _: mod(x, w, labels, ref_w, ref_l), hidden, weight, None)
    assert gemm_calls == [vs] * (5 + 5 - kept)
    want, g_want = grads(
        lambda x, w, _: composition(x, w, None, labels, ref_w, ref_l, {"beta": 0.3}),
        hidden,
        weight,
        None,
    )
    assert out.loss.item() == pytest.approx(want.loss.item(), rel=1e-12)
    for a, w in zip(gs, g_want, strict=True):
        assert max_abs_err(a, w) <= 1e-12 * max(1.0, float(w.abs().max()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_low_precision_rule(dtype, loss_type):
    """bf16/fp16 inputs (bf16 storage): loss, d hidden and d weight within 2x the naive
    path's error vs float64 (materialized logits in that dtype), on long sequences with large
    logits (log-probs near -10, sums of thousands)."""
    hidden, weight, _, labels, ref_w, ref_l = make(3, 2, 200, 64, 3000, prompt=20)
    weight = weight * 3
    lo = [x.to(dtype) for x in (hidden, weight)]
    kw = {"loss_type": loss_type, "beta": 0.1}
    mod = FusedLinearPreferenceLoss(loss_type, beta=0.1, chunk_vocab=1000)
    got, g_got = grads(lambda x, w, _: mod(x, w, labels, ref_w, ref_l), *lo, None)
    nat, g_nat = grads(lambda x, w, _: composition(x, w, None, labels, ref_w.float(),
                                                   ref_l.float(), kw), *lo, None)  # fmt: skip
    want, g_want = grads(
        lambda x, w, _: composition(x, w, None, labels, ref_w, ref_l, kw),
        *[x.double() for x in lo],
        None,
    )
    for name, a, n_, w in zip(["loss", "dhidden", "dweight"], [got.loss, *g_got],
                              [nat.loss, *g_nat], [want.loss, *g_want], strict=True):  # fmt: skip
        assert a.dtype == (torch.float32 if name == "loss" else dtype)
        err, err_naive = max_abs_err(a, w), max_abs_err(n_, w)
        assert err <= 2 * err_naive, f"{name}: {err:.3e} vs naive {dtype} {err_naive:.3e}"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    loss_type=st.sampled_from(["grpo", "bnpo", "dr_grpo", "dapo"]),
    beta=st.sampled_from([0.0, 0.04]),
    memory_budget=st.sampled_from([1, 300 * 8, 10**9]),
    chunk_vocab=st.sampled_from([None, 7]),
    transform=st.sampled_from(TRANSFORMS),
    bias=st.booleans(),
)
def test_grpo_stored_equals_composition_float64(
    seed, loss_type, beta, memory_budget, chunk_vocab, transform, bias
):
    """FusedLinearGRPOLoss forms its gradient in the forward (kept, partly kept or no
    tiles): loss, metrics and every gradient equal the float64 composition."""
    from fastalign.losses import FusedLinearGRPOLoss, grpo_loss
    from fastalign.reference.logprobs import token_logps as ref_token_logps

    hidden, weight, bvec, labels, _, _ = make(seed, 2, 6, 5, 30, bias=bias)
    g = torch.Generator().manual_seed(seed)
    adv = torch.randn(4, generator=g, dtype=torch.float64)
    old = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    ref = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    opts = {"epsilon_high": 0.28, "max_completion_length": 6}
    mod = FusedLinearGRPOLoss(loss_type, beta=beta, memory_budget=memory_budget,
                              chunk_vocab=chunk_vocab, **transform, **opts)  # fmt: skip
    fused, g_fused = grads(lambda x, w, bb: mod(x, w, labels, adv, old, ref, bias=bb),
                           hidden, weight, bvec)  # fmt: skip

    def comp(x, w, bb):
        lp = ref_token_logps(x.reshape(-1, 5), w, labels.reshape(-1), bias=bb, **transform)
        return grpo_loss(lp.reshape(4, 6), old, adv, labels != -100, ref_logps=ref, beta=beta,
                         loss_type=loss_type, **opts)  # fmt: skip

    want, g_want = grads(comp, hidden, weight, bvec)
    assert fused.loss.item() == pytest.approx(want.loss.item(), rel=1e-12, abs=1e-14)
    for a, w in zip(g_fused, g_want, strict=True):
        assert max_abs_err(a, w) <= 1e-11 * max(1.0, float(w.abs().max()))
    for k, v in want.metrics.items():
        assert fused.metrics[k].double().sub(v.double()).abs().max() <= 1e-11, k


@pytest.mark.parametrize("memory_budget", [1, 10**9])
def test_kto_stored_equals_composition_float64(memory_budget):
    from fastalign.losses import FusedLinearKTOLoss, kto
    from fastalign.reference.logprobs import token_logps as ref_token_logps

    hidden, weight, _, labels, _, _ = make(4, 2, 6, 5, 30)
    desirable = torch.tensor([True, True, False, True])
    ref = -torch.rand(4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 30
    mod = FusedLinearKTOLoss(beta=0.2, undesirable_weight=3.0, memory_budget=memory_budget,
                             chunk_vocab=8)  # fmt: skip
    fused, g_fused = grads(lambda x, w, _: mod(x, w, labels, desirable, ref, z0=0.3),
                           hidden, weight, None)  # fmt: skip

    def comp(x, w, _):
        s = ref_token_logps(x.reshape(-1, 5), w, labels.reshape(-1)).reshape(4, 6).sum(1)
        return kto(s, ref, desirable, z0=0.3, beta=0.2, undesirable_weight=3.0)

    want, g_want = grads(comp, hidden, weight, None)
    assert fused.loss.item() == pytest.approx(want.loss.item(), rel=1e-12)
    for a, w in zip(g_fused, g_want, strict=True):
        assert max_abs_err(a, w) <= 1e-11 * max(1.0, float(w.abs().max()))


def test_grpo_keeps_every_tile_within_the_budget(gemm_calls):
    """One logits GEMM per tile (forward only) when the budget holds the batch's tiles."""
    from fastalign.losses import FusedLinearGRPOLoss

    hidden, weight, _, labels, _, _ = make(0, 2, 6, 5, 30)
    mod = FusedLinearGRPOLoss("grpo", chunk_vocab=10)
    grads(lambda x, w, _: mod(x, w, labels, torch.ones(4, dtype=torch.float64)), hidden,
          weight, None)  # fmt: skip
    assert gemm_calls == [10, 10, 10]


@pytest.mark.parametrize("which", ["preference", "grpo"])
def test_fp16_gradients_survive_a_loss_scale(which):
    """A GradScaler's 2^16 on a loss whose gradient was formed in the forward: the fp16
    gradients are scaled in fp32 and rounded once (2^16 itself overflows fp16), so they are
    finite and equal 2^16 times the unscaled ones."""
    from fastalign.losses import FusedLinearGRPOLoss

    hidden, weight, _, labels, ref_w, ref_l = make(2, 2, 12, 16, 300)
    x, w = hidden.half(), weight.half()
    if which == "preference":
        mod = FusedLinearPreferenceLoss("sigmoid", beta=0.1)

        def loss(a, b):
            return mod(a, b, labels, ref_w, ref_l).loss

    else:
        mod = FusedLinearGRPOLoss("grpo")
        adv = torch.linspace(-1, 1, 4, dtype=torch.float64)

        def loss(a, b):
            return mod(a, b, labels, adv).loss

    grads_ = []
    for scale in (1.0, 2.0**16):
        a, b = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        (loss(a, b) * scale).backward()
        assert a.grad.dtype == b.grad.dtype == torch.float16
        assert torch.isfinite(a.grad).all()
        assert torch.isfinite(b.grad).all()
        grads_.append((a.grad.float() / scale, b.grad.float() / scale))
    for g1, g2 in zip(*grads_, strict=True):
        assert max_abs_err(g2, g1) <= 2e-3 * float(g1.abs().max())


def test_preference_module_refuses_mixed_dtypes():
    hidden, weight, _, labels, ref_w, ref_l = make(0, 1, 6, 4, 20)
    with pytest.raises(TypeError, match="share a dtype"):
        _module()(hidden.float(), weight, labels, ref_w, ref_l)
