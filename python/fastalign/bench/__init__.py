"""``fastalign bench``: every op side by side with its reference and installed peers.

Each workload (``fastalign.bench.workloads``) runs fastalign's implementation and its
baselines on the same synthetic, seeded inputs in this process and reports, per row, the
median time, the speed-up over the baseline row and the max error against a float64 /
reference result. A row whose result is wrong is marked FAIL, whatever its time.
"""

from __future__ import annotations

from fastalign.bench._harness import SIZES, Row, format_table, run, to_json

__all__ = ["SIZES", "Row", "format_table", "run", "to_json"]
