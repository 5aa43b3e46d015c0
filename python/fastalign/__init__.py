"""fastalign: the math of LLM alignment, made fast and exact.

GPU/torch side: fused log-probs and alignment losses (Triton kernels, a chunked torch path for
CPU, and a naive reference). CPU side, in Rust: preference graphs, Pareto / multi-objective
solves, BLEU rewards, dataset dedup.

``import fastalign`` is cheap: it loads the small native module and nothing else. torch, NumPy
and Triton are imported by the submodules that need them, on first use::

    >>> import fastalign
    >>> fastalign.pareto.pama([[0.5, 2.0], [-1.0, 3.0]])
    array([0.5, 0. ])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fastalign._core import __version__
from fastalign.errors import (
    AllocationError,
    BackendUnavailableError,
    ConvergenceError,
    FastalignError,
    InternalError,
    InvalidInputError,
    ShapeError,
)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from fastalign import bleu, dedup, divergence, losses, pareto, rank, rewards, rl
    from fastalign.divergence import token_divergence
    from fastalign.logprobs import logps_from_logits, sequence_logps, token_logps

__all__ = [
    "AllocationError",
    "BackendUnavailableError",
    "ConvergenceError",
    "FastalignError",
    "InternalError",
    "InvalidInputError",
    "ShapeError",
    "__version__",
    "bleu",
    "dedup",
    "divergence",
    "logps_from_logits",
    "losses",
    "pareto",
    "rank",
    "rewards",
    "rl",
    "sequence_logps",
    "token_divergence",
    "token_logps",
]

# name -> (module, attribute or None for the module itself); resolved on first access.
_LAZY: dict[str, tuple[str, str | None]] = {
    "logps_from_logits": ("fastalign.logprobs", "logps_from_logits"),
    "bleu": ("fastalign.bleu", None),
    "dedup": ("fastalign.dedup", None),
    "divergence": ("fastalign.divergence", None),
    "losses": ("fastalign.losses", None),
    "pareto": ("fastalign.pareto", None),
    "rank": ("fastalign.rank", None),
    "rewards": ("fastalign.rewards", None),
    "rl": ("fastalign.rl", None),
    "sequence_logps": ("fastalign.logprobs", "sequence_logps"),
    "token_divergence": ("fastalign.divergence", "token_divergence"),
    "token_logps": ("fastalign.logprobs", "token_logps"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fastalign' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
