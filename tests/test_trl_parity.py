"""fastalign's log-probs are the same function as TRL's per-token log-prob paths, so using
fastalign inside a TRL trainer changes nothing but speed and memory.

- ``trl.trainer.utils.selective_log_softmax`` (materialized logits): float64, to 1e-12.
- ``trl.kernels.ChunkedLogProbFunction`` (TRL's fused LM-head path, ``fused_lm_head=True``):
  its running statistics are float32 whatever the input dtype, so with float64 inputs it is
  accurate to float32 level only; fastalign (float64 throughout) must match the float64
  reference to 1e-12 and TRL must agree with both to its float32 accuracy.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

import fastalign
from fastalign.reference.logprobs import token_logps as ref_token_logps

from _numerics import assert_rel

trl_utils = pytest.importorskip("trl.trainer.utils")
trl_kernels = pytest.importorskip("trl.kernels")


@given(
    n=st.integers(1, 30),
    v=st.integers(2, 80),
    seed=st.integers(0, 2**31 - 1),
    temperature=st.sampled_from([1.0, 0.6, 1.5]),
)
# a log-prob of -1.06e-6 from logits 6.2 / -7.5 (after the temperature): the two float64
# results differ by 3e-16, 2.8e-10 of the log-prob itself (fastalign's is the closer one to
# the exact value: 7e-11 against 2.1e-10), so the bound is on the scale of the logits
@example(n=1, v=2, seed=8238, temperature=0.6)
def test_selective_log_softmax_float64(n, v, seed, temperature):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, v, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, v, (n,), generator=g)
    ours = fastalign.logps_from_logits(logits, labels, temperature=temperature)
    theirs = trl_utils.selective_log_softmax(logits, labels, temperature=temperature)
    # log-softmax rounds on the scale of its inputs: a few ulps of max |z| / T, whatever
    # the size of the log-prob (near 0 the relative error of any float64 method is large)
    eight_ulps_of_scale = 8 * 2.0**-52 * (float(logits.abs().max()) / temperature + 1.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=eight_ulps_of_scale)


@given(
    n=st.integers(1, 30),
    h=st.integers(1, 24),
    v=st.integers(2, 80),
    seed=st.integers(0, 2**31 - 1),
    softcap=st.sampled_from([None, 3.0]),
    logit_scale=st.sampled_from([1.0, 0.7]),
    temperature=st.sampled_from([1.0, 0.6]),
    bias=st.booleans(),
)
def test_chunked_logprob_function_float64(n, h, v, seed, softcap, logit_scale, temperature, bias):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64) / h**0.5
    b = torch.randn(v, generator=g, dtype=torch.float64) if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    grad = torch.randn(n, generator=g, dtype=torch.float64)
    opts = dict(temperature=temperature, logit_scale=logit_scale, softcap=softcap)

    def grads(fn):
        hh = hidden.clone().requires_grad_(True)
        ww = weight.clone().requires_grad_(True)
        lp, ent = fn(hh, ww)
        d = torch.autograd.grad((lp * grad).sum() + ent.sum(), [hh, ww])
        return [lp.detach(), ent.detach(), *d]

    ref = grads(lambda hh, ww: ref_token_logps(hh, ww, labels, bias=b, return_entropy=True, **opts))
    ours = grads(
        lambda hh, ww: fastalign.token_logps(
            hh, ww, labels, bias=b, return_entropy=True, backend="torch", **opts
        )
    )
    theirs = grads(
        lambda hh, ww: trl_kernels.ChunkedLogProbFunction.apply(
            hh, ww, b, labels, temperature, 16, softcap, logit_scale, ("entropy",)
        )[:2]
    )
    for name, o, t, r in zip(
        ("logps", "entropy", "dhidden", "dweight"), ours, theirs, ref, strict=True
    ):
        assert_rel(o, r, 1e-12, f"fastalign {name}")
        assert_rel(t, r, 1e-5, f"TRL {name}")
        assert_rel(o, t, 1e-5, f"fastalign vs TRL {name}")
