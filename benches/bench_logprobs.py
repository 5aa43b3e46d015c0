"""Selective log-softmax on materialized logits, forward + backward: chunked torch path vs
naive log_softmax + gather (and Triton on CUDA)."""

from __future__ import annotations

import pytest
import torch

import fastalign
from fastalign.reference.logprobs import logps_from_logits as naive

SHAPES = [(512, 32_000), (2_048, 32_000)]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
IMPLS = ["naive", "torch"] + (["triton"] if DEVICE == "cuda" else [])


@pytest.fixture(params=SHAPES, ids=lambda s: f"N={s[0]}-V={s[1]}")
def case(request):
    n, v = request.param
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(n, v, generator=g) * 3).to(DEVICE)
    labels = torch.randint(0, v, (n,), generator=g).to(DEVICE)
    grad = torch.randn(n, generator=g).to(DEVICE)
    return logits, labels, grad


@pytest.mark.parametrize("impl", IMPLS)
def test_logps_from_logits_fwd_bwd(benchmark, case, impl):
    logits, labels, grad = case
    benchmark.group = f"logps_from_logits N={logits.shape[0]} V={logits.shape[1]}"

    def step():
        x = logits.detach().requires_grad_(True)
        if impl == "naive":
            out = naive(x, labels)
        else:
            out = fastalign.logps_from_logits(x, labels, backend=impl)
        (dx,) = torch.autograd.grad(out, x, grad)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        return out, dx

    out, dx = benchmark(step)
    x = logits.double().requires_grad_(True)
    want = naive(x, labels)
    (dwant,) = torch.autograd.grad(want, x, grad.double())
    out, want = out.detach(), want.detach()
    assert float((out.double() - want).abs().max() / want.abs().max()) <= 1e-5
    assert float((dx.double() - dwant).abs().max() / dwant.abs().max()) <= 1e-4
