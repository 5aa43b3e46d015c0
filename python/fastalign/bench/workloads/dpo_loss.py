"""The ``dpo_loss`` workload of ``fastalign bench`` (``fastalign bench --only dpo_loss``)."""

from __future__ import annotations

from typing import Any

from fastalign.bench._harness import Row, time_median

# Why the fastalign rows of dpo_loss trail the bare formula on CPU (tensors of a few hundred
# KB, so every row is ~25 torch calls of Python and dispatch, no arithmetic to speak of)
_DPO_LOSS_NOTES = {
    "fastalign preference_loss on the sums (+ checks, metrics)": "vs the metrics row: "
    "argument checks",
    "fastalign token_preference_loss": "its one-launch kernel is for CUDA; on CPU the torch "
    "composition behind the checks",
}


def run(size: str) -> list[Row]:
    """DPO-family losses (sigmoid, IPO) from per-token policy log-probs of 2B rows x T with a
    completion mask and per-sequence reference log-probs: loss + gradient to the per-token
    log-probs. Baseline: the masked sums and TRL's formula written out in torch; error: the
    relative error of the loss and of the gradient (max entry) vs float64."""
    import torch
    import torch.nn.functional as F

    from fastalign.losses import preference_loss, token_preference_loss

    b, t = {"quick": (16, 256), "default": (64, 512), "full": (256, 1024)}[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator().manual_seed(0)
    tok = (-torch.rand(2 * b, t, generator=g) * 5).to(device)
    lengths = torch.randint(t // 4, t, (2 * b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(device)
    mask[:, : t // 8] = False  # the prompt
    ref_c = (tok[:b] * mask[:b]).sum(1).detach() + torch.randn(b, generator=g).to(device)
    ref_r = (tok[b:] * mask[b:]).sum(1).detach() + torch.randn(b, generator=g).to(device)
    beta = 0.1

    def naive(x: Any, kind: str, metrics: bool = False) -> Any:
        s = (x * mask).sum(1)
        rho_c, rho_r = s[:b] - ref_c, s[b:] - ref_r
        if kind == "sigmoid":
            loss = -F.logsigmoid(beta * (rho_c - rho_r)).mean()
        else:
            n = mask.sum(1)  # IPO: log-ratios per token
            loss = ((rho_c / n[:b] - rho_r / n[b:] - 1 / (2 * beta)) ** 2).mean()
        if metrics:  # the six means TRL's DPOTrainer logs, which fastalign's losses return
            with torch.no_grad():
                rw, rl = beta * rho_c.detach(), beta * rho_r.detach()
                _ = [rw.mean(), rl.mean(), (rw > rl).float().mean(), (rw - rl).mean()]
                _ = [s[:b].detach().mean(), s[b:].detach().mean()]
        return loss

    def fa_sums(x: Any, kind: str) -> Any:
        s = (x * mask).sum(1)
        n = mask.sum(1) if kind == "ipo" else None
        return preference_loss(s[:b], s[b:], ref_c, ref_r, loss_type=kind, beta=beta,
                               chosen_lengths=None if n is None else n[:b],
                               rejected_lengths=None if n is None else n[b:]).loss  # fmt: skip

    impls = {
        "naive torch (masked sums + TRL's formula)": naive,
        "naive torch + TRL's logged metrics": lambda x, kind: naive(x, kind, metrics=True),
        "fastalign preference_loss on the sums (+ checks, metrics)": fa_sums,
        "fastalign token_preference_loss": lambda x, kind: (
            token_preference_loss(x, mask, ref_c, ref_r, loss_type=kind, beta=beta).loss
        ),
    }
    rows: list[Row] = []
    for kind in ("sigmoid", "ipo"):
        wl = f"{kind}, B={b} pairs, T={t}, {device}"
        x64 = tok.double().requires_grad_(True)
        want = naive(x64, kind)
        (want_g,) = torch.autograd.grad(want, x64)
        want_v = float(want.detach())
        for i, (name, fn) in enumerate(impls.items()):

            def step(fn: Any = fn, kind: str = kind) -> Any:
                x = tok.detach().requires_grad_(True)
                loss = fn(x, kind)
                (gx,) = torch.autograd.grad(loss, x)
                if device == "cuda":
                    torch.cuda.synchronize()
                return loss, gx

            tm, (loss, gx) = time_median(step, repeat=20)
            err = max(  # relative to the float64 loss and the largest gradient entry
                abs(float(loss.detach()) - want_v) / max(abs(want_v), 1e-30),
                float((gx.double() - want_g).abs().max() / want_g.abs().max()),
            )
            # fp32 sums of T log-probs: every row, the baseline too, is ~1e-5 off
            note = _DPO_LOSS_NOTES.get(name) if device == "cpu" else None
            rows.append(Row("dpo_loss", wl, name, tm, baseline=i == 0, max_err=err, tol=1e-4,
                            note=note))  # fmt: skip
    return rows
