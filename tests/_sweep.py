"""The bad-input sweep's table and its worker (run by tests/test_sweep.py, one process per
public function, so that a hang or an abort is caught as such).

Each row: a public callable, a valid call on tiny inputs, and the arguments to spoil, each
with a kind. Every kind has its classes of bad values. A spoiled call must raise an exception
of fastalign's family (``TypeError``, a ``FastalignError``, ``MemoryError``, ``UnicodeError``)
whose message names the argument; or, for the classes marked ``same`` (a non-contiguous view
of valid data) give the result of the valid call; or, for those marked ``any`` (NaN / inf in a
tensor, an empty batch), either raise as above or return.

``python tests/_sweep.py NAME`` prints one JSON line per case: the case, and what happened.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

# kind -> [(class, how the valid value is spoiled, what is allowed: "raise" | "same" | "any")]
SPOIL: dict[str, list[tuple[str, Callable[[Any], Any], str]]] = {
    "texts": [
        ("None", lambda v: None, "raise"),
        ("a single str", lambda v: "just one text", "raise"),
        ("a set", lambda v: set(v), "raise"),
        ("a dict", lambda v: dict.fromkeys(v, 1), "raise"),
        ("bytes", lambda v: b"a b c", "raise"),
        ("a None item", lambda v: [*v[:-1], None], "raise"),
        ("an int item", lambda v: [*v[:-1], 3], "raise"),
        ("a lone surrogate", lambda v: [*v[:-1], "bad \ud800 text"], "raise"),
        ("empty", lambda v: [], "any"),
    ],
    "refs": [  # references: None entries are missing references, allowed
        ("None", lambda v: None, "raise"),
        ("a single str", lambda v: "just one text", "raise"),
        ("a set", lambda v: set(v), "raise"),
        ("a dict", lambda v: dict.fromkeys(v, 1), "raise"),
        ("an int item", lambda v: [*v[:-1], 3], "raise"),
        ("a lone surrogate", lambda v: [*v[:-1], "bad \ud800 text"], "raise"),
        ("empty", lambda v: [], "raise"),
    ],
    "text": [
        ("None", lambda v: None, "raise"),
        ("an int", lambda v: 3, "raise"),
        ("bytes", lambda v: b"a b", "raise"),
        ("a lone surrogate", lambda v: "bad \ud800", "raise"),
    ],
    "farray": [
        ("None", lambda v: None, "raise"),
        ("a str", lambda v: "1 2 3", "raise"),
        ("complex", lambda v: np.asarray(v) + 1j, "raise"),
        ("objects", lambda v: np.asarray(v).astype(object).astype(str), "raise"),
        ("NaN", lambda v: _set_first(np.asarray(v, dtype=float), math.nan), "raise"),
        ("inf", lambda v: _set_first(np.asarray(v, dtype=float), math.inf), "raise"),
        ("one more dimension", lambda v: np.asarray(v)[None], "raise"),
        ("a non-contiguous view", lambda v: _strided(np.asarray(v, dtype=float)), "same"),
    ],
    "ids": [
        ("None", lambda v: None, "raise"),
        ("floats", lambda v: np.asarray(v, dtype=float) + 0.5, "raise"),
        ("a negative id", lambda v: _set_first(np.asarray(v), -1), "raise"),
        ("a huge id", lambda v: _set_first(np.asarray(v), 2**62), "raise"),
        ("one entry short", lambda v: np.asarray(v)[:-1], "raise"),
        ("a non-contiguous view", lambda v: _strided(np.asarray(v)), "same"),
    ],
    "tensor": [
        ("None", lambda v: None, "raise"),
        ("a list", lambda v: v.tolist(), "raise"),
        ("integers", lambda v: v.long(), "raise"),
        ("one more dimension", lambda v: v[None], "raise"),
        ("one row short", lambda v: v[:-1], "raise"),
        ("NaN", lambda v: _tset_first(v, math.nan), "any"),
        ("a non-contiguous view", lambda v: _tstrided(v), "same"),
    ],
    "lengths": [
        ("None", lambda v: None, "raise"),
        ("a list", lambda v: v.tolist(), "raise"),
        ("one more dimension", lambda v: v[None], "raise"),
        ("one row short", lambda v: v[:-1], "raise"),
        ("negative", lambda v: -v, "raise"),
        ("a non-contiguous view", lambda v: _tstrided(v), "same"),
    ],
    "int": [
        ("negative", lambda v: -1, "raise"),
        ("beyond 64 bits", lambda v: 2**70, "raise"),
        ("a bool", lambda v: True, "raise"),
        ("a str", lambda v: "3", "raise"),
        ("a float", lambda v: 3.5, "raise"),
    ],
    "float": [
        ("NaN", lambda v: math.nan, "raise"),
        ("inf", lambda v: math.inf, "raise"),
        ("negative", lambda v: -1.0, "raise"),
        ("a str", lambda v: "0.1", "raise"),
        ("a bool", lambda v: True, "raise"),
    ],
    "real": [  # any finite number is in the domain
        ("NaN", lambda v: math.nan, "raise"),
        ("inf", lambda v: math.inf, "raise"),
        ("a str", lambda v: "0.1", "raise"),
        ("a bool", lambda v: True, "raise"),
    ],
    "choice": [("unknown", lambda v: "no-such-choice", "raise"), ("an int", lambda v: 3, "raise")],
    "bool": [("a str", lambda v: "no", "raise"), ("an int", lambda v: 2, "raise")],
}


# an optional tensor: None is a valid value, the other classes are not
SPOIL["otensor"] = [case for case in SPOIL["tensor"] if case[0] != "None"]


def _set_first(a: np.ndarray, value: Any) -> np.ndarray:
    a = np.array(a, copy=True)
    a.reshape(-1)[0] = value
    return a


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (every other element of a doubled array)."""
    big = np.repeat(a[..., None], 2, axis=-1)
    return big[..., 0]


def _tset_first(t: Any, value: float) -> Any:
    t = t.detach().clone()
    t.reshape(-1)[0] = value
    return t


def _tstrided(t: Any) -> Any:
    import torch

    return torch.stack([t, t], dim=-1)[..., 0]


@dataclasses.dataclass
class Row:
    call: Callable[..., Any]  # call(**arguments)
    valid: Callable[[], dict[str, Any]]  # the valid arguments (fresh each time)
    # argument -> kind, or (kind, {class: what is allowed instead, or None to skip it})
    spoil: dict[str, str | tuple[str, dict[str, str | None]]]


# classes that are valid for some arguments
INF_OK = {"inf": "any"}  # points of a Pareto set: inf is an order like any other
NDIM_OK = {"one more dimension": None}  # a leading batch dimension is part of the API
VOCAB = {"one row short": None}  # a head with one row less is a smaller vocabulary
RANKING = {"one entry short": None}  # the offsets then do not fit: they are named instead
NAN_OK = {"NaN": "any"}  # a score matrix: NaN is a judge that did not score the item


def _t(*shape: int, seed: int = 0) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    return -torch.rand(*shape, generator=g, dtype=torch.float64) * 3


TEXTS = ["the cat sat on the mat", "the cat sat on a mat", "a dog barked"]


def _rows() -> dict[str, Row]:
    """The table, built lazily (each process imports only what its row needs)."""
    from fastalign import bleu, dedup, losses, pareto, rank, rewards, rl
    from fastalign import divergence as dv
    from fastalign import logprobs as lp

    F = [[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]]
    P = [[0.0, 3.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]]
    W, L = [0, 0, 1, 2, 2, 1], [1, 2, 2, 0, 1, 0]

    def pair4(**kw: Any) -> dict[str, Any]:
        names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps")
        return {n: _t(4, seed=s) for s, n in enumerate((*names, "ref_rejected_logps"), 1)} | kw

    def pair2(lengths: bool = False, **kw: Any) -> dict[str, Any]:
        import torch

        d = {"policy_chosen_logps": _t(4, seed=1), "policy_rejected_logps": _t(4, seed=2)}
        if lengths:
            d |= {
                "chosen_lengths": torch.full((4,), 3.0),
                "rejected_lengths": torch.full((4,), 2.0),
            }
        return d | kw

    def head(**kw: Any) -> dict[str, Any]:
        import torch

        return dict(hidden=_t(5, 4, seed=1), weight=_t(7, 4, seed=2),
                    labels=torch.tensor([1, 2, -100, 6, 0]), **kw)  # fmt: skip

    def grpo(**kw: Any) -> dict[str, Any]:
        import torch

        adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
        return {"logps": _t(2, 3), "old_logps": None, "advantages": adv,
                "mask": torch.ones(2, 3)} | kw  # fmt: skip

    rows = {
        # text metrics and rewards
        "bleu.sentence_bleu": Row(
            bleu.sentence_bleu,
            lambda: dict(hypothesis=TEXTS[0], references=TEXTS[1:]),
            {"hypothesis": "text", "references": "refs"},
        ),
        "bleu.corpus_bleu": Row(
            bleu.corpus_bleu,
            lambda: dict(hypotheses=TEXTS, references=[TEXTS]),
            {"hypotheses": "texts"},
        ),
        "bleu.sentence_scores": Row(
            bleu.sentence_scores,
            lambda: dict(hypotheses=TEXTS, references=[[t] for t in TEXTS]),
            {"hypotheses": "texts"},
        ),
        "bleu.tokenize": Row(bleu.tokenize, lambda: dict(texts=TEXTS), {"texts": "texts"}),
        "bleu.BLEU": Row(
            bleu.BLEU,
            lambda: dict(lowercase=False, max_ngram_order=4, tokenize="13a", smooth_value=None),
            {"lowercase": "bool", "max_ngram_order": "int", "tokenize": "choice"},
        ),
        "rewards.bleu_reward": Row(
            rewards.bleu_reward,
            lambda: dict(completions=TEXTS, reference=TEXTS),
            {"completions": "texts"},
        ),
        "rewards.BLEUReward": Row(
            rewards.BLEUReward, lambda: dict(flavor="sacrebleu"), {"flavor": "choice"}
        ),
        # dedup
        "dedup.dedup": Row(
            dedup.dedup,
            lambda: dict(texts=TEXTS, threshold=0.5, num_perm=16, ngram=2, seed=0, threads=1),
            {
                "texts": "texts",
                "threshold": "float",
                "num_perm": "int",
                "ngram": "int",
                "seed": "int",
                "threads": "int",
            },
        ),
        "dedup.exact": Row(
            dedup.exact, lambda: dict(texts=TEXTS, threads=1), {"texts": "texts", "threads": "int"}
        ),
        "dedup.signatures": Row(
            dedup.signatures,
            lambda: dict(texts=TEXTS, num_perm=16),
            {"texts": "texts", "num_perm": "int"},
        ),
        "dedup.normalize_text": Row(
            dedup.normalize_text, lambda: dict(texts=TEXTS), {"texts": "texts"}
        ),
        "dedup.lsh_params": Row(
            dedup.lsh_params,
            lambda: dict(threshold=0.8, num_perm=64),
            {"threshold": "float", "num_perm": "int"},
        ),
        "dedup.dedup_signatures": Row(
            dedup.dedup_signatures,
            lambda: dict(sigs=dedup.signatures(TEXTS, num_perm=16), threshold=0.5),
            {"threshold": "float"},
        ),
        "dedup.contamination": Row(
            dedup.contamination,
            lambda: dict(train=TEXTS, eval=TEXTS[:2], num_perm=16),
            {"train": "texts", "eval": "texts"},
        ),
        "dedup.MinHashIndex": Row(
            dedup.MinHashIndex,
            lambda: dict(threshold=0.5, num_perm=16),
            {"threshold": "float", "num_perm": "int"},
        ),
        "dedup.MinHashIndex.add": Row(
            lambda texts: dedup.MinHashIndex(num_perm=16).add(texts),
            lambda: dict(texts=TEXTS),
            {"texts": "texts"},
        ),
        "dedup.MinHashIndex.query": Row(
            lambda texts: dedup.MinHashIndex(num_perm=16).query(texts),
            lambda: dict(texts=TEXTS),
            {"texts": "texts"},
        ),
        "dedup.record_texts": Row(
            dedup.record_texts,
            lambda: dict(records=[{"prompt": t} for t in TEXTS], key="prompt"),
            {},
        ),
        "dedup.dedup_records": Row(
            dedup.dedup_records,
            lambda: dict(records=[{"prompt": t} for t in TEXTS], exact_only=True),
            {},
        ),
        "dedup.Normalization": Row(dedup.Normalization, lambda: dict(nfkc=True), {}),
        # Pareto
        "pareto.pama": Row(pareto.pama, lambda: dict(advantages=F), {"advantages": "farray"}),
        "pareto.non_dominated_sort": Row(
            pareto.non_dominated_sort, lambda: dict(F=F), {"F": ("farray", INF_OK)}
        ),
        "pareto.pareto_front": Row(
            pareto.pareto_front, lambda: dict(F=F), {"F": ("farray", INF_OK)}
        ),
        "pareto.crowding_distance": Row(
            pareto.crowding_distance, lambda: dict(F=F), {"F": ("farray", INF_OK)}
        ),
        "pareto.hypervolume": Row(
            pareto.hypervolume,
            lambda: dict(F=F, ref=[4.0, 4.0]),
            {"F": ("farray", INF_OK), "ref": "farray"},
        ),
        "pareto.pareto_pairs": Row(
            pareto.pareto_pairs, lambda: dict(F=F), {"F": ("farray", INF_OK)}
        ),
        "pareto.mgda_weights": Row(
            pareto.mgda_weights,
            lambda: dict(gram=[[2.0, 1.0], [1.0, 3.0]], tol=1e-12, max_iter=100),
            {"gram": ("farray", NDIM_OK), "tol": "float", "max_iter": "int"},
        ),
        "pareto.dpa_rewards": Row(
            pareto.dpa_rewards,
            lambda: dict(R=F, direction=[0.6, 0.8]),
            {"R": ("farray", NDIM_OK), "direction": "farray"},
        ),
        # ranking
        "rank.bradley_terry": Row(
            rank.bradley_terry,
            lambda: dict(winners=W, losers=L, prior=0.1, max_iter=100),
            {"winners": "ids", "losers": "ids", "prior": "float", "max_iter": "int"},
        ),
        "rank.elo": Row(
            rank.elo,
            lambda: dict(winners=W, losers=L, k=4.0),
            {"winners": "ids", "losers": "ids", "k": "real"},
        ),
        "rank.preference_matrix": Row(
            rank.preference_matrix,
            lambda: dict(winners=W, losers=L),
            {"winners": "ids", "losers": "ids"},
        ),
        "rank.plackett_luce": Row(
            rank.plackett_luce,
            lambda: dict(rankings=[0, 1, 2, 1, 2, 0, 2, 0, 1], offsets=[0, 3, 6, 9], prior=0.1),
            {"rankings": ("ids", RANKING), "prior": "float"},
        ),
        "rank.borda": Row(
            rank.borda,
            lambda: dict(rankings=[0, 1, 2, 1, 0, 2], offsets=[0, 3, 6]),
            {"rankings": ("ids", RANKING)},
        ),
        "rank.maximal_lottery": Row(rank.maximal_lottery, lambda: dict(P=P), {"P": "farray"}),
        "rank.copeland": Row(rank.copeland, lambda: dict(P=P), {"P": "farray"}),
        "rank.schulze": Row(rank.schulze, lambda: dict(P=P), {"P": "farray"}),
        "rank.cycles": Row(rank.cycles, lambda: dict(P=P), {"P": "farray"}),
        "rank.kemeny": Row(rank.kemeny, lambda: dict(P=P), {"P": "farray"}),
        "rank.score_comparisons": Row(
            rank.score_comparisons, lambda: dict(scores=F), {"scores": ("farray", NAN_OK)}
        ),
        "rank.preference_pairs": Row(
            rank.preference_pairs,
            lambda: dict(scores=[0.1, 0.5, 0.3, 0.9], offsets=[0, 2, 4], k=1),
            {"scores": "farray", "k": "int"},
        ),
        # log-probs
        "logprobs.token_logps": Row(
            lp.token_logps, head, {"hidden": "tensor", "weight": ("tensor", VOCAB)}
        ),
        "logprobs.sequence_logps": Row(
            lp.sequence_logps,
            lambda: dict(
                hidden=_t(2, 3, 4),
                weight=_t(7, 4, seed=2),
                labels=__import__("torch").tensor([[1, 2, -100], [3, 4, 5]]),
            ),
            {"hidden": "tensor", "weight": ("tensor", VOCAB)},
        ),
        "logprobs.fused_head": Row(
            lp.fused_head, head, {"hidden": "tensor", "weight": ("tensor", VOCAB)}
        ),
        "logprobs.logps_from_logits": Row(
            lp.logps_from_logits,
            lambda: dict(logits=_t(5, 7), labels=__import__("torch").tensor([1, 2, -100, 6, 0])),
            {"logits": "tensor"},
        ),
        "logprobs.HeadOptions": Row(
            lp.HeadOptions, lambda: dict(temperature=1.0), {"temperature": "float"}
        ),
        # losses
        "losses.preference_loss": Row(
            losses.preference_loss,
            lambda: pair4(beta=0.1),
            {"policy_chosen_logps": "tensor", "beta": "float"},
        ),
        "losses.simpo": Row(
            losses.simpo,
            lambda: pair2(lengths=True),
            {"policy_chosen_logps": "tensor", "chosen_lengths": "lengths"},
        ),
        "losses.cpo": Row(
            losses.cpo,
            lambda: pair2(alpha=0.0),
            {"policy_chosen_logps": "tensor"},
        ),
        "losses.orpo": Row(
            losses.orpo, lambda: pair2(lengths=True), {"policy_chosen_logps": "tensor"}
        ),
        "losses.slic": Row(
            losses.slic,
            lambda: pair2(lam=0.1),
            {"policy_chosen_logps": "tensor", "lam": "float"},
        ),
        "losses.rpo": Row(
            losses.rpo, lambda: pair4(eta=0.1), {"policy_chosen_logps": "tensor", "eta": "float"}
        ),
        "losses.mappo": Row(
            losses.mappo,
            lambda: pair4(reward_gap=-_t(4, seed=9) / 3),  # in [0, 1]
            {"policy_chosen_logps": "tensor"},
        ),
        "losses.kto": Row(
            losses.kto,
            lambda: dict(
                policy_logps=_t(4),
                ref_logps=_t(4, seed=2),
                desirable=__import__("torch").tensor([1, 0, 1, 0]),
                z0=0.0,
            ),
            {"policy_logps": "tensor", "z0": "real"},
        ),
        "losses.BetaDPO": Row(
            losses.BetaDPO, lambda: dict(beta=0.1, alpha=0.0), {"beta": "float", "alpha": "float"}
        ),
        "losses.inpo": Row(
            losses.inpo,
            lambda: pair4(prev_chosen_logps=_t(4, seed=5), prev_rejected_logps=_t(4, seed=6)),
            {"policy_chosen_logps": "tensor"},
        ),
        "losses.grpo_loss": Row(
            losses.grpo_loss, lambda: grpo(beta=0.0), {"logps": "tensor", "beta": "float"}
        ),
        "losses.pama_loss": Row(
            losses.pama_loss, lambda: grpo(advantages=_t(2, 3, seed=5)), {"logps": "tensor"}
        ),
        # RL estimators
        "rl.gae": Row(
            rl.gae,
            lambda: dict(
                rewards=_t(2, 3, seed=1),
                values=_t(2, 3, seed=2),
                mask=__import__("torch").ones(2, 3),
                gamma=0.99,
                lam=0.95,
                last_values=_t(2, seed=3),
            ),
            {
                "rewards": "tensor",
                "values": "tensor",
                "last_values": "otensor",
                "gamma": "float",
                "lam": "float",
            },
        ),
        "rl.discounted_returns": Row(
            rl.discounted_returns,
            lambda: dict(rewards=_t(2, 3, seed=1), mask=__import__("torch").ones(2, 3), gamma=0.9),
            {"rewards": "tensor", "gamma": "float"},
        ),
        "rl.rloo_advantages": Row(
            rl.rloo_advantages,
            lambda: dict(rewards=_t(4), group_size=2),
            {"rewards": "tensor", "group_size": "int"},
        ),
        "rl.kl": Row(
            rl.kl,
            lambda: dict(
                logps=_t(2, 3, seed=1),
                ref_logps=_t(2, 3, seed=2),
                kind="k3",
                where="loss",
                grad="naive",
            ),
            {
                "logps": "tensor",
                "ref_logps": "tensor",
                "kind": "choice",
                "where": "choice",
                "grad": "choice",
            },
        ),
        "rl.group_advantages": Row(
            rl.group_advantages,
            lambda: dict(rewards=_t(4), group_size=2, eps=1e-4),
            {"rewards": "tensor", "group_size": "int", "eps": "float"},
        ),
        "rl.masked_whiten": Row(
            rl.masked_whiten,
            lambda: dict(values=_t(2, 3), mask=__import__("torch").ones(2, 3), style="verl"),
            {"values": "tensor", "style": "choice"},
        ),
        "rl.reinforce_plus_plus": Row(
            rl.reinforce_plus_plus,
            lambda: dict(
                rewards=_t(2, seed=1),
                mask=__import__("torch").ones(2, 3),
                kl=_t(2, 3, seed=2),
                kl_coef=0.1,
                gamma=0.9,
                whiten="verl",
            ),
            {
                "rewards": "tensor",
                "kl": "otensor",
                "kl_coef": "float",
                "gamma": "float",
                "whiten": "choice",
            },
        ),
        "rl.remax_advantages": Row(
            rl.remax_advantages,
            lambda: dict(
                rewards=_t(2, seed=1),
                baseline_rewards=_t(2, seed=2),
                mask=__import__("torch").ones(2, 3),
            ),
            {"rewards": "tensor", "baseline_rewards": "tensor"},
        ),
        # two-head divergences
        "divergence.token_divergence": Row(
            dv.token_divergence,
            lambda: dict(
                student_hidden=_t(4, 3, seed=1),
                student_weight=_t(6, 3, seed=2),
                teacher_hidden=_t(4, 5, seed=3),
                teacher_weight=_t(6, 5, seed=4),
                kind="jsd",
                beta=0.5,
                temperature=1.0,
            ),
            {
                "student_hidden": "tensor",
                "teacher_hidden": "tensor",
                "kind": "choice",
                "beta": "float",
                "temperature": "float",
            },
        ),
        "divergence.topk_divergence": Row(
            dv.topk_divergence,
            lambda: dict(
                student_hidden=_t(4, 3, seed=1),
                student_weight=_t(6, 3, seed=2),
                topk_logprobs=_t(4, 2, seed=3) - 1.0,
                topk_ids=__import__("torch").tensor([[0, 1], [2, 3], [4, 5], [1, 0]]),
                tail="bucket",
            ),
            {"student_hidden": "tensor", "topk_logprobs": "tensor", "tail": "choice"},
        ),
        "divergence.token_unlikelihood": Row(
            dv.token_unlikelihood,
            lambda: head(temperature=1.0),
            {"hidden": "tensor", "temperature": "float"},
        ),
        "losses.group_advantages": Row(
            losses.group_advantages,
            lambda: dict(rewards=_t(4), group_size=2, eps=1e-4),
            {"rewards": "tensor", "group_size": "int", "eps": "float"},
        ),
        "losses.soft_overlong_penalty": Row(
            losses.soft_overlong_penalty,
            lambda: dict(
                lengths=__import__("torch").tensor([3, 8, 12]), max_length=10, cache_length=4
            ),
            {"max_length": "int", "cache_length": "int"},
        ),
        "losses.token_preference_loss": Row(
            losses.token_preference_loss,
            lambda: dict(
                policy_token_logps=_t(4, 3),
                mask=__import__("torch").ones(4, 3, dtype=bool),
                ref_chosen_logps=_t(2, seed=3),
                ref_rejected_logps=_t(2, seed=4),
                beta=0.1,
            ),
            {"policy_token_logps": "tensor", "beta": "float"},
        ),
        "losses.dpa_reward": Row(
            losses.dpa_reward,
            lambda: dict(
                rewards=_t(3, 2),
                direction=__import__("torch").tensor([0.6, 0.8], dtype=__import__("torch").float64),
            ),
            {"rewards": ("tensor", NDIM_OK | VOCAB)},
        ),
    }
    return rows


# Public names that are results, not inputs' consumers (fastalign builds them), or callables
# whose inputs are models and trainers (tested in their own files).
NOT_SWEPT = {
    "bleu.BLEUScore", "dedup.DedupResult", "dedup.ContaminationResult", "dedup.Matches",
    "rank.RankResult", "rank.KemenyResult", "rank.Pairs", "rank.Comparisons", "rank.CycleStats",
    "losses.LossOutput", "logprobs.HeadOutputs",
    # models and modules: their checks have their own tests (test_losses_game, fused_linear)
    "losses.ema_update_", "losses.FusedLinearPreferenceLoss", "losses.FusedLinearGRPOLoss",
    "losses.FusedLinearKTOLoss", "losses.copg", "losses.mnpo", "losses.nash_md", "losses.p3o",
    "losses.pro", "losses.jbond", "losses.rank_grpo_loss",
}  # fmt: skip


def public_callables() -> list[str]:
    import importlib
    import inspect

    out = []
    areas = ("bleu", "dedup", "losses", "pareto", "rank", "rewards", "logprobs", "rl",
             "divergence")  # fmt: skip
    for area in areas:
        mod = importlib.import_module(f"fastalign.{area}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not inspect.ismodule(obj):
                out.append(f"{area}.{name}")
    return out


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape:
            return False
        if a.is_floating_point():  # another memory layout may sum in another order
            return torch.allclose(a.detach(), b.detach(), rtol=1e-12, atol=1e-12, equal_nan=True)
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        if a.dtype.kind == "f":
            return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)
        return np.array_equal(a, b)
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b) if not callable(a) else True


FAMILY = ("TypeError", "MemoryError", "UnicodeError", "UnicodeEncodeError")


def run(name: str) -> None:
    import fastalign

    row = _rows()[name]
    want = row.call(**row.valid())
    for arg, spec in row.spoil.items():
        kind, override = (spec, {}) if isinstance(spec, str) else spec
        for label, spoil, default in SPOIL[kind]:
            allowed = override.get(label, default)
            if allowed is None:
                continue
            args = row.valid()
            args[arg] = spoil(args[arg])
            case = f"{name}({arg}: {label})"
            print(json.dumps({"case": case, "status": "started"}), flush=True)
            try:
                got = row.call(**args)
            except Exception as e:  # the sweep classifies every exception
                ours = isinstance(e, fastalign.FastalignError) or type(e).__name__ in FAMILY
                ok = ours and arg in str(e) and allowed in ("raise", "any")
                why = "" if ok else ("not the family's" if not ours else "does not name it")
                if allowed == "same":
                    ok, why = False, "a valid (non-contiguous) input was refused"
                print(json.dumps({"case": case, "status": "ok" if ok else "bad", "why": why,
                                  "raised": f"{type(e).__name__}: {str(e)[:200]}",
                                  "trace": "" if ok else traceback.format_exc()[-600:]}),
                      flush=True)  # fmt: skip
                continue
            if allowed == "raise":
                ok, why = False, "accepted silently"
            elif allowed == "same":
                ok = _same(want, got)
                why = "" if ok else "a different result than on contiguous data"
            else:
                ok, why = True, ""
            print(json.dumps({"case": case, "status": "ok" if ok else "bad", "why": why}),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    for row_name in sys.argv[1:]:
        run(row_name)
