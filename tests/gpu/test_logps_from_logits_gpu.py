"""logps_from_logits on CUDA at real sizes, fp32 / bf16 / fp16: the Triton kernel's error
against float64 stays within 2x of PyTorch's own path in the same dtype (plus a small atol)."""

from __future__ import annotations

import pytest
import torch

import fastalign
from fastalign.reference.logprobs import logps_from_logits as ref_fn

pytestmark = pytest.mark.gpu


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach()).abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("n", "v"), [(4096, 32_001), (1024, 151_936), (70_000, 1_000)])
def test_triton_error_within_2x_of_torch(dtype, n, v):
    g = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(n, v, device="cuda", generator=g) * 4).to(dtype)
    labels = torch.randint(0, v, (n,), device="cuda", generator=g)
    labels[::7] = -100
    grad = torch.randn(n, device="cuda", generator=g)

    x64 = logits.double().requires_grad_(True)
    want = ref_fn(x64, labels)
    (dwant,) = torch.autograd.grad(want, x64, grad.double())

    def run(fn):
        x = logits.detach().requires_grad_(True)
        out = fn(x)
        (dx,) = torch.autograd.grad(out, x, grad.to(out.dtype))
        return out, dx

    # PyTorch's own path in this dtype: log_softmax in the input dtype, then gather.
    def torch_native(x):
        lp = torch.log_softmax(x, dim=-1).gather(-1, labels.clamp(min=0)[:, None])[:, 0]
        return torch.where(labels != -100, lp, 0.0)

    t_out, t_dx = run(torch_native)
    f_out, f_dx = run(lambda x: fastalign.logps_from_logits(x, labels, backend="triton"))
    atol = 1e-6
    assert _err(f_out, want) <= 2 * _err(t_out, want) + atol
    assert _err(f_dx, dwant) <= 2 * _err(t_dx, dwant) + atol
    assert torch.all(f_dx[labels == -100] == 0)
