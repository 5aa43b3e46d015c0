"""Reward functions for RL trainers, with the call signature TRL's ``GRPOTrainer`` uses:
``reward(prompts=..., completions=..., **dataset_columns) -> list[float | None]``.

A row whose references are missing (``None``, an empty list) or, in evaluate's flavour,
tokenize to nothing gets ``None`` -- TRL records it as NaN -- rather than stopping training.

``bleu_reward`` scores each completion against the ``reference`` column of its dataset row
(a string or a list of strings) with sentence BLEU on a 0-1 scale, all completions of a step
in one parallel Rust call. :class:`BLEUReward` configures another column, the flavour
(``"evaluate"`` reproduces ``evaluate.load("bleu")``, the BLEUBERI setup) or any
:class:`fastalign.bleu.BLEU` option.

Example:
    >>> from fastalign.rewards import BLEUReward, bleu_reward
    >>> rewards = bleu_reward(completions=["the cat sat on the mat", "a dog"],
    ...                       reference=["the cat sat on the mat", "the cat"])
    >>> [round(r, 6) for r in rewards]
    [1.0, 0.0]
    >>> chat = [[{"role": "assistant", "content": "the cat sat"}]]
    >>> round(BLEUReward(column="solution", flavor="evaluate")(
    ...     completions=chat, solution=[["the cat sat", "a cat sat"]])[0], 3)
    1.0

With TRL: ``GRPOTrainer(model, reward_funcs=[bleu_reward], train_dataset=ds, ...)`` where
``ds`` has a ``reference`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastalign._validate import is_unordered
from fastalign.errors import InvalidInputError, ShapeError

__all__ = ["BLEUReward", "bleu_reward"]

# the core's message when evaluate's BLEU divides by a zero reference length
_UNDEFINED = "reference length is 0"


def _completion_text(c: Any, i: int) -> str:
    """A completion as text: a string, or the content of the last message of a chat list."""
    if isinstance(c, str):
        return c
    if isinstance(c, Sequence) and c and isinstance(c[-1], dict):
        content = c[-1].get("content")
        if content is None:  # a turn with tool calls only: no text to score
            return ""
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # multimodal content parts: the text parts, joined
            parts = [p.get("text", "") for p in content if isinstance(p, dict)]
            return "".join(p for p in parts if isinstance(p, str))
    raise TypeError(
        f"completions[{i}] must be a str or a list of chat messages with a 'content' field, "
        f"got {type(c).__name__}"
    )


class BLEUReward:
    """Sentence BLEU of each completion against its row's reference(s), as a TRL reward.

    Args:
        column: dataset column with the reference (a str) or references (a list of str).
        flavor: ``"sacrebleu"`` (default; scaled from 0-100 to 0-1) or ``"evaluate"``
            (already 0-1).
        scale: multiply the scores by this instead of the flavour's default (sacrebleu's
            0-100 is divided by 100; evaluate is already 0-1).
        **options: any :class:`fastalign.bleu.BLEU` option (``tokenize``, ``smooth_method``,
            ``lowercase``, ``effective_order`` -- on by default here, ``threads``...).
    """

    def __init__(
        self,
        column: str = "reference",
        *,
        flavor: str = "sacrebleu",
        scale: float | None = None,
        **options: Any,
    ) -> None:
        from fastalign.bleu import BLEU

        options.setdefault("effective_order", True)
        self.column = column
        self.metric = BLEU(flavor=flavor, **options)
        # sacrebleu's 0-100 divided by 100 (not times 0.01: that differs in the last bit)
        self.divisor = 100.0 if flavor == "sacrebleu" and scale is None else 1.0
        self.scale = 1.0 if scale is None else float(scale)
        self.__name__ = f"bleu_reward_{column}" if column != "reference" else "bleu_reward"

    def __call__(self, prompts: Any = None, completions: Any = None, **kwargs: Any) -> list[float]:
        if completions is None:
            raise InvalidInputError("completions are required")
        if isinstance(completions, str):
            raise TypeError("completions must be a list of completions, got a str")
        if is_unordered(completions) or not hasattr(completions, "__len__"):
            raise TypeError(
                f"completions must be an ordered list of completions, not a "
                f"{type(completions).__name__}"
            )
        if self.column not in kwargs:
            raise InvalidInputError(
                f"no {self.column!r} column among the reward inputs "
                f"({sorted(k for k in kwargs if not k.startswith('_'))}); pass "
                f"BLEUReward(column=...) naming the dataset column with the references"
            )
        refs_col = kwargs[self.column]
        texts = [_completion_text(c, i) for i, c in enumerate(completions)]
        if isinstance(refs_col, str) or len(refs_col) != len(texts):
            n = "a str" if isinstance(refs_col, str) else f"{len(refs_col)} rows"
            raise ShapeError(f"{len(texts)} completions but the {self.column!r} column has {n}")
        refs = [self._references(r, i) for i, r in enumerate(refs_col)]
        # a row without any reference (None, [], only None entries) scores None (TRL records
        # NaN for it) instead of failing the whole step; the others are scored in one call
        ok = [i for i, r in enumerate(refs) if r]
        out: list[float | None] = [None] * len(texts)
        if not ok:
            return out
        sub_t = [texts[i] for i in ok]
        sub_r = [refs[i] for i in ok]
        try:
            scores = self.metric.sentence_scores(sub_t, sub_r).tolist()
        except InvalidInputError:
            # score row by row: evaluate's flavour is undefined for a reference that tokenizes
            # to nothing (that row scores None); any other error names its row and propagates
            scores = []
            for i, t, r in zip(ok, sub_t, sub_r, strict=True):
                try:
                    scores.append(float(self.metric.sentence_scores([t], [r])[0]))
                except InvalidInputError as e:
                    if _UNDEFINED not in str(e):  # name the row's completion or reference
                        msg = str(e).replace("hypotheses[0]", f"completions[{i}]")
                        msg = msg.replace("references[0]", f"{self.column}[{i}]")
                        raise InvalidInputError(f"row {i}: {msg}") from None
                    scores.append(None)
        for i, sc in zip(ok, scores, strict=True):
            out[i] = None if sc is None else sc / self.divisor * self.scale
        return out

    def _references(self, r: Any, i: int) -> list[str]:
        """Row ``i``'s references: a str, a list (or 1-D array) of str and None, or None."""
        if r is None:
            return []
        if isinstance(r, str):
            return [r]
        if isinstance(r, (list, tuple)) or (hasattr(r, "ndim") and getattr(r, "ndim", 0) == 1):
            items = []
            for j, x in enumerate(r):
                if isinstance(x, str):
                    items.append(x)
                elif x is not None:
                    raise TypeError(
                        f"{self.column}[{i}][{j}] must be a str (or None), not {type(x).__name__}"
                    )
            return items
        raise TypeError(
            f"{self.column}[{i}] must be a str, a list of str or None, not {type(r).__name__}"
        )

    def __repr__(self) -> str:
        return f"BLEUReward(column={self.column!r}, flavor={self.metric.flavor!r})"


bleu_reward = BLEUReward()
