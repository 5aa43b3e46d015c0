"""``fastalign bench``: every op side by side with its reference and installed peers.

Each workload (one module per workload under :mod:`fastalign.bench.workloads`) runs
fastalign's implementation and its baselines on the same synthetic, seeded inputs and reports,
per row, the median time, the speed-up over the baseline row and the max error against a
float64 / reference result. A row whose result is wrong is marked FAIL, whatever its time.

The package's pieces: :func:`run` (here) drives the workloads; ``_harness`` holds the row type,
the timer and the text / JSON output; ``plot`` draws the figure; ``_isolated`` runs one row in
a process of its own (peak memory); ``prefdata`` and ``tiny_lm`` build the shipped dataset and
the tiny models the workloads, tests and examples share.

Example::

    >>> from fastalign import bench
    >>> rows = bench.run(only=["pama"], size="quick", progress=None)
    >>> sorted({r.impl for r in rows})
    ['fastalign (rust)', 'numpy (vectorized)']
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from fastalign._validate import check_choice
from fastalign.bench._harness import SIZES, Row, fill_speedups, format_table, to_json
from fastalign.bench.workloads import WORKLOADS
from fastalign.errors import InvalidInputError


def _progress(stream: TextIO | None, i: int, n: int, label: str) -> None:
    if stream is not None:
        stream.write(f"\r[{i}/{n}] {label:<60.60}")
        stream.flush()


def run(
    only: Iterable[str] | None = None,
    size: str = "default",
    progress: TextIO | None = sys.stderr,
) -> list[Row]:
    """Run the workloads named in ``only`` (all when None, in :data:`WORKLOADS` order) at
    ``size`` (one of :data:`SIZES`); return their rows, speed-ups filled in."""
    size = check_choice(size, "size", SIZES)
    names = list(WORKLOADS) if only is None else list(only)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise InvalidInputError(f"unknown workload(s) {unknown}; available: {sorted(WORKLOADS)}")
    rows: list[Row] = []
    for i, name in enumerate(names, 1):
        _progress(progress, i, len(names), f"{name} ({size})")
        rows.extend(WORKLOADS[name](size))
    if progress is not None:
        progress.write("\r" + " " * 70 + "\r")
    fill_speedups(rows)
    return rows


__all__ = ["SIZES", "WORKLOADS", "Row", "format_table", "run", "to_json"]
