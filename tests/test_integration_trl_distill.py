"""fastalign.integrations.trl routes TRL 1.16's DistillationTrainer divergence
(``_chunked_divergence_loss`` -> ``ChunkedDivergenceFunction``) through
fastalign.token_divergence: the same loss, entropy sum, token count and student gradients,
on every option TRL passes (beta, temperature, per-model scales and softcaps, biases,
masks, ``num_items_in_batch``), and TRL's own function restored by ``disable``."""

from __future__ import annotations

import pytest
import torch

import fastalign.integrations.trl as fa_trl
from fastalign.reference.divergence import token_divergence as reference

dt = pytest.importorskip("trl.trainer.distillation_trainer")


def _batch(seed, b=3, k=5, hs=16, ht=24, v=200, bias=False):
    g = torch.Generator().manual_seed(seed)
    out = dict(
        student_hidden_states=torch.randn(b, k, hs, generator=g) * 2,
        teacher_hidden_states=torch.randn(b, k, ht, generator=g) * 2,
        student_lm_head_weight=torch.randn(v, hs, generator=g) / hs**0.5,
        teacher_lm_head_weight=torch.randn(v, ht, generator=g) / ht**0.5,
        completion_mask=(torch.rand(b, k, generator=g) < 0.7).long(),
    )
    if bias:
        out["student_lm_head_bias"] = torch.randn(v, generator=g)
        out["teacher_lm_head_bias"] = torch.randn(v, generator=g)
    return out


def _loss_and_grads(batch, **kw):
    leaves = {k: (t.clone().requires_grad_(k.startswith("student")) if t.is_floating_point()
                  else t) for k, t in batch.items()}  # fmt: skip
    loss, ent_sum, n = dt._chunked_divergence_loss(**leaves, **kw)
    loss.backward()
    grads = [leaves[k].grad for k in sorted(leaves) if k.startswith("student")]
    return loss.detach(), ent_sum.detach(), n, grads


def _truth(batch, beta, temperature, kw):
    """float64, materialized: the mean over completion tokens (or / num_items_in_batch)."""
    b64 = {k: t.double() if t.is_floating_point() else t for k, t in batch.items()}
    leaves = {k: t.clone().requires_grad_(k.startswith("student")) if t.is_floating_point() else t
              for k, t in b64.items()}  # fmt: skip
    hs, ht = leaves["student_hidden_states"], leaves["teacher_hidden_states"]
    mask = leaves["completion_mask"].reshape(-1)
    d, e = reference(
        hs.reshape(-1, hs.shape[-1]), leaves["student_lm_head_weight"],
        ht.reshape(-1, ht.shape[-1]), leaves["teacher_lm_head_weight"], kind="jsd", beta=beta,
        temperature=temperature, student_bias=leaves.get("student_lm_head_bias"),
        teacher_bias=leaves.get("teacher_lm_head_bias"),
        student_logit_scale=kw.get("student_logit_scale", 1.0),
        teacher_logit_scale=kw.get("teacher_logit_scale", 1.0),
        student_softcap=kw.get("student_final_logit_softcapping"),
        teacher_softcap=kw.get("teacher_final_logit_softcapping"), mask=mask,
        return_entropy=True,
    )  # fmt: skip
    denom = kw.get("num_items_in_batch") or mask.sum().clamp(min=1)
    loss = d.sum() / denom
    loss.backward()
    grads = [leaves[k].grad for k in sorted(leaves) if k.startswith("student")]
    return loss.detach(), e.sum(), grads


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"temperature": 2.0, "bias": True},
        {"student_logit_scale": 1.5, "teacher_final_logit_softcapping": 3.0,
         "student_final_logit_softcapping": 5.0, "num_items_in_batch": 20},
    ],
)  # fmt: skip
def test_chunked_divergence_loss_is_trls_through_fastalign(beta, options):
    options = dict(options)
    batch = _batch(1, bias=options.pop("bias", False))
    temperature = options.pop("temperature", 1.0)
    kw = dict(beta=beta, temperature=temperature, **options)
    fa_trl.disable()
    theirs = _loss_and_grads(batch, **kw)
    assert dt.ChunkedDivergenceFunction.__name__ == "ChunkedDivergenceFunction"
    with fa_trl.enabled():
        assert dt.ChunkedDivergenceFunction is fa_trl.FastalignDivergenceFunction
        ours = _loss_and_grads(batch, **kw)
    assert dt.ChunkedDivergenceFunction is not fa_trl.FastalignDivergenceFunction  # restored
    truth = _truth(batch, beta, temperature, kw)
    assert int(ours[2]) == int(theirs[2])
    names = ["loss", "entropy sum", "grads"]
    for name, a, b, w in zip(names, (*ours[:2], ours[3]), (*theirs[:2], theirs[3]), truth,
                             strict=True):  # fmt: skip
        a_list, b_list, w_list = ((x if isinstance(x, list) else [x]) for x in (a, b, w))
        for x, y, z in zip(a_list, b_list, w_list, strict=True):
            err_ours = float((x.double() - z).abs().max())
            err_trl = float((y.double() - z).abs().max())
            # both fp32: fastalign at most 2x TRL's error vs float64 (plus fp32 noise)
            assert err_ours <= 2 * err_trl + 1e-6 * (1 + float(z.abs().max())), name
