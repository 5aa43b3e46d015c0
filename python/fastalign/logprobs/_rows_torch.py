"""Torch twins of the Triton row kernels (``kernels/head_rows.py``): the same contract, for
CPU and any device without Triton. Each pass works in place on the fp32 logits tile."""

from __future__ import annotations

import torch

from fastalign.logprobs._tiling import RowState, Transform


def _label_columns(y: torch.Tensor, v0: int, vs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(whether each row's label is in columns ``[v0, v0 + vs)``, its column, 0 if not)."""
    local = y - v0
    own = (local >= 0) & (local < vs)
    return own, torch.where(own, local, 0)[:, None]


def fold(
    z: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    v0: int,
    transform: Transform,
    st: RowState,
    *,
    first: bool,
    store: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """Folds the raw logits tile ``z`` of columns ``[v0, v0 + vs)`` into ``st``; with
    ``store = (e, off)`` also writes the exp-scaled tile ``e = exp(z - off)`` (``e`` may be
    ``z`` itself) and ``off`` = the tile's row max (see ``_tiling.Store``)."""
    vs = z.shape[1]
    if bias is not None:
        z.add_(bias)
    transform.apply_(z)
    own, col = _label_columns(y, v0, vs)
    t = torch.where(own, z.gather(1, col).squeeze(1), 0.0)
    zsum = z.sum(1) if st.q is not None else None
    if st.arg is not None:
        bmax, barg = z.max(dim=1)  # the first maximum, as argmax
    else:
        bmax, barg = z.amax(dim=1), None
    z.sub_(bmax[:, None])
    zs = z.clone() if st.u is not None else None
    e = z.exp_()
    s = e.sum(1)
    u = zs.mul_(e).sum(1) if zs is not None else None
    q = torch.linalg.vector_norm(e, dim=1).square_() if st.q is not None else None
    if store is not None:
        if store[0].data_ptr() != e.data_ptr():
            store[0].copy_(e)
        store[1].copy_(bmax)
    if first:
        st.m.copy_(bmax)
        st.s.copy_(s)
        st.t.copy_(t)
        if u is not None:
            st.u.copy_(u)
        if q is not None:
            st.q.copy_(q)
            st.zsum.copy_(zsum)
            st.arg.copy_(barg + v0)
        return
    big = torch.maximum(st.m, bmax)
    a0 = torch.exp(st.m - big)
    a1 = torch.exp(bmax - big)
    if u is not None:
        st.u.copy_(a0 * (st.u + (st.m - big) * st.s) + a1 * (u + (bmax - big) * s))
    if q is not None:
        st.q.copy_(st.q * a0.square() + q * a1.square())
        st.zsum.add_(zsum)
        st.arg.copy_(torch.where(bmax > st.m, barg + v0, st.arg))
    st.s.copy_(st.s * a0 + s * a1)
    st.t.add_(t)
    st.m.copy_(big)


def grad(
    z: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    v0: int,
    transform: Transform,
    m: torch.Tensor,
    log_s: torch.Tensor,
    ent: torch.Tensor | None,
    g_lp: torch.Tensor,
    g_ent: torch.Tensor | None,
    lab: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """``dL/d(raw logits)`` of the tile into ``out`` (``z`` itself when the dtypes agree)."""
    if bias is not None:
        z.add_(bias)
    transform.apply_(z)
    use_ent = ent is not None and g_ent is not None
    need_z = transform.softcap is not None
    zt = z.clone() if need_z else None
    # log p = (z - m) - log s, then p in place
    logp = z.sub_(m[:, None]).sub_(log_s[:, None])
    if use_ent:
        coef = (g_lp + g_ent * ent)[:, None]  # -p (g + g_ent (log p + H))
        g = logp.exp().mul_(logp.mul_(g_ent[:, None]).add_(coef)).neg_()
    else:
        g = logp.exp_().mul_(-g_lp[:, None])
    own, col = _label_columns(y, v0, z.shape[1])
    return _finish(g, own, col, lab, transform, zt, out)


def _finish(g, own, col, lab, transform: Transform, zt, out: torch.Tensor) -> torch.Tensor:
    """The label's entry (``lab``), the transform's chain factor (``zt``: the transformed
    logits, softcap only), then ``g`` into ``out`` (one rounding when ``out`` is narrower)."""
    g.scatter_(1, col, torch.where(own, lab.to(g.dtype), g.gather(1, col).squeeze(1))[:, None])
    if zt is not None:
        transform.chain_(g, zt)
    else:
        scale = transform.logit_scale / transform.temperature
        if scale != 1.0:
            g.mul_(scale)
    if out.data_ptr() != g.data_ptr():
        out.copy_(g)
        return out
    return g


def grad_stored(
    e: torch.Tensor,
    off: torch.Tensor,
    y: torch.Tensor,
    v0: int,
    transform: Transform,
    m: torch.Tensor,
    log_s: torch.Tensor,
    t: torch.Tensor,
    g_lp: torch.Tensor,
    lab: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """``dL/d(raw logits)`` of a stored tile (``e = exp(z - off)``, see ``fold``) into ``out``
    (``e`` itself when the dtypes agree): ``p = e exp((off - m) - log s)``; the label's
    transformed logit ``t`` gives its softcap chain factor (its ``e`` may have underflowed)."""
    need_z = transform.softcap is not None
    own, col = _label_columns(y, v0, e.shape[1])
    zt = None
    if need_z:  # z = off + log e: absolute error ~ the storage's relative one
        # a new tensor (e stays); an underflowed e (gradient 0) keeps a finite chain factor
        zt = torch.log(e.to(off.dtype).clamp_min(torch.finfo(torch.float32).tiny))
        zt.add_(off[:, None])
        zt.scatter_(1, col, torch.where(own, t, zt.gather(1, col).squeeze(1))[:, None])
    coef = -(g_lp * torch.exp((off - m) - log_s))[:, None]
    # computed in fp32 (fp64), rounded once into a narrower out at the end
    narrow = out.dtype not in (torch.float32, torch.float64)
    g = e * coef if narrow else torch.mul(e, coef, out=out)
    return _finish(g, own, col, lab, transform, zt, out)
