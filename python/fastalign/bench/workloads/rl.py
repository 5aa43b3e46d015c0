"""The ``rl`` workload of ``fastalign bench`` (``fastalign bench --only rl``)."""

from __future__ import annotations

from fastalign.bench._harness import Row, time_median


def run(size: str) -> list[Row]:
    """GAE and discounted returns over B x T tokens with masks (a prompt gap and padding per
    row), float32: fastalign's scan vs the frameworks' Python loop over T (verl's
    ``compute_gae_advantage_return`` before whitening, as :mod:`fastalign.reference.rl`).
    Error: max |difference| to the float64 loop (0 on masked tokens for both)."""
    import torch

    from fastalign import rl
    from fastalign.reference.rl import gae_loop

    b, t = {"quick": (16, 2048), "default": (64, 16384), "full": (64, 16384)}[size]
    repeat = {"quick": 3, "default": 3, "full": 5}[size]
    g = torch.Generator().manual_seed(0)
    r = torch.randn(b, t, generator=g) * 0.1
    v = torch.randn(b, t, generator=g)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    m = (torch.arange(t)[None, :] < lengths[:, None]).to(torch.float32)
    m[:, t // 8 : t // 8 + 16] = 0  # an interior gap (tool output)
    gamma, lam = 0.999, 0.95
    want, _ = gae_loop(r.double(), v.double(), m, gamma, lam)
    want_g, _ = gae_loop(r.double(), torch.zeros_like(v).double(), m, gamma, 1.0)
    rows: list[Row] = []
    wl = f"GAE B={b} T={t:,} (masks, fp32)"
    t_loop, (a_loop, _) = time_median(lambda: gae_loop(r, v, m, gamma, lam), repeat=repeat)
    err = float((a_loop.double() - want).abs().max())
    rows.append(Row("rl", wl, "python loop over T (verl's)", t_loop, baseline=True,
                    max_err=err, tol=1e-3))  # fmt: skip
    t_fast, (a_fast, _) = time_median(lambda: rl.gae(r, v, m, gamma=gamma, lam=lam), repeat=repeat)
    err = float((a_fast.double() - want).abs().max())
    rows.append(Row("rl", wl, "fastalign (rust scan)", t_fast, max_err=err, tol=1e-3))
    if torch.cuda.is_available():  # the Triton scan, on the device's own copies
        rc, vc, mc = r.cuda(), v.cuda(), m.cuda()

        def on_cuda():
            out = rl.gae(rc, vc, mc, gamma=gamma, lam=lam, backend="triton")
            torch.cuda.synchronize()
            return out

        t_cuda, (a_cuda, _) = time_median(on_cuda, repeat=max(repeat, 10))
        err = float((a_cuda.double().cpu() - want).abs().max())
        rows.append(Row("rl", wl, "fastalign (triton scan, cuda)", t_cuda, max_err=err,
                        tol=1e-3))  # fmt: skip
    wl = f"discounted returns B={b} T={t:,} (masks, fp32)"
    zeros = torch.zeros_like(v)
    t_loop, (g_loop, _) = time_median(lambda: gae_loop(r, zeros, m, gamma, 1.0), repeat=repeat)
    err = float((g_loop.double() - want_g).abs().max())
    rows.append(Row("rl", wl, "python loop over T", t_loop, baseline=True, max_err=err,
                    tol=1e-3))  # fmt: skip
    t_fast, g_fast = time_median(lambda: rl.discounted_returns(r, m, gamma=gamma), repeat=repeat)
    err = float((g_fast.double() - want_g).abs().max())
    rows.append(Row("rl", wl, "fastalign (rust scan)", t_fast, max_err=err, tol=1e-3))
    return rows
