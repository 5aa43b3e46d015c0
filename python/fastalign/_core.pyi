# Typed stubs of the native module fastalign._core (checked against the built module by
# mypy's stubtest in CI). The public, documented API is in the Python facades.
import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "_debug_fail",
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
