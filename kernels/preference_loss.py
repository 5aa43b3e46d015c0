"""One-launch DPO-family loss from per-token log-probs.

One program per pair: it segment-reduces the chosen row ``b`` and the rejected row ``B + b``
of the per-token policy log-probs (under their masks) to sequence sums and token counts, forms
``rho = s - s_ref``, the pair's loss and ``dL/drho`` for the chosen and rejected side, and
writes the loss and the per-token gradient of the batch-mean loss (zero on masked tokens). The
autograd wrapper scales that gradient by the upstream one in backward: the loss costs one
launch forward and nothing but a multiply backward.

Loss ids (``LOSS``, :data:`LOSS_IDS`): 0 cdpo (the sigmoid loss with label smoothing ``eps``;
``sigmoid`` is id 0 with ``eps = 0``, as TRL 1.x ignores smoothing there), 1 hinge, 2 ipo,
3 robust, 4 sigmoid_norm, 5 bco_pair, 6 sppo_hard, 7 apo_zero, 8 apo_down, 9 nca_pair,
10 exo_pair, 11 discopop. ``MEAN`` normalizes each side's log-ratio by its token count
(IPO's TRL form and sigmoid_norm).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

LOSS_IDS = {
    "sigmoid": 0,
    "cdpo": 0,
    "hinge": 1,
    "ipo": 2,
    "robust": 3,
    "sigmoid_norm": 4,
    "bco_pair": 5,
    "sppo_hard": 6,
    "apo_zero": 7,
    "apo_down": 8,
    "nca_pair": 9,
    "exo_pair": 10,
    "discopop": 11,
}
F_DIV_IDS = {"reverse_kl": 0, "forward_kl": 1, "js_divergence": 2, "alpha_divergence": 3}
# loss types whose margin is formed from the f-divergence scores of the log-ratios
SCORED = {"sigmoid", "cdpo", "hinge", "ipo", "robust", "sigmoid_norm", "exo_pair", "discopop"}


@triton.jit
def _log1p(y):
    # Kahan's log1p from log: exact to a few ulps for small y (tl has no log1p everywhere)
    u = 1.0 + y
    exact = u == 1.0
    return tl.where(exact, y, tl.log(u) * y / tl.where(exact, 1.0, u - 1.0))


@triton.jit
def _softplus(x):
    return tl.maximum(x, 0.0) + _log1p(tl.exp(-tl.abs(x)))


@triton.jit
def _sigmoid(u):
    # from exp(-|u|): no overflow for large |u| (tl.sigmoid forms exp(-u))
    e = tl.exp(-tl.abs(u))
    return tl.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _expm1(u):
    # Kahan's expm1 from exp: accurate for small |u| (u is finite here)
    e = tl.exp(u)
    exact = e == 1.0
    return tl.where(exact, u, (e - 1.0) * u / tl.log(tl.where(exact, 2.0, e)))


@triton.jit
def _score(rho, f_alpha, alpha_clamp, F_DIV: tl.constexpr):
    """The f-divergence score f'(exp(rho)) and its derivative in rho."""
    if F_DIV == 1:  # forward KL: 1 - exp(-rho) = -expm1(-rho)
        sc = -_expm1(-rho)
        ds = tl.exp(-rho)
    elif F_DIV == 2:  # Jensen-Shannon: log 2 + log sigmoid(rho)
        sc = 0.6931471805599453 - _softplus(-rho)
        ds = _sigmoid(-rho)
    elif F_DIV == 3:  # alpha: expm1(min((a - 1) rho, clamp)) / (a - 1)
        u = (f_alpha - 1.0) * rho
        clamped = u > alpha_clamp
        uc = tl.minimum(u, alpha_clamp)
        sc = _expm1(uc) / (f_alpha - 1.0)
        ds = tl.where(clamped, 0.0, tl.exp(uc))
    else:  # reverse KL: the log-ratio itself
        sc = rho
        ds = 1.0 + 0.0 * rho
    return sc, ds


@triton.jit
def _pair_kernel(
    LP,
    MASK,
    REF,
    LOSS,
    GRAD,
    B,
    T,
    stride_lp,
    stride_m,
    stride_g,
    beta,
    eps,
    inv_b,
    f_alpha,
    alpha_clamp,
    tau,
    LOSS_TYPE: tl.constexpr,
    MEAN: tl.constexpr,
    F_DIV: tl.constexpr,
    SCORED: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pair = tl.program_id(0).to(tl.int64)
    row_w = pair
    row_l = pair + B
    # the sequence sums in float64: the log-ratio s - s_ref cancels most of their digits
    # (memory-bound work; the few extra adds are free next to the loads)
    sw = tl.zeros((), dtype=tl.float64)
    sl = tl.zeros((), dtype=tl.float64)
    nw = 0.0
    nl = 0.0
    for t0 in range(0, T, BLOCK_T):
        offs = t0 + tl.arange(0, BLOCK_T)
        ok = offs < T
        mw = tl.load(MASK + row_w * stride_m + offs, mask=ok, other=0).to(tl.float32)
        ml = tl.load(MASK + row_l * stride_m + offs, mask=ok, other=0).to(tl.float32)
        lw = tl.load(LP + row_w * stride_lp + offs, mask=ok, other=0.0).to(tl.float32)
        ll = tl.load(LP + row_l * stride_lp + offs, mask=ok, other=0.0).to(tl.float32)
        sw += tl.sum(tl.where(mw > 0, lw, 0.0).to(tl.float64), axis=0)
        sl += tl.sum(tl.where(ml > 0, ll, 0.0).to(tl.float64), axis=0)
        nw += tl.sum(mw, axis=0)
        nl += tl.sum(ml, axis=0)
    rho_w = (sw - tl.load(REF + row_w).to(tl.float64)).to(tl.float32)
    rho_l = (sl - tl.load(REF + row_l).to(tl.float64)).to(tl.float32)
    scale_w = 1.0
    scale_l = 1.0
    if MEAN:
        scale_w = 1.0 / tl.maximum(nw, 1.0)
        scale_l = 1.0 / tl.maximum(nl, 1.0)
    ds_w = 1.0
    ds_l = 1.0
    sc_w = rho_w
    sc_l = rho_l
    if SCORED:
        sc_w, ds_w = _score(rho_w, f_alpha, alpha_clamp, F_DIV)
        sc_l, ds_l = _score(rho_l, f_alpha, alpha_clamp, F_DIV)
    h = sc_w * scale_w - sc_l * scale_l
    x = beta * h
    if LOSS_TYPE == 0:  # cdpo: the sigmoid loss with label smoothing (sigmoid: eps = 0)
        loss = (1.0 - eps) * _softplus(-x) + eps * _softplus(x)
        dh = beta * (-(1.0 - eps) * _sigmoid(-x) + eps * _sigmoid(x))
        gw = dh
        gl = -dh
    elif LOSS_TYPE == 1:  # hinge
        loss = tl.maximum(1.0 - x, 0.0)
        dh = tl.where(1.0 - x > 0.0, -beta, 0.0)
        gw = dh
        gl = -dh
    elif LOSS_TYPE == 2:  # ipo
        d = h - 0.5 / beta
        loss = d * d
        gw = 2.0 * d
        gl = -2.0 * d
    elif LOSS_TYPE == 3:  # robust
        # ((1 - eps) sp(-x) - eps sp(x)) / (1 - 2 eps) with sp(x) = sp(-x) + x: the terms
        # that cancel near the minimum are O(sp(-x)), not O(1)
        loss = _softplus(-x) - eps * x / (1.0 - 2.0 * eps)
        dh = beta * (-(1.0 - eps) * _sigmoid(-x) - eps * _sigmoid(x)) / (1.0 - 2.0 * eps)
        gw = dh
        gl = -dh
    elif LOSS_TYPE == 4:  # sigmoid_norm
        loss = _softplus(-x)
        dh = -beta * _sigmoid(-x)
        gw = dh
        gl = -dh
    elif LOSS_TYPE == 5:  # bco_pair
        cw = beta * rho_w
        cl = beta * rho_l
        loss = _softplus(-cw) + _softplus(cl)
        gw = -beta * _sigmoid(-cw)
        gl = beta * _sigmoid(cl)
    elif LOSS_TYPE == 6:  # sppo_hard
        a = rho_w - 0.5 / beta
        c = rho_l + 0.5 / beta
        loss = a * a + c * c
        gw = 2.0 * a
        gl = 2.0 * c
    elif LOSS_TYPE == 7:  # apo_zero
        s_w = _sigmoid(beta * rho_w)
        s_l = _sigmoid(beta * rho_l)
        loss = (1.0 - s_w) + s_l
        gw = -beta * s_w * (1.0 - s_w)
        gl = beta * s_l * (1.0 - s_l)
    elif LOSS_TYPE == 8:  # apo_down
        s_w = _sigmoid(beta * rho_w)
        s_d = _sigmoid(beta * (rho_w - rho_l))
        loss = s_w + (1.0 - s_d)
        gw = beta * s_w * (1.0 - s_w) - beta * s_d * (1.0 - s_d)
        gl = beta * s_d * (1.0 - s_d)
    elif LOSS_TYPE == 9:  # nca_pair
        cw = beta * rho_w
        cl = beta * rho_l
        loss = _softplus(-cw) + 0.5 * _softplus(cw) + 0.5 * _softplus(cl)
        gw = beta * (-_sigmoid(-cw) + 0.5 * _sigmoid(cw))
        gl = beta * 0.5 * _sigmoid(cl)
    elif LOSS_TYPE == 10:  # exo_pair (eps > 0): KL(sigmoid(x) || (1 - eps, eps))
        c1 = _log1p(-eps)
        c2 = tl.log(eps)
        pw = _sigmoid(x)
        pl = _sigmoid(-x)
        # pw log(pw / (1 - eps)) + pl log(pl / eps) with d = pw - (1 - eps) = eps - pl:
        # near the minimum the two terms (about +d and -d) are formed from d itself, so the
        # O(d^2) sum keeps its relative accuracy instead of cancelling O(1) logarithms
        d = eps - pl
        near = tl.abs(d) < 0.5 * eps  # (arguments made safe first: where() runs both sides)
        a1 = tl.where(near, d / (1.0 - eps), 0.0)
        a2 = tl.where(near, -d / eps, 0.0)
        loss_near = pw * _log1p(a1) + pl * _log1p(a2)
        loss_far = pw * (-_softplus(-x) - c1) + pl * (-_softplus(x) - c2)
        loss = tl.where(near, loss_near, loss_far)
        dh = beta * pw * pl * (x - c1 + c2)
        gw = dh
        gl = -dh
    else:  # discopop: a logistic / exponential mixture gated by sigmoid(x / tau)
        mix = _sigmoid(x / tau)
        sp = _softplus(-x)
        ex = tl.exp(-x)
        dmix = mix * (1.0 - mix) / tau
        dh = beta * (-_sigmoid(-x) * (1.0 - mix) - sp * dmix - ex * mix + ex * dmix)
        loss = sp * (1.0 - mix) + ex * mix
        gw = dh
        gl = -dh
    tl.store(LOSS + pair, loss)
    gw = gw * ds_w * scale_w * inv_b
    gl = gl * ds_l * scale_l * inv_b
    for t0 in range(0, T, BLOCK_T):
        offs = t0 + tl.arange(0, BLOCK_T)
        ok = offs < T
        mw = tl.load(MASK + row_w * stride_m + offs, mask=ok, other=0)
        ml = tl.load(MASK + row_l * stride_m + offs, mask=ok, other=0)
        tl.store(GRAD + row_w * stride_g + offs, tl.where(mw > 0, gw, 0.0), mask=ok)
        tl.store(GRAD + row_l * stride_g + offs, tl.where(ml > 0, gl, 0.0), mask=ok)


def pair_loss(
    token_logps: torch.Tensor,
    mask: torch.Tensor,
    ref_logps: torch.Tensor,
    *,
    loss_type: str,
    beta: float,
    label_smoothing: float,
    mean: bool,
    f_divergence: str = "reverse_kl",
    f_alpha: float = 0.5,
    alpha_clamp: float = 80.0,
    discopop_tau: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-pair losses [B] float32, d(mean loss)/d(token_logps) [2B, T] float32).
    ``f_divergence`` turns the log-ratios into scores for the margin-based types
    (:data:`SCORED`); ``alpha_clamp`` caps the alpha-divergence exponent as TRL does."""
    two_b, t = token_logps.shape
    b = two_b // 2
    losses = torch.empty(b, dtype=torch.float32, device=token_logps.device)
    grad = torch.empty(two_b, t, dtype=torch.float32, device=token_logps.device)
    if b:
        _pair_kernel[(b,)](
            token_logps,
            mask,
            ref_logps,
            losses,
            grad,
            b,
            t,
            token_logps.stride(0),
            mask.stride(0),
            grad.stride(0),
            beta,
            0.0 if loss_type == "sigmoid" else label_smoothing,
            1.0 / b,
            f_alpha,
            alpha_clamp,
            discopop_tau,
            LOSS_TYPE=LOSS_IDS[loss_type],
            MEAN=mean,
            F_DIV=F_DIV_IDS[f_divergence] if loss_type in SCORED else 0,
            SCORED=loss_type in SCORED,
            BLOCK_T=min(1024, triton.next_power_of_2(max(t, 1))),
        )
    return losses, grad
