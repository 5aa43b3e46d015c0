"""The smoke checks and the two tables of the GPU device run (``benches/gpu_head.py`` runs
them, with the kernel pieces and the end-to-end TRL rows; this module has no command of its
own).

- ``smoke``: a few seconds of in-process checks at mid sizes (Triton ``token_logps`` in
  fp32/fp16, ``logps_from_logits``, ``FusedLinearPreferenceLoss``, ``token_preference_loss``)
  against float64, so that a kernel that does not compile or is wrong on real hardware shows
  first, with its error, before any long phase.
- ``_tables``: token_logps fwd+bwd (N=16384 H=4096 V=128256 bf16) and the fused DPO step
  (B=8 pairs, T=2048, H=4096, V=128256 bf16), each row in its own process: the compute floor,
  naive torch, torch ``linear_cross_entropy``, TRL, Liger, fastalign; median time of at
  least ten runs, peak allocated memory above the inputs, max error vs float64 (computed on
  the GPU), and MFU = FLOPs / time / the card's dense bf16 peak.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

# Paths default to the repository this script sits in, whatever the working directory.
ROOT = Path(__file__).resolve().parents[1]

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "B200": 2250.0}


def card() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu (no GPU)", None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_TFLOPS.items():
        if key in name:
            return name, peak
    return name, None


def _err(a, b) -> float:
    """Max normwise relative error of ``a`` against the float64 ``b``."""
    a, b = a.detach(), b.detach()
    return float((a.double() - b).abs().max() / b.abs().max().clamp(min=1e-300))


def smoke(size: str) -> list[str]:
    """Short in-process checks against float64; returns one line per check."""
    import torch

    import fastalign
    from fastalign.losses import FusedLinearPreferenceLoss, token_preference_loss
    from fastalign.reference.logprobs import logps_from_logits as ref_lfl
    from fastalign.reference.logprobs import token_logps as ref_tl

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n, h, v = (4096, 2048, 32000) if size != "tiny" else (64, 32, 100)
    g = torch.Generator(device=dev).manual_seed(1)
    lines: list[str] = []

    def check(name: str, tol: float, fn) -> None:
        try:
            errs = fn()
            worst = max(errs.values())
            detail = " ".join(f"{k}={e:.2e}" for k, e in errs.items())
            lines.append(f"{'ok  ' if worst <= tol else 'FAIL'} {name}: {detail} (tol {tol:g})")
        except Exception as e:  # report and go on: the later phases still run
            lines.append(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}")
        print(lines[-1], flush=True)

    def tl(dtype, tol):
        hid = torch.randn(n, h, device=dev, generator=g).to(dtype)
        w = (torch.randn(v, h, device=dev, generator=g) * (2 / h**0.5)).to(dtype)
        y = torch.randint(0, v, (n,), device=dev, generator=g)
        y[::5] = -100
        up = torch.randn(n, device=dev, generator=g)
        h64, w64 = hid.double().requires_grad_(True), w.double().requires_grad_(True)
        want = ref_tl(h64, w64, y)
        dh64, dw64 = torch.autograd.grad(want, [h64, w64], up.double())
        h1, w1 = hid.clone().requires_grad_(True), w.clone().requires_grad_(True)
        got = fastalign.token_logps(h1, w1, y, backend="triton")
        dh, dw = torch.autograd.grad(got, [h1, w1], up.to(got.dtype))
        return {"logps": _err(got, want), "dh": _err(dh, dh64), "dw": _err(dw, dw64)}

    # The Triton interpreter multiplies the raw bits of bfloat16 operands in tl.dot (it
    # stores them as uint16; triton-lang/triton#11584): there the half-precision check is fp16.
    low = torch.bfloat16 if dev == "cuda" else torch.float16
    check(f"token_logps triton fp32 {n}x{h}x{v}", 1e-4, lambda: tl(torch.float32, 1e-4))
    check(f"token_logps triton {low} {n}x{h}x{v}", 3e-2, lambda: tl(low, 3e-2))

    def lfl():
        x = (torch.randn(n, v, device=dev, generator=g) * 4).to(torch.bfloat16)
        y = torch.randint(0, v, (n,), device=dev, generator=g)
        up = torch.randn(n, device=dev, generator=g)
        x64 = x.double().requires_grad_(True)
        want = ref_lfl(x64, y)
        (d64,) = torch.autograd.grad(want, x64, up.double())
        x1 = x.clone().requires_grad_(True)
        got = fastalign.logps_from_logits(x1, y, backend="triton")
        (d,) = torch.autograd.grad(got, x1, up.to(got.dtype))
        return {"logps": _err(got, want), "dlogits": _err(d, d64)}

    check(f"logps_from_logits triton bf16 {n}x{v}", 3e-2, lfl)

    def fused_dpo():
        b, t = 4, max(8, n // 8)
        hid = torch.randn(2 * b, t, h, device=dev, generator=g).to(torch.bfloat16)
        w = (torch.randn(v, h, device=dev, generator=g) * (2 / h**0.5)).to(torch.bfloat16)
        y = torch.randint(0, v, (2 * b, t), device=dev, generator=g)
        y[:, : t // 8] = -100
        ref = torch.zeros(b, device=dev)
        h64, w64 = hid.double().requires_grad_(True), w.double().requires_grad_(True)
        lp = torch.log_softmax(h64 @ w64.t(), -1)
        s = (lp.gather(-1, y.clamp(min=0)[..., None])[..., 0] * (y != -100)).sum(1)
        want = -torch.nn.functional.logsigmoid(0.1 * (s[:b] - s[b:])).mean()
        dh64, dw64 = torch.autograd.grad(want, [h64, w64])
        h1, w1 = hid.clone().requires_grad_(True), w.clone().requires_grad_(True)
        got = FusedLinearPreferenceLoss("sigmoid", beta=0.1)(h1, w1, y, ref, ref).loss
        dh, dw = torch.autograd.grad(got, [h1, w1])
        return {"loss": _err(got, want), "dh": _err(dh, dh64), "dw": _err(dw, dw64)}

    check("FusedLinearPreferenceLoss sigmoid bf16", 3e-2, fused_dpo)

    def tpl():
        b, t = 64, 512
        lp = (-torch.rand(2 * b, t, device=dev, generator=g) * 3).requires_grad_(True)
        mask = torch.rand(2 * b, t, device=dev, generator=g) > 0.2
        rc, rr = (-torch.rand(b, device=dev, generator=g) * 500 for _ in range(2))
        errs = {}
        for lt in ("sigmoid", "ipo", "hinge"):
            out = token_preference_loss(lp, mask, rc, rr, loss_type=lt, backend="auto").loss
            (d,) = torch.autograd.grad(out, lp)
            lp64 = lp.detach().double().requires_grad_(True)
            want = token_preference_loss(
                lp64, mask, rc.double(), rr.double(), loss_type=lt, backend="torch"
            ).loss
            (d64,) = torch.autograd.grad(want, lp64)
            errs[lt] = max(_err(out, want), _err(d, d64))
        return errs

    check("token_preference_loss auto (triton on CUDA)", 1e-5, tpl)
    return lines


def _versions() -> str:
    import torch

    parts = [f"torch {torch.__version__}"]
    for mod in ("triton", "trl", "liger_kernel"):
        try:
            from importlib.metadata import version

            parts.append(f"{mod} {version(mod.replace('_', '-'))}")
        except Exception:
            parts.append(f"{mod} -")
    return ", ".join(parts)


def _tables(
    size: str, peak: float | None, md: str, report: dict, write, ops: set[str]
) -> tuple[str, bool]:
    from fastalign.bench import format_table
    from fastalign.bench.workloads import fused_dpo as fused_dpo_workload
    from fastalign.bench.workloads import token_logps as token_logps_workload

    def progress(s: str) -> None:
        print(f"  running {s} ...", file=sys.stderr, flush=True)

    def add_mfu(rows, op_flops):
        for r in rows:
            if r.median_s and peak:
                r.note = (r.note + " " if r.note else "") + (
                    f"MFU {op_flops / r.median_s / (peak * 1e12):.0%}"
                )
        return rows

    sections = []  # (op, heading with the FLOP count, workload, FLOPs)
    if "token_logps" in ops:
        n, h, v = token_logps_workload.shape(size)
        flops = 8 * n * h * v
        sections.append(("token_logps", (
            f"\n## token_logps fwd+bwd\n\nN={n} H={h} V={v}; FLOPs 8*N*H*V = "
            f"{flops / 1e12:.2f} TFLOP (forward + recompute + two gradient GEMMs); peak "
            f"{peak or '-'} TFLOP/s dense bf16; memory floor = inputs + gradients.\n"
        ), token_logps_workload, flops))  # fmt: skip
    if "fused_dpo" in ops:
        # the fused-linear DPO step: 3 matmul passes over the unmasked tokens = 6 N H V FLOPs
        b, t, prompt, dh, dv = fused_dpo_workload.shape(size)
        flops = 6 * (2 * b * (t - prompt)) * dh * dv
        sections.append(("fused_dpo", (
            f"\n## fused DPO step (fwd+bwd to hidden and head)\n\nB={b} pairs T={t} prompt "
            f"{prompt} H={dh} V={dv}; FLOPs 6*tokens*H*V = {flops / 1e12:.2f} TFLOP.\n"
        ), fused_dpo_workload, flops))  # fmt: skip
    rows: list = []
    for op, heading, workload, flops in sections:
        md += heading
        op_rows = add_mfu(workload.run(size, progress=progress), flops)
        table = format_table(op_rows)
        print(table, flush=True)
        md += "\n```\n" + table + "\n```\n"
        report[op] = [dataclasses.asdict(r) | {"ok": r.ok} for r in op_rows]
        rows += op_rows
        write(md)
    return md, any(r.fails_run for r in rows)
