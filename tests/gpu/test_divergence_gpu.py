"""token_divergence and grpo_loss on CUDA at real sizes: the two-head divergence (cuBLAS
GEMMs for both heads, torch row math) vs the materialized float64 computation, fp32 within 2x
the naive fp32 path's error, bf16 within the bf16 contract; GRPO's loss on CUDA equal to the
CPU's on the same inputs."""

from __future__ import annotations

import pytest
import torch

import fastalign
from fastalign.losses import GRPO_LOSS_TYPES, grpo_loss
from fastalign.reference.divergence import token_divergence as reference

pytestmark = pytest.mark.gpu


def _heads(dtype, n=2048, hs=1024, ht=2048, v=32000):
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = {"generator": g, "device": "cuda"}
    return [
        (torch.randn(n, hs, **kw) * 2).to(dtype),
        (torch.randn(v, hs, **kw) / hs**0.5).to(dtype),
        (torch.randn(n, ht, **kw) * 2).to(dtype),
        (torch.randn(v, ht, **kw) / ht**0.5).to(dtype),
    ]


def _run(fn, args, up, **kw):
    h = args[0].detach().clone().requires_grad_(True)
    w = args[1].detach().clone().requires_grad_(True)
    d = fn(h, w, args[2], args[3], **kw)
    dh, dw = torch.autograd.grad(d, [h, w], up.to(d.dtype))
    return [d.detach().double(), dh.double(), dw.double()]


@pytest.mark.parametrize("kind", [("jsd", 0.5), ("forward_kl", 0.5), ("reverse_kl", 0.5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_token_divergence_on_cuda(kind, dtype):
    args = _heads(dtype)
    up = torch.rand(args[0].shape[0], device="cuda")
    kw = dict(kind=kind[0], beta=kind[1])
    want = _run(reference, [a.double() for a in args], up, **kw)
    naive = _run(reference, args, up, **kw)  # the materialized path in fp32 compute
    got = _run(fastalign.token_divergence, args, up, **kw)
    for a, n, w in zip(got, naive, want, strict=True):
        err = float((a - w).abs().max())
        err_naive = float((n - w).abs().max())
        assert err <= 2 * err_naive + 1e-6 * float(w.abs().max()), (err, err_naive)


@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
def test_grpo_loss_on_cuda_equals_cpu(loss_type):
    g = torch.Generator().manual_seed(0)
    b, t = 64, 4096
    lp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 4
    old = lp + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.05
    samp = old + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.05
    ent = torch.rand(b, t, generator=g, dtype=torch.float64) * 4
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) < 0.9).long()
    kw = dict(loss_type=loss_type, epsilon_high=5.0 if loss_type == "cispo" else 0.28,
              max_completion_length=t, top_entropy_quantile=0.25,
              off_policy_mask_threshold=0.5, sampling_correction="token_truncate",
              sampling_clip_min=0.5, sampling_clip_max=2.0)  # fmt: skip
    outs = []
    for dev in ("cpu", "cuda"):
        a = lp.to(dev).requires_grad_(True)
        out = grpo_loss(a, old.to(dev), adv.to(dev), mask.to(dev), entropies=ent.to(dev),
                        sampling_logps=samp.to(dev), **kw)  # fmt: skip
        out.loss.backward()
        outs.append((out.loss.detach().cpu(), a.grad.cpu(),
                     {k: v.cpu() for k, v in out.metrics.items()}))  # fmt: skip
    (l0, g0, m0), (l1, g1, m1) = outs
    torch.testing.assert_close(l1, l0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1, g0, rtol=1e-12, atol=1e-14)
    for k in m0:
        torch.testing.assert_close(m1[k], m0[k], rtol=1e-10, atol=1e-12, equal_nan=True)
