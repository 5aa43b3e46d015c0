"""The prepared GPU run for fused log-probs (one run on an H100 / H200).

1. Correctness at real sizes: ``pytest tests/gpu`` (fp32 / bf16 / fp16 against float64,
   within 2x of PyTorch's own path in that dtype).
3. The fused-linear DPO step (B=8 pairs, T=2048, H=4096, V=128256 bf16): naive / TRL
   chunked + DPO / Liger's fused linear DPO / fastalign FusedLinearPreferenceLoss.
2. The table, each row in its own process: naive torch, TRL's chunked function, Liger's
   fused linear CE, torch's linear_cross_entropy, fastalign triton and torch; median ms of
   forward + backward with an arbitrary upstream gradient, peak allocated memory above the
   inputs, error vs float64, and MFU = 8 N H V FLOPs / time / the card's dense bf16 peak.

Usage: ``python benches/gpu_logprobs.py [--size default|quick|full|tiny] [--out DIR]``.
``--size tiny`` with ``TRITON_INTERPRET=1`` checks the script itself on CPU (tests do that).
Results go to ``DIR/gpu_logprobs_<card>.json`` and ``.md`` (benches/results/ in the repo).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="default", choices=["tiny", "quick", "default", "full"])
    p.add_argument("--out", default="benches/results")
    p.add_argument("--skip-tests", action="store_true", help="only the table")
    args = p.parse_args(argv)

    from fastalign.bench import dpo_rows, format_table, logprob_rows

    name, peak = card()
    tests_rc = 0
    if not args.skip_tests:
        tests_rc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "tests/gpu", "-m", "gpu"]
        ).returncode
    n, h, v = logprob_rows.shape(args.size)
    flops = 8 * n * h * v

    def progress(s: str) -> None:
        print(f"  running {s} ...", file=sys.stderr)

    def add_mfu(rows, op_flops):
        for r in rows:
            if r.median_s and peak:
                r.note = (r.note + " " if r.note else "") + (
                    f"MFU {op_flops / r.median_s / (peak * 1e12):.0%}"
                )
        return rows

    rows = add_mfu(logprob_rows.rows(args.size, progress=progress), flops)
    # the fused-linear DPO step: 3 matmul passes over the unmasked tokens = 6 N H V FLOPs
    b, t, prompt, dh, dv = dpo_rows.shape(args.size)
    rows += add_mfu(
        dpo_rows.rows(args.size, progress=progress), 6 * (2 * b * (t - prompt)) * dh * dv
    )
    table = format_table(rows)
    header = (
        f"# fused log-probs on {name}\n\nN={n} H={h} V={v}; FLOPs 8*N*H*V = {flops / 1e12:.2f} "
        f"TFLOP (forward + recompute + two gradient GEMMs); peak {peak or '-'} TFLOP/s dense "
        f"bf16; memory floor = inputs + gradients. tests/gpu exit code: {tests_rc}\n"
    )
    print(header)
    print(table)
    out = Path(os.environ.get("OUT") or args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    (out / f"gpu_logprobs_{slug}.md").write_text(header + "\n```\n" + table + "\n```\n")
    (out / f"gpu_logprobs_{slug}.json").write_text(
        json.dumps(
            {
                "card": name,
                "size": args.size,
                "n": n,
                "h": h,
                "v": v,
                "tests_rc": tests_rc,
                "rows": [dataclasses.asdict(r) | {"ok": r.ok} for r in rows],
            },
            indent=2,
        )
    )
    return 0 if tests_rc in (0, 5) and not any(r.fails_run for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
