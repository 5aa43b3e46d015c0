"""The embedded default workloads of ``fastalign bench`` (synthetic, seeded), one module each.

Every module has ``run(size) -> list[Row]``: it times fastalign and its baselines on the same
inputs, in the same process (or, for the LM-head and trainer workloads, each implementation in
a process of its own, see :mod:`fastalign.bench._isolated`), and computes each row's error
against a float64 / reference result. :data:`WORKLOADS` lists them in the order the bench runs
them; a module imports NumPy, torch and the peers inside ``run``, so this table is cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from fastalign.bench._harness import Row
from fastalign.bench.workloads import (
    bleu,
    dedup,
    distill,
    dpo_loss,
    fused_dpo,
    logps_from_logits,
    pama,
    pareto,
    prefdata,
    rank,
    rl,
    token_logps,
    trl_dpo,
)

Workload = Callable[[str], list[Row]]

WORKLOADS: dict[str, Workload] = {
    "pama": pama.run,
    "logps_from_logits": logps_from_logits.run,
    "token_logps": token_logps.run,
    "fused_dpo": fused_dpo.run,
    "trl_dpo": trl_dpo.run,
    "distill": distill.run,
    "dpo_loss": dpo_loss.run,
    "prefdata": prefdata.run,
    "pareto": pareto.run,
    "rl": rl.run,
    "bleu": bleu.run,
    "dedup": dedup.run,
    "rank": rank.run,
}

__all__ = ["WORKLOADS", "Workload"]
