"""logps_from_logits: every backend against a float64 reference, values and gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import fastalign
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference.logprobs import logps_from_logits as ref_logps

from _numerics import assert_fp32_contract, assert_rel


def _case(n: int, v: int, seed: int, mask_frac: float, scale: float, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, v, generator=g, dtype=torch.float64) * scale).to(dtype)
    labels = torch.randint(0, v, (n,), generator=g)
    labels[torch.rand(n, generator=g) < mask_frac] = -100
    grad = torch.randn(n, generator=g, dtype=torch.float64)
    return logits, labels, grad


def _value_and_grad(logits, labels, grad, **kw):
    x = logits.detach().clone().requires_grad_(True)
    out = fastalign.logps_from_logits(x, labels, **kw)
    (dx,) = torch.autograd.grad(out, x, grad.to(out.dtype))
    return out, dx


def _reference64(logits, labels, grad, temperature):
    x = logits.detach().double().requires_grad_(True)
    out = ref_logps(x, labels, temperature=temperature)
    (dx,) = torch.autograd.grad(out, x, grad)
    return out, dx


def _check_fp32(out, dx, logits, labels, grad, temperature):
    """fp32 results vs float64, under the contract of _numerics.assert_fp32_contract."""
    ref, dref = _reference64(logits, labels, grad, temperature)
    x = logits.detach().float().requires_grad_(True)
    nat = ref_logps(x, labels, temperature=temperature)
    (dnat,) = torch.autograd.grad(nat, x, grad.float())
    assert_fp32_contract(out, ref, nat, 1e-5, "logps")
    assert_fp32_contract(dx, dref, dnat, 1e-4, "dlogits")


@given(
    n=st.integers(0, 40),
    v=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
    mask_frac=st.sampled_from([0.0, 0.3, 1.0]),
    temperature=st.sampled_from([1.0, 0.7, 2.5]),
    scale=st.sampled_from([1.0, 10.0]),
    chunk_rows=st.integers(1, 50),
)
def test_torch_backend_matches_float64(n, v, seed, mask_frac, temperature, scale, chunk_rows):
    logits, labels, grad = _case(n, v, seed, mask_frac, scale)
    out, dx = _value_and_grad(
        logits, labels, grad, temperature=temperature, backend="torch", chunk_rows=chunk_rows
    )
    assert out.dtype == torch.float32
    _check_fp32(out, dx, logits, labels, grad, temperature)
    assert torch.all(out <= 0)
    masked = labels == -100
    assert torch.all(out[masked] == 0)
    assert torch.all(dx[masked] == 0)


@given(
    n=st.integers(1, 12),
    v=st.integers(1, 200),
    seed=st.integers(0, 2**31 - 1),
    chunk_rows=st.integers(1, 12),
)
def test_float64_is_exact_and_chunk_independent(n, v, seed, chunk_rows):
    logits, labels, grad = _case(n, v, seed, 0.2, 3.0, torch.float64)
    out, dx = _value_and_grad(logits, labels, grad, backend="torch", chunk_rows=chunk_rows)
    ref, dref = _reference64(logits, labels, grad, 1.0)
    assert out.dtype == torch.float64
    assert_rel(out, ref, 1e-13, "logps")
    assert_rel(dx, dref, 1e-12, "dlogits")


@pytest.mark.interpreter
@example(n=1, v=8, seed=1960, mask_frac=0.0, temperature=1.0)  # logp near 0: pinned
@given(
    n=st.integers(1, 6),
    v=st.integers(1, 70),
    seed=st.integers(0, 2**31 - 1),
    mask_frac=st.sampled_from([0.0, 0.5, 1.0]),
    temperature=st.sampled_from([1.0, 0.5]),
)
def test_triton_kernel_matches_float64(n, v, seed, mask_frac, temperature):
    logits, labels, grad = _case(n, v, seed, mask_frac, 4.0)
    out, dx = _value_and_grad(logits, labels, grad, temperature=temperature, backend="triton")
    _check_fp32(out, dx, logits, labels, grad, temperature)
    assert torch.all(dx[labels == -100] == 0)


@pytest.mark.parametrize(
    "backend", ["torch", pytest.param("triton", marks=pytest.mark.interpreter)]
)
def test_gradient_exact_with_a_large_logit_offset(backend):
    """Pinned from the H200 run (tests/gpu, fp32): with logits near 3000, forming softmax as
    ``exp(z - lse)`` rounds lse to an ulp of 3000 (2.4e-4) and every probability with it;
    the kernel keeps (max, log sum-exp) apart, so the error stays within 2x PyTorch's own."""
    logits, labels, grad = _case(64, 300, 7, 0.1, 4.0)
    logits = logits + 3000.0
    want, dwant = _reference64(logits, labels, grad, 1.0)
    out, dx = _value_and_grad(logits, labels, grad, backend=backend)
    x = logits.detach().clone().requires_grad_(True)
    native = torch.log_softmax(x, -1).gather(-1, labels.clamp(min=0)[:, None])[:, 0]
    native = torch.where(labels != -100, native, 0.0)
    (dnative,) = torch.autograd.grad(native, x, grad.float())

    def err(a, b):
        return float((a.detach().double() - b.detach()).abs().max())

    assert err(dx, dwant) <= 2 * err(dnative, dwant) + 1e-7
    assert err(out, want) <= 2 * err(native, want) + 1e-7


@pytest.mark.interpreter
def test_triton_kernel_multi_tile_rows_and_strided_input():
    # V above one tile (4096) exercises the online max / sum-exp across tiles; a row stride
    # larger than V exercises the strided path without a copy.
    big = torch.randn(3, 4200 + 7, dtype=torch.float64) * 5
    logits = big[:, :4200].float()
    labels = torch.tensor([0, 4199, 2100])
    grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    out, dx = _value_and_grad(logits, labels, grad, backend="triton")
    _check_fp32(out, dx, logits, labels, grad, 1.0)


def test_leading_dims_and_backends_agree(device):
    logits, labels, _grad = _case(24, 50, 3, 0.25, 2.0)
    logits = logits.reshape(4, 6, 50).to(device)
    labels = labels.reshape(4, 6).to(device)
    results = [
        fastalign.logps_from_logits(logits, labels, backend=b) for b in ("reference", "torch")
    ]
    assert results[0].shape == (4, 6)
    assert_rel(results[1], results[0], 1e-6, "torch vs reference")


def test_all_masked_still_has_a_graph():
    x = torch.randn(3, 5, requires_grad=True)
    out = fastalign.logps_from_logits(x, torch.full((3,), -100), backend="torch")
    assert torch.equal(out, torch.zeros(3))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 5))


def test_nan_propagates_to_its_row():
    x = torch.randn(3, 5)
    x[1, 2] = float("nan")
    out = fastalign.logps_from_logits(x, torch.tensor([0, 0, 0]), backend="torch")
    assert torch.isnan(out[1])
    assert torch.isfinite(out[[0, 2]]).all()


def test_bad_input():
    x = torch.randn(4, 5)
    with pytest.raises(InvalidInputError, match=r"outside \[0, 5\).*first at flat index 2: 5"):
        fastalign.logps_from_logits(x, torch.tensor([0, 1, 5, -1]))
    with pytest.raises(ShapeError, match=r"labels\.shape must equal"):
        fastalign.logps_from_logits(x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer tensor"):
        fastalign.logps_from_logits(x, torch.zeros(4))
    with pytest.raises(TypeError, match="must be float32"):
        fastalign.logps_from_logits(x.long(), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        fastalign.logps_from_logits(x.tolist(), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="temperature"):
        fastalign.logps_from_logits(x, torch.zeros(4, dtype=torch.long), temperature=0.0)
    with pytest.raises(InvalidInputError, match="backend must be one of"):
        fastalign.logps_from_logits(x, torch.zeros(4, dtype=torch.long), backend="fast")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@given(
    seed=st.integers(0, 2**31 - 1),
    temperature=st.sampled_from([1.0, 0.7]),
    chunk_rows=st.integers(1, 9),
)
def test_torch_backend_low_precision_logits(dtype, seed, temperature, chunk_rows):
    """bf16/fp16 logits: the torch path upcasts before dividing by the temperature, so its
    log-probs are float32-accurate on the rounded inputs; its gradient (in the logits' dtype)
    is within 2x the error of PyTorch's own path in that dtype, both vs float64."""
    logits, labels, grad = _case(13, 257, seed, 0.3, 4.0, dtype)
    out, dx = _value_and_grad(
        logits, labels, grad, temperature=temperature, backend="torch", chunk_rows=chunk_rows
    )
    assert out.dtype == torch.float32
    assert dx.dtype == dtype
    ref, dref = _reference64(logits, labels, grad, temperature)
    assert_rel(out, ref, 1e-5, "logps")
    x = logits.detach().clone().requires_grad_(True)
    nat = ref_logps(x, labels, temperature=temperature)
    (dnat,) = torch.autograd.grad(nat, x, grad.to(nat.dtype))
    assert_fp32_contract(dx, dref, dnat, 2.0**-8, "dlogits")
