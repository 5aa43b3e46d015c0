# Typed stubs of the native module fastalign._core (checked against the built module by
# mypy's stubtest in CI). The public, documented API is in the Python facades.
import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "_debug_fail",
    "bleu_score",
    "bleu_sentence_scores",
    "bleu_stats",
    "bleu_tokenize",
    "cpu_features",
    "crowding_distance",
    "hypervolume",
    "mgda_weights",
    "non_dominated_sort",
    "num_threads",
    "pama",
    "pareto_pairs",
]

__version__: str

def pama(advantages: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def mgda_weights(
    gram: npt.NDArray[np.float64], tol: float, max_iter: int
) -> npt.NDArray[np.float64]: ...
def _debug_fail(kind: str) -> None: ...
def cpu_features() -> list[str]: ...
def num_threads() -> int: ...
def non_dominated_sort(
    f: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]: ...
def crowding_distance(
    f: npt.NDArray[np.float64],
    fronts: npt.NDArray[np.int64] | None = None,
    offsets: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]: ...
def hypervolume(
    f: npt.NDArray[np.float64],
    reference: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]: ...
def pareto_pairs(
    f: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64], all: bool
) -> npt.NDArray[np.int64]: ...

_BleuOptions = tuple[str, str, str, float | None, bool, int, bool]

def bleu_sentence_scores(
    hyps: list[str],
    refs: list[list[str | None]],
    opts: _BleuOptions,
    threads: int | None = None,
) -> npt.NDArray[np.float64]: ...
def bleu_stats(
    hyps: list[str],
    refs: list[list[str | None]],
    opts: _BleuOptions,
    summed: bool,
    threads: int | None = None,
) -> npt.NDArray[np.uint64]: ...
def bleu_score(
    stats: list[int], opts: _BleuOptions
) -> tuple[float, list[float], float, int, int]: ...
def bleu_tokenize(texts: list[str], opts: _BleuOptions) -> list[str]: ...
