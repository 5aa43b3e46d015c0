# Typed stubs of the native module fastalign._core (checked against the built module by
# mypy's stubtest in CI). The public, documented API is in the Python facades.
from typing import final

import numpy as np
import numpy.typing as npt

from fastalign.dedup.settings import Banding, Normalization, Shingling

__all__ = [
    "MinHashIndexCore",
    "__version__",
    "bleu_score",
    "bleu_sentence_scores",
    "bleu_stats",
    "bleu_tokenize",
    "dedup_band_keys",
    "dedup_bucket_forest",
    "dedup_cluster",
    "dedup_cluster_signatures",
    "dedup_exact",
    "dedup_jaccard",
    "dedup_lsh_params",
    "dedup_normalize",
    "dedup_signatures",
    "dedup_signatures_utf8",
    "pareto_crowding_distance",
    "pareto_hypervolume",
    "pareto_mgda_weights",
    "pareto_non_dominated_sort",
    "pareto_pairs",
    "pareto_pama",
    "rank_bootstrap_bt",
    "rank_borda",
    "rank_bradley_terry",
    "rank_copeland",
    "rank_cycles",
    "rank_elo",
    "rank_kemeny",
    "rank_maximal_lottery",
    "rank_plackett_luce",
    "rank_preference_pairs",
    "rank_schulze",
    "rank_score_comparisons",
    "rl_gae_f32",
    "rl_gae_f64",
    "sys_cpu_features",
    "sys_debug_fail",
    "sys_num_threads",
]

__version__: str

def pareto_pama(advantages: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def pareto_mgda_weights(
    gram: npt.NDArray[np.float64], tol: float, max_iter: int
) -> npt.NDArray[np.float64]: ...
def sys_debug_fail(kind: str) -> None: ...
def sys_cpu_features() -> list[str]: ...
def sys_num_threads() -> int: ...
def pareto_non_dominated_sort(
    f: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int64]: ...
def pareto_crowding_distance(
    f: npt.NDArray[np.float64],
    fronts: npt.NDArray[np.int64] | None = None,
    offsets: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]: ...
def rl_gae_f64(
    rewards: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64] | None,
    mask: npt.NDArray[np.uint8],
    last_values: npt.NDArray[np.float64] | None,
    gamma: float,
    lam: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def rl_gae_f32(
    rewards: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32] | None,
    mask: npt.NDArray[np.uint8],
    last_values: npt.NDArray[np.float32] | None,
    gamma: float,
    lam: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def pareto_hypervolume(
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

# -- dedup ---------------------------------------------------------------------------------------
_Norm = Normalization
_Shingling = Shingling
_Banding = Banding

_Texts = list[str] | tuple[str, ...]
_ClusterOut = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64] | None,
]
_Matches = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]

def dedup_signatures(
    texts: _Texts, shingling: _Shingling, threads: int | None = None, name: str = "texts"
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]: ...
def dedup_signatures_utf8(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    shingling: _Shingling,
    threads: int | None = None,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.bool_]]: ...
def dedup_band_keys(
    signatures: npt.NDArray[np.uint32], bands: int, rows: int
) -> npt.NDArray[np.uint64]: ...
def dedup_bucket_forest(
    band: npt.NDArray[np.uint32],
    key: npt.NDArray[np.uint64],
    id: npt.NDArray[np.int64],
    signatures: npt.NDArray[np.uint32] | None,
    verify: str,
    threshold: float,
) -> npt.NDArray[np.int64]: ...
def dedup_cluster(
    texts: _Texts,
    shingling: _Shingling,
    banding: _Banding,
    threads: int | None = None,
    name: str = "texts",
) -> tuple[_ClusterOut, npt.NDArray[np.bool_]]: ...
def dedup_cluster_signatures(
    signatures: npt.NDArray[np.uint32], banding: _Banding, threads: int | None = None
) -> tuple[_ClusterOut, npt.NDArray[np.bool_]]: ...
def dedup_exact(
    texts: _Texts, normalize: _Norm, threads: int | None = None, name: str = "texts"
) -> tuple[_ClusterOut, npt.NDArray[np.bool_]]: ...
def dedup_jaccard(
    a: _Texts,
    b: _Texts,
    pairs: npt.NDArray[np.int64],
    shingling: _Shingling,
    threads: int | None = None,
    names: tuple[str, str] = ...,  # ("a", "b")
) -> npt.NDArray[np.float64]: ...
def dedup_normalize(texts: _Texts, normalize: _Norm, name: str = "texts") -> list[str]: ...
def dedup_lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]: ...

@final
class MinHashIndexCore:
    def __new__(
        cls, shingling: _Shingling, banding: _Banding, threads: int | None = None
    ) -> MinHashIndexCore: ...
    def __len__(self) -> int: ...
    @property
    def shingling(self) -> tuple[int, int, str, tuple[bool, bool, bool, bool], int]: ...
    @property
    def banding(self) -> tuple[float, int, int, str]: ...
    def add(self, texts: _Texts, name: str = "texts") -> npt.NDArray[np.bool_]: ...
    def add_signatures(self, signatures: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]: ...
    def query(self, texts: _Texts, name: str = "texts") -> _Matches: ...
    def query_signatures(self, signatures: npt.NDArray[np.uint32]) -> _Matches: ...
    def clusters(self) -> npt.NDArray[np.int64]: ...
    def signatures(self) -> npt.NDArray[np.uint32]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes, threads: int | None = None) -> MinHashIndexCore: ...

# -- ranking ---------------------------------------------------------------------------------
def rank_bradley_terry(
    winners: npt.NDArray[np.int64],
    losers: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64] | None,
    ties: npt.NDArray[np.bool_] | None,
    n_items: int | None,
    prior: float,
    tol: float,
    max_iter: int,
    davidson: bool = False,
) -> tuple[tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], bool, int, float], float]: ...
def rank_maximal_lottery(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def rank_plackett_luce(
    items: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    n_items: int | None,
    prior: float,
    tol: float,
    max_iter: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], bool, int, float]: ...
def rank_elo(
    winners: npt.NDArray[np.int64],
    losers: npt.NDArray[np.int64],
    ties: npt.NDArray[np.bool_] | None,
    n: int,
    k: float,
    scale: float,
    base: float,
    init: float,
) -> npt.NDArray[np.float64]: ...
def rank_borda(
    items: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64], n_items: int | None
) -> npt.NDArray[np.float64]: ...
def rank_copeland(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...
def rank_schulze(
    p: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def rank_cycles(p: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], int, int]: ...
def rank_preference_pairs(
    scores: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    mode: str,
    margin: float,
    k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def rank_bootstrap_bt(
    winners: npt.NDArray[np.int64],
    losers: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64] | None,
    ties: npt.NDArray[np.bool_] | None,
    n: int,
    prior: float,
    tol: float,
    max_iter: int,
    rounds: int,
    seed: int,
    davidson: bool = False,
    threads: int | None = None,
) -> tuple[npt.NDArray[np.float64], int]: ...
def rank_kemeny(
    p: npt.NDArray[np.float64], exact: bool | None = None
) -> tuple[npt.NDArray[np.int64], float, bool]: ...
def rank_score_comparisons(
    scores: npt.NDArray[np.float64], margin: float
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.bool_],
]: ...
