"""The ``rl`` workload of ``fastalign bench`` (``fastalign bench --only rl``)."""

from __future__ import annotations

from fastalign.bench._harness import Row, have, time_median


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
    rows += _right_padded_gae_rows(r, v, lengths, gamma, lam, repeat)
    wl = f"discounted returns B={b} T={t:,} (masks, fp32)"
    zeros = torch.zeros_like(v)
    t_loop, (g_loop, _) = time_median(lambda: gae_loop(r, zeros, m, gamma, 1.0), repeat=repeat)
    err = float((g_loop.double() - want_g).abs().max())
    rows.append(Row("rl", wl, "python loop over T", t_loop, baseline=True, max_err=err,
                    tol=1e-3))  # fmt: skip
    t_fast, g_fast = time_median(lambda: rl.discounted_returns(r, m, gamma=gamma), repeat=repeat)
    err = float((g_fast.double() - want_g).abs().max())
    rows.append(Row("rl", wl, "fastalign (rust scan)", t_fast, max_err=err, tol=1e-3))
    return rows + _grpo_rows(size)


def _right_padded_gae_rows(r, v, lengths, gamma, lam, repeat) -> list[Row]:
    """GAE with right padding only (no interior gap: the case torchrl's done flags express):
    verl's loop, torchrl's ``vec_generalized_advantage_estimate`` (when installed) and
    fastalign, compared on the valid tokens with the float64 loop."""
    import torch

    from fastalign import rl
    from fastalign.reference.rl import gae_loop

    b, t = r.shape
    m = (torch.arange(t)[None, :] < lengths[:, None]).to(torch.float32)
    valid = m.bool()
    want, _ = gae_loop(r.double(), v.double(), m, gamma, lam)
    wl = f"GAE B={b} T={t:,} (right padding, fp32)"

    def err(adv) -> float:
        return float((adv.double() - want)[valid].abs().max())

    t_loop, (a_loop, _) = time_median(lambda: gae_loop(r, v, m, gamma, lam), repeat=repeat)
    rows = [Row("rl", wl, "python loop over T (verl's)", t_loop, baseline=True,
                max_err=err(a_loop), tol=1e-3)]  # fmt: skip
    if have("torchrl"):
        t_trl, a_trl = time_median(lambda: torchrl_gae(r, v, lengths, gamma, lam), repeat=repeat)
        rows.append(Row("rl", wl, "torchrl vec_generalized_advantage_estimate", t_trl,
                        max_err=err(a_trl), tol=1e-3))  # fmt: skip
    t_fast, (a_fast, _) = time_median(lambda: rl.gae(r, v, m, gamma=gamma, lam=lam), repeat=repeat)
    rows.append(Row("rl", wl, "fastalign (rust scan)", t_fast, max_err=err(a_fast), tol=1e-3))
    return rows


def torchrl_gae(rewards, values, lengths, gamma, lam, *, vectorized=True):
    """torchrl's GAE (vectorized, its default; or its loop over T) on ``[B, T]`` rows of
    ``lengths`` valid tokens (right padding): done and terminated at each row's last valid
    token, next values shifted, the time dimension second to last as torchrl wants it.
    Advantages ``[B, T]`` (garbage past a row's end, as torchrl leaves it)."""
    import torch
    from torchrl.objectives.value import functional

    gae = (functional.vec_generalized_advantage_estimate if vectorized
           else functional.generalized_advantage_estimate)  # fmt: skip

    b, t = rewards.shape
    last = (torch.arange(t)[None, :] == (lengths[:, None] - 1))[..., None]
    next_v = torch.cat([values[:, 1:], values.new_zeros(b, 1)], dim=1)[..., None]
    adv, _ = gae(gamma, lam, values[..., None], next_v, rewards[..., None], last, last)
    return adv[..., 0]


# every option of grpo_loss at once (what each loss type reads of it)
GRPO_BENCH_OPTIONS = dict(
    beta=0.04, use_bias_correction_kl=True, top_entropy_quantile=0.25,
    off_policy_mask_threshold=0.5, sampling_correction="token_truncate",
    sampling_clip_min=0.5, sampling_clip_max=2.0,
)  # fmt: skip


def _grpo_rows(size: str) -> list[Row]:
    """``grpo_loss`` forward + backward over ``[B, T]`` log-probs with every option on
    (k3 KL with the bias correction, high-entropy tokens, off-policy masking, the rollout
    correction; delta and clip-higher for the clipped types), per loss type: fastalign vs
    TRL 1.16's own ``_compute_loss`` (on a stand-in trainer, the rollout ratio handed to it
    precomputed, as TRL's generation step does). fp32; error: the larger of the loss's and
    the gradient's max |difference| to TRL in float64."""
    if not have("trl"):
        return []
    import torch

    from fastalign.losses import GRPO_LOSS_TYPES

    b, t = {"quick": (16, 1024), "default": (64, 4096), "full": (64, 4096)}[size]
    repeat = {"quick": 3, "default": 5, "full": 7}[size]
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(t // 4, t + 1, (b,), generator=g)
    lp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 4
    old = lp + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.05
    batch = dict(
        lp=lp,
        old=old,
        sampling=old + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.05,
        ref=lp + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.1,
        ent=(torch.rand(b, t, generator=g) * 4).double(),
        adv=torch.randn(b, generator=g, dtype=torch.float64),
        mask=(torch.arange(t)[None, :] < lengths[:, None]).long(),
    )
    rows: list[Row] = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for loss_type in GRPO_LOSS_TYPES:
        kw = dict(loss_type=loss_type, eps_high=5.0 if loss_type == "cispo" else 0.28,
                  delta=None if loss_type == "cispo" else 1.5, t=t)  # fmt: skip
        want = _trl_step(batch, kw, torch.float64, "cpu")
        wl = f"grpo_loss {loss_type} B={b} T={t:,} (every option, fp32, fwd+bwd)"
        for dev in devices:
            where = "" if dev == "cpu" else ", cuda"
            for name, step, base in (("TRL 1.16 _compute_loss", _trl_step, True),
                                     ("fastalign grpo_loss", _ours_step, False)):  # fmt: skip

                def call(step=step, dev=dev, kw=kw):
                    res = step(batch, kw, torch.float32, dev)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                    return res

                secs, res = time_median(call, repeat=repeat)
                rows.append(Row("rl", wl, name + where, secs, baseline=base,
                                max_err=_step_err(res, want), tol=1e-4))  # fmt: skip
    return rows


def _on(batch, dtype, dev):
    """Copies of the batch's tensors on ``dev``, floating ones in ``dtype``."""
    return {k: v.to(dev, dtype, copy=True) if v.is_floating_point() else v.to(dev)
            for k, v in batch.items()}  # fmt: skip


def _trl_step(batch, kw, dtype, dev):
    """TRL's loss and d loss / d logps (see :mod:`fastalign.reference.trl_grpo`)."""
    from fastalign.reference import trl_grpo

    x, o = _on(batch, dtype, dev), GRPO_BENCH_OPTIONS
    lp = x["lp"].requires_grad_(True)
    loss, _ = trl_grpo.compute_loss(
        lp, x["old"], x["ref"], x["adv"], x["mask"], loss_type=kw["loss_type"],
        beta=o["beta"], eps_low=0.2, eps_high=kw["eps_high"], delta=kw["delta"],
        level="token", max_len=kw["t"], num_items=int(x["mask"].sum()), entropies=x["ent"],
        top_entropy_quantile=o["top_entropy_quantile"],
        off_policy_mask_threshold=o["off_policy_mask_threshold"],
        use_bias_correction_kl=o["use_bias_correction_kl"], sampling=x["sampling"],
        mode=o["sampling_correction"], clip_min=o["sampling_clip_min"],
        clip_max=o["sampling_clip_max"],
    )  # fmt: skip
    loss.backward()
    return loss.detach(), lp.grad


def _ours_step(batch, kw, dtype, dev):
    """fastalign's loss and d loss / d logps, same options."""
    from fastalign.losses import grpo_loss

    x = _on(batch, dtype, dev)
    lp = x["lp"].requires_grad_(True)
    out = grpo_loss(
        lp, x["old"], x["adv"], x["mask"], ref_logps=x["ref"], entropies=x["ent"],
        sampling_logps=x["sampling"], loss_type=kw["loss_type"], epsilon_low=0.2,
        epsilon_high=kw["eps_high"], delta=kw["delta"], max_completion_length=kw["t"],
        num_items_in_batch=int(x["mask"].sum()), **GRPO_BENCH_OPTIONS,
    )  # fmt: skip
    out.loss.backward()
    return out.loss.detach(), lp.grad


def _step_err(res, want) -> float:
    """The larger of the loss's and the gradient's max |difference| to ``want``."""
    (loss, grad), (loss0, grad0) = res, want
    return max(float((loss.double().cpu() - loss0).abs()),
               float((grad.double().cpu() - grad0).abs().max()))  # fmt: skip
