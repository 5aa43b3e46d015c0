"""The first fused Triton head (``kernels/fused_logprobs.py``: one GEMM-with-epilogue kernel
per pass) behind an autograd Function. Not a backend: the driver (row kernels + cuBLAS)
replaced it; it stays for the device script, which times it beside the driver, and goes once
a device run has confirmed the driver faster (spec/LOGPROBS.md: a fused GEMM kernel may
return only where a device run shows it faster)."""

from __future__ import annotations

import torch

from fastalign.logprobs._tiling import Transform, label_grad


class _FusedLogpsTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, b, labels, transform, want_entropy):
        from fastalign.kernels import fused_logprobs as k

        logp, lse, ent = k.forward(
            h,
            w,
            b,
            labels,
            temperature=transform.temperature,
            logit_scale=transform.logit_scale,
            softcap=transform.softcap,
            want_entropy=want_entropy,
        )
        ctx.save_for_backward(h, w, b, labels, lse, ent, logp)
        ctx.transform = transform
        ctx.set_materialize_grads(False)  # entropy often only feeds metrics: no zero gradient
        return (logp, ent) if want_entropy else (logp,)

    @staticmethod
    def backward(ctx, grad_logp, grad_ent=None):
        from fastalign.kernels import fused_logprobs as k

        h, w, b, labels, lse, ent, logp = ctx.saved_tensors
        t: Transform = ctx.transform
        need_b = b is not None and ctx.needs_input_grad[2]
        if grad_logp is None:
            grad_logp = torch.zeros_like(lse)
        use_ent = ent is not None and grad_ent is not None
        lab = label_grad(
            logp, grad_logp.float(), ent if use_ent else None, grad_ent.float() if use_ent else None
        )
        dh, dw, db = k.backward(
            h,
            w,
            b,
            labels,
            lse,
            ent,
            grad_logp,
            grad_ent,
            lab,
            temperature=t.temperature,
            logit_scale=t.logit_scale,
            softcap=t.softcap,
            need_x=ctx.needs_input_grad[0],
            need_w=ctx.needs_input_grad[1],
            need_b=need_b,
        )
        return dh, dw, db, None, None, None


def fused_logps(
    h: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    labels: torch.Tensor,
    transform: Transform,
    want_entropy: bool,
) -> tuple[torch.Tensor, ...]:
    """(logp,) or (logp, entropy) for compacted rows, via the Triton kernels."""
    h = h.contiguous()
    w = w if w.stride(-1) == 1 else w.contiguous()
    return _FusedLogpsTriton.apply(h, w, b, labels.contiguous(), transform, bool(want_entropy))
