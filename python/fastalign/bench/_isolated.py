"""One benchmark row in its own process, so that its peak memory is its own.

``python -m fastalign.bench._isolated OP IMPL SIZE OUT`` builds the seeded inputs of ``OP``
at ``SIZE``, runs ``IMPL`` once to warm up, ``repeat`` times for the median time, and once
more for memory: the peak resident set size of that run above the RSS before it (Linux
``VmHWM``, reset through ``/proc/self/clear_refs``; on CUDA ``max_memory_allocated`` above
the allocated bytes before it). It saves the outputs and the measurements to ``OUT`` for
the parent to check against its float64 reference.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastalign.bench._harness import Row, status_mb

# op name -> module with ``run_impl(op, impl, size, measure)`` (the child side)
ROW_TIMEOUT_S = 600  # one row's process, start to end; a hung row becomes a FAIL row
OPS = {
    "token_logps": "fastalign.bench.workloads.token_logps",
    "fused_dpo": "fastalign.bench.workloads.fused_dpo",
    "trl_dpo": "fastalign.bench.workloads.trl_dpo",
    "distill": "fastalign.bench.workloads.distill",
}


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _malloc_returns_large_blocks() -> None:
    """Make glibc serve every large block with mmap and give it back on free (its default
    threshold grows after frees and keeps freed tensors resident), and trim what it holds,
    so that the resident set tracks live memory from here on."""
    import ctypes

    libc = ctypes.CDLL(None)
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1 << 20)
    libc.malloc_trim(0)


def measure(step: Callable[[], Any], repeat: int, device: str) -> dict[str, Any]:
    """One warm-up run (loads code, JIT-compiles kernels), ``repeat`` timed runs, then one
    run whose peak memory above what was resident before it (inputs, loaded code) is the
    row's memory: the memory the op itself needs."""
    import gc

    import torch

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        repeat = max(repeat, 10)  # GPU steps are short: a median of at least ten
    out = step()
    times = []
    for _ in range(max(1, repeat)):
        out = None
        sync()
        t0 = time.perf_counter()
        out = step()
        sync()
        times.append(time.perf_counter() - t0)
    out = None
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        _malloc_returns_large_blocks()
        _reset_peak_rss()
        base = status_mb("VmRSS")
    out = step()
    sync()
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20 - base
    else:
        peak = status_mb("VmHWM") - base
    return {"median_s": statistics.median(times), "peak_mb": peak, "out": out}


def matmul_floor(h: Any, w: Any, *, logits_passes: int) -> Callable[[], tuple]:
    """The compute floor of a fused head: ``logits_passes`` logits GEMMs (``h @ w.T``), then
    the two gradient GEMMs (``g @ w`` and ``g.T @ h``), each a plain ``torch.mm``."""
    import torch

    g = torch.randn(h.shape[0], w.shape[0], device=h.device, dtype=h.dtype)

    def step() -> tuple:
        for _ in range(logits_passes):
            torch.mm(h, w.t())
        torch.mm(g, w)
        torch.mm(g.t(), h)
        return ()

    return step


def isolated_rows(
    op: str,
    workload: str,
    impls: Sequence[str],
    size: str,
    *,
    baseline: str,
    reference: Callable[[], Sequence[Any]],
    tol: float,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Parent side: run each implementation in a fresh process and check its outputs against
    ``reference()`` (computed once, lazily): max normwise relative error over the outputs."""
    import torch

    ref = None
    out: list[Row] = []
    for impl in impls:
        if progress:
            progress(impl)
        with tempfile.TemporaryDirectory() as tmp:
            base = os.path.join(tmp, "row")
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "fastalign.bench._isolated", op, impl, size, base],
                    capture_output=True,
                    text=True,
                    timeout=ROW_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                out.append(Row(op, workload, impl, None, error=f"over {ROW_TIMEOUT_S} s"))
                continue
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                out.append(Row(op, workload, impl, None, error=last[:120]))
                continue
            with open(base + ".json") as f:
                meas = json.load(f)
            outs = torch.load(base + ".pt")
        row = Row(
            op, workload, impl, meas["median_s"], peak_mb=meas["peak_mb"], baseline=impl == baseline
        )
        if outs:
            if ref is None:
                ref = reference()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # leave the card to the next rows' processes
            errs = [
                float((o.to(r.device).double() - r).abs().max() / r.abs().max().clamp(min=1e-300))
                for o, r in zip(outs, ref, strict=True)
            ]
            row.max_err, row.tol = max(errs), tol
        out.append(row)
    return out


def main(argv: list[str]) -> int:
    import torch

    op, impl, size, out_path = argv
    result = importlib.import_module(OPS[op]).run_impl(op, impl, size, measure)
    outs = result.pop("out")
    torch.save([o.detach().cpu() for o in outs], out_path + ".pt")
    with open(out_path + ".json", "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
