"""Timing, result rows and output formats shared by every benchmark workload."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

SIZES = ("quick", "default", "full")


def have(module: str) -> bool:
    """Whether ``module`` is importable (checked without importing it): peers get a row only
    when installed."""
    return importlib.util.find_spec(module) is not None


@dataclasses.dataclass
class Row:
    """One implementation of one op on one workload."""

    op: str
    workload: str
    impl: str
    median_s: float | None
    baseline: bool = False
    max_err: float | None = None
    tol: float | None = None
    peak_mb: float | None = None
    note: str = ""
    speedup: float | None = None
    error: str | None = None  # an exception message: the row failed to run

    @property
    def fails_run(self) -> bool:
        """A wrong result anywhere, or a fastalign row that did not run, fails the bench; a
        peer that cannot run here is shown with its error but does not."""
        if self.error is not None:
            return self.impl.startswith("fastalign")
        return not self.ok

    @property
    def ok(self) -> bool:
        if self.error is not None:
            return False
        if self.max_err is None or self.tol is None:
            return True
        return math.isfinite(self.max_err) and self.max_err <= self.tol


def time_median(fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs, and its last
    result. Callers synchronize devices inside ``fn`` when timing asynchronous work."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def fill_speedups(rows: Sequence[Row]) -> None:
    base: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.baseline and r.median_s:
            base[(r.op, r.workload)] = r.median_s
    for r in rows:
        b = base.get((r.op, r.workload))
        if b and r.median_s and r.ok:
            r.speedup = b / r.median_s


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table, one line per row, grouped by op and workload."""
    header = ("op", "workload", "impl", "median", "speed-up", "peak MB", "max err", "ok")
    lines = []
    for r in rows:
        status = "ok" if r.ok else "FAIL"
        err = "-" if r.max_err is None else f"{r.max_err:.1e}"
        if r.tol is not None and r.max_err is not None:
            err += f" (<= {r.tol:.0e})"
        speed = "baseline" if r.baseline else ("-" if r.speedup is None else f"{r.speedup:.2f}x")
        if r.error is not None:
            status = f"FAIL: {r.error}"
        lines.append(
            (
                r.op,
                r.workload,
                r.impl + (f" [{r.note}]" if r.note else ""),
                "-" if not r.ok else _fmt_time(r.median_s),
                speed,
                "-" if r.peak_mb is None else f"{r.peak_mb:.0f}",
                err,
                status,
            )
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) for line in lines]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from fastalign import _core

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "rust_threads": _core.sys_num_threads(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    return info


def to_json(rows: Sequence[Row], size: str) -> str:
    payload = {
        "size": size,
        "machine": machine(),
        "rows": [dataclasses.asdict(r) | {"ok": r.ok} for r in rows],
    }
    return json.dumps(payload, indent=2)


def status_mb(field: str = "VmRSS") -> float:
    """A memory figure of this process from ``/proc/self/status`` (Linux), in MB: ``VmRSS``
    (resident now) or ``VmHWM`` (the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")
