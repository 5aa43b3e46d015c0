"""fastalign.rewards: the BLEU reward as TRL's GRPOTrainer calls it."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import sacrebleu

from fastalign.bench._harness import status_mb
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.rewards import BLEUReward, bleu_reward


def _trl_kwargs(n: int) -> dict:
    """The extra keyword arguments GRPOTrainer passes to a reward function besides the
    dataset columns (trl.trainer.grpo_trainer._calculate_rewards)."""
    return {"completion_ids": [[1, 2]] * n, "trainer_state": object(), "log_extra": print}


def test_plain_completions_equal_sacrebleu_over_100():
    comps = ["The cat sat on the mat.", "A dog barked loudly", ""]
    refs = ["The cat sat on a mat.", "the dog barked", "nothing here"]
    got = bleu_reward(prompts=["p"] * 3, completions=comps, reference=refs, **_trl_kwargs(3))
    want = [sacrebleu.sentence_bleu(c, [r]).score / 100 for c, r in zip(comps, refs, strict=True)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert isinstance(got, list)
    assert all(isinstance(x, float) for x in got)
    assert bleu_reward.__name__ == "bleu_reward"


def test_chat_completions_and_multi_reference_rows():
    comps = [
        [{"role": "assistant", "content": "the quick brown fox"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "jumps over"}]}],
    ]
    refs = [["a quick brown fox", "the quick brown fox"], "jumps over the dog"]
    got = BLEUReward(column="solution")(completions=comps, solution=refs)
    want = [
        sacrebleu.sentence_bleu("the quick brown fox", refs[0]).score / 100,
        sacrebleu.sentence_bleu("jumps over", [refs[1]]).score / 100,
    ]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert BLEUReward(column="solution").__name__ == "bleu_reward_solution"


def test_evaluate_flavor_and_scale():
    r = BLEUReward(flavor="evaluate", scale=2.0)
    got = r(completions=["a b c d e"], reference=["a b c d e"])
    assert got == pytest.approx([2.0])


def test_reward_errors():
    with pytest.raises(InvalidInputError, match="no 'reference' column"):
        bleu_reward(completions=["a"], answer=["a"])
    with pytest.raises(ShapeError, match="2 completions"):
        bleu_reward(completions=["a", "b"], reference=["a"])
    with pytest.raises(TypeError, match="list of completions"):
        bleu_reward(completions="a", reference=["a"])
    with pytest.raises(TypeError, match=r"completions\[0\]"):
        bleu_reward(completions=[3], reference=["a"])
    with pytest.raises(InvalidInputError, match="completions are required"):
        bleu_reward(reference=["a"])


def test_rows_without_usable_references_score_none():
    """One bad row must not stop a GRPO step: it gets None (TRL records NaN)."""
    comps = ["a b c d", "x y", "p q r s", "a b"]
    refs = ["a b c d", None, [], [None, "a b"]]
    got = bleu_reward(completions=comps, reference=refs)
    assert got[1] is None
    assert got[2] is None
    assert got[0] == pytest.approx(1.0)
    assert got[3] == pytest.approx(sacrebleu.sentence_bleu("a b", ["a b"]).score / 100)
    ev = BLEUReward(flavor="evaluate")(completions=["a b", "a b"], reference=["\x0c", "a b"])
    assert ev[0] is None
    assert ev[1] == pytest.approx(1.0)
    tool_turn = [[{"role": "assistant", "content": None, "tool_calls": []}]]
    assert bleu_reward(completions=tool_turn, reference=["a"]) == [0.0]


def test_sacrebleu_scale_is_a_division_by_100():
    got = bleu_reward(completions=["a b c x y"], reference=["a b c d e"])
    assert got == [sacrebleu.sentence_bleu("a b c x y", ["a b c d e"]).score / 100]


def test_memory_stays_flat_over_many_reward_calls():
    """sacrebleu's per-call tokenizer caches grow in long reward loops; fastalign keeps
    nothing between calls. 20k calls of 8 new completions each (the benchmark runs 1M)."""
    words = [f"w{i}" for i in range(500)]

    def batch(i: int) -> tuple[list[str], list[str]]:
        comps = [" ".join(words[(i * 7 + j * 13 + k) % 500] for k in range(20)) for j in range(8)]
        refs = [" ".join(words[(i * 5 + j * 11 + k) % 500] for k in range(18)) for j in range(8)]
        return comps, refs

    for i in range(2000):  # warm up allocator pools and thread-local buffers
        c, r = batch(i)
        bleu_reward(completions=c, reference=r)
    gc.collect()
    before = status_mb()
    for i in range(2000, 22000):
        c, r = batch(i)
        bleu_reward(completions=c, reference=r)
    gc.collect()
    grown = status_mb() - before
    assert grown < 8.0, f"RSS grew by {grown:.1f} MB over 20k reward calls"


def test_bad_references_are_errors_not_missing_rows():
    """A dict reference was scored against its keys; bytes and lone surrogates scored None as
    if the reference were missing. Non-str references are a TypeError naming the row; a text
    that is not valid Unicode is an error naming the row, in both flavours."""
    for flavor in ("sacrebleu", "evaluate"):
        reward = BLEUReward(flavor=flavor)
        with pytest.raises(
            TypeError, match=r"^reference\[1\] must be a str, a list of str or None, not dict"
        ):
            reward(completions=["a b", "a b"], reference=["a b", {"a b": 1}])
        with pytest.raises(
            TypeError, match=r"^reference\[0\]\[1\] must be a str \(or None\), not bytes"
        ):
            reward(completions=["a b"], reference=[["a b", b"a b"]])
        with pytest.raises(TypeError, match=r"^reference\[0\] must be .* not bytes"):
            reward(completions=["a b"], reference=[b"a b"])
        with pytest.raises(InvalidInputError, match=r"^row 2: .*not valid Unicode"):
            reward(completions=["a b", "c d", "e f"], reference=["a b", "c d", "e \ud800"])
    # what stays None: a missing reference, and evaluate's undefined empty reference
    ev = BLEUReward(flavor="evaluate")(completions=["a b", "a b"], reference=[None, "\x0c"])
    assert ev == [None, None]
    assert bleu_reward(completions=["a b"], reference=[np.array(["a b"])]) == pytest.approx([1.0])
