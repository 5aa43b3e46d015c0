"""BLEU with sacrebleu's numbers, in Rust: sentence scores in parallel batches, corpus scores,
and the Hugging Face ``evaluate`` flavour the BLEUBERI recipe uses as a GRPO reward.

Two flavours, each exact to the implementation it names:

* ``flavor="sacrebleu"`` (default): sacrebleu 2.6 -- tokenizers ``13a`` (default), ``intl``,
  ``zh``, ``char``, ``none``; smoothing ``exp`` (default), ``floor``, ``add-k``, ``none``;
  effective order; closest reference length; scores 0-100; the same signature string.
* ``flavor="evaluate"``: ``evaluate.load("bleu")`` -- 13a tokens without ``rstrip``, the
  shortest reference length, smoothing ``add-one`` (evaluate's ``smooth=True``, the default
  here) or ``none`` (``smooth=False``), scores 0-1. Where evaluate divides by zero on an empty
  hypothesis, the score is its limit, 0; an empty reference is an error, as there.

The ``intl`` tokenizer classifies characters by Unicode category (punctuation, symbol,
number) from the Rust crate ``unicode-general-category``; sacrebleu takes them from the
``regex`` module. They agree on every character assigned in Unicode 14 (tested code point by
code point); for characters assigned since, the two libraries' Unicode versions decide.

Differences from sacrebleu, on purpose: a ``str`` where a sequence of strings is expected is a
``TypeError`` (sacrebleu scores its characters); hypotheses and reference streams of different
lengths are a ``ValueError`` (sacrebleu truncates silently); a segment without any reference
is a ``ValueError`` (sacrebleu fails inside). Nothing is cached between calls, so a reward loop
keeps a flat memory profile.

Example:
    >>> from fastalign import bleu
    >>> round(bleu.sentence_bleu("the cat sat on the mat", ["the cat sat on a mat"]).score, 4)
    53.7285
    >>> bleu.sentence_scores(["a b c d", "x"], [["a b c d"], ["y"]]).round(2).tolist()
    [100.0, 0.0]
    >>> print(bleu.corpus_bleu(["the cat sat"], [["the cat sat"]]))  # no 4-gram: 0, as sacrebleu
    BLEU = 0.00 100.0/100.0/100.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 3 ref_len = 3)
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastalign._validate import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_strings,
    check_threads,
)
from fastalign.errors import InvalidInputError, ShapeError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BLEU",
    "SACREBLEU_VERSION",
    "TOKENIZERS",
    "BLEUScore",
    "corpus_bleu",
    "sentence_bleu",
    "sentence_scores",
    "tokenize",
]

SACREBLEU_VERSION = "2.6.0"  # the sacrebleu whose numbers and signature the default flavour gives
TOKENIZERS = ("13a", "intl", "zh", "char", "none")
_SMOOTH = {"sacrebleu": ("exp", "floor", "add-k", "none"), "evaluate": ("add-one", "none")}
_SMOOTH_SHOWN = {"floor": 0.1, "add-k": 1.0}  # sacrebleu prints these values in the signature


@dataclasses.dataclass(frozen=True)
class BLEUScore:
    """A BLEU score with the quantities sacrebleu reports beside it.

    ``score`` is 0-100 (sacrebleu flavour) or 0-1 (evaluate flavour); ``precisions`` are on
    the same scale; ``counts`` and ``totals`` are the matched and total n-grams per order
    (before ``add-k`` smoothing); ``bp`` the brevity penalty; ``sys_len`` / ``ref_len`` the
    hypothesis and (effective) reference lengths in tokens.
    """

    score: float
    counts: list[int]
    totals: list[int]
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int
    signature: str
    name: str = "BLEU"

    @property
    def ratio(self) -> float:
        """``sys_len / ref_len`` (0 when ``ref_len`` is 0), as sacrebleu."""
        return self.sys_len / self.ref_len if self.ref_len else 0.0

    @property
    def verbose(self) -> str:
        """What sacrebleu prints after the score: precisions, brevity penalty, lengths."""
        prec = "/".join(f"{p:.1f}" for p in self.precisions)
        return (
            f"{prec} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
            f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})"
        )

    def format(self, width: int = 2, score_only: bool = False, signature: bool = False) -> str:
        """sacrebleu's score line, e.g. ``BLEU = 34.12 60.0/40.0/25.0/10.0 (BP = ...)``."""
        sc = f"{self.score:.{width}f}"
        if score_only:
            return sc
        name = f"{self.name}|{self.signature}" if signature else self.name
        return f"{name} = {sc} {self.verbose}"

    def __str__(self) -> str:
        return self.format()


def _utf8_or_raise(call, *groups: tuple[str, list]):
    """Run a core call; a string that cannot be UTF-8 (a lone surrogate) becomes a clear
    InvalidInputError naming where it is."""
    try:
        return call()
    except UnicodeEncodeError:
        for name, values in groups:
            for i, v in enumerate(values):
                items = v if isinstance(v, list) else [v]
                for j, s in enumerate(items):
                    if s is None:
                        continue
                    try:
                        s.encode("utf-8")
                    except UnicodeEncodeError as e:
                        where = f"{name}[{i}]" + (f"[{j}]" if isinstance(v, list) else "")
                        raise InvalidInputError(
                            f"{where} is not valid Unicode text (it holds a lone surrogate at "
                            f"position {e.start}); BLEU needs UTF-8-encodable strings"
                        ) from None
        raise


class BLEU:
    """A reusable BLEU configuration with sacrebleu's names and defaults.

    Args:
        tokenize: ``"13a"`` (default), ``"intl"``, ``"zh"``, ``"char"`` or ``"none"``.
        smooth_method: sacrebleu flavour: ``"exp"`` (default), ``"floor"``, ``"add-k"``,
            ``"none"``; evaluate flavour: ``"add-one"`` (default) or ``"none"``.
        smooth_value: the value of ``floor`` (default 0.1) or ``add-k`` (default 1).
        lowercase: lowercase hypotheses and references first (Python's ``str.lower``).
        effective_order: drop the orders with no n-gram at all from the geometric mean
            (sacrebleu: ``True`` for sentence BLEU, ``False`` for corpus BLEU).
        max_ngram_order: highest n-gram order (default 4).
        flavor: ``"sacrebleu"`` (default) or ``"evaluate"``.
        threads: threads for batched calls (default: all cores, or ``RAYON_NUM_THREADS``).

    Example:
        >>> from fastalign.bleu import BLEU
        >>> metric = BLEU(effective_order=True)
        >>> round(metric.sentence_score("a b c", ["a b c d"]).score, 2)
        71.65
        >>> metric.get_signature()
        'nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0'
    """

    def __init__(
        self,
        *,
        tokenize: str | None = "13a",
        smooth_method: str | None = None,
        smooth_value: float | None = None,
        lowercase: bool = False,
        effective_order: bool = False,
        max_ngram_order: int = 4,
        flavor: str = "sacrebleu",
        threads: int | None = None,
    ) -> None:
        if tokenize is None:  # sacrebleu's default (no language-specific choice here)
            tokenize = "13a"
        flavor = check_choice(flavor, "flavor", tuple(_SMOOTH))
        tokenize = check_choice(tokenize, "tokenize", TOKENIZERS)
        if smooth_method is None:
            smooth_method = _SMOOTH[flavor][0]
        if smooth_method not in _SMOOTH[flavor]:
            raise InvalidInputError(
                f"smooth_method must be one of {_SMOOTH[flavor]} for the {flavor} flavor, "
                f"got {smooth_method!r}"
            )
        max_ngram_order = check_int(max_ngram_order, "max_ngram_order", 1, 64)
        threads = check_threads(threads)
        self.tokenize = tokenize
        self.smooth_method = smooth_method
        self.smooth_value = (
            None if smooth_value is None else check_number(smooth_value, "smooth_value")
        )
        self.lowercase = check_bool(lowercase, "lowercase")
        self.effective_order = check_bool(effective_order, "effective_order")
        self.max_ngram_order = max_ngram_order
        self.flavor = flavor
        self.threads = threads
        self._opts = (
            tokenize,
            flavor,
            smooth_method,
            self.smooth_value,
            self.effective_order,
            max_ngram_order,
            # CPython >= 3.12 sums floats with compensation: the last bit of a score follows it
            sys.version_info >= (3, 12),
        )
        self._nrefs: int | str | None = None
        from fastalign import _core

        _core.bleu_tokenize([], self._opts)  # validates the options in the core

    # -- signature ---------------------------------------------------------------------------
    def _signature(self, nrefs: int | str) -> str:
        smooth = self.smooth_method
        if smooth in _SMOOTH_SHOWN:
            value = self.smooth_value if self.smooth_value is not None else _SMOOTH_SHOWN[smooth]
            smooth += f"[{value:.2f}]"
        parts = [
            f"nrefs:{nrefs}",
            f"case:{'lc' if self.lowercase else 'mixed'}",
            f"eff:{'yes' if self.effective_order else 'no'}",
            f"tok:{self.tokenize}",
            f"smooth:{smooth}",
        ]
        if self.flavor == "evaluate":
            return "|".join([*parts, f"order:{self.max_ngram_order}", "flavor:evaluate"])
        return "|".join([*parts, f"version:{SACREBLEU_VERSION}"])

    def get_signature(self) -> str:
        """The signature of the last score computed (sacrebleu's format)."""
        if self._nrefs is None:
            raise InvalidInputError("no score computed yet: the number of references is unknown")
        return self._signature(self._nrefs)

    # -- scoring -----------------------------------------------------------------------------
    def _prep(self, texts: list) -> list:
        if not self.lowercase:
            return texts
        return [t.lower() if isinstance(t, str) else t for t in texts]

    def _score(self, stats: Any, nrefs: int | str) -> BLEUScore:
        from fastalign import _core

        n = self.max_ngram_order
        stats = [int(x) for x in stats]
        score, precisions, bp, sys_len, ref_len = _core.bleu_score(stats, self._opts)
        self._nrefs = nrefs
        return BLEUScore(
            score=score,
            counts=stats[2 : 2 + n],
            totals=stats[2 + n :],
            precisions=list(precisions),
            bp=bp,
            sys_len=sys_len,
            ref_len=ref_len,
            signature=self._signature(nrefs),
        )

    def sentence_score(self, hypothesis: str, references: Sequence[str]) -> BLEUScore:
        """BLEU of one hypothesis against its references (``None`` entries are skipped)."""
        from fastalign import _core

        if not isinstance(hypothesis, str):
            raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
        refs = check_strings(references, "references", allow_none=True)
        if all(r is None for r in refs):
            raise InvalidInputError(
                f"references holds no reference ({'empty' if not refs else 'only None'}): a "
                "hypothesis needs at least one"
            )
        hyp, refs = self._prep([hypothesis]), [self._prep(refs)]
        stats = _utf8_or_raise(
            lambda: _core.bleu_stats(hyp, refs, self._opts, True, self.threads),
            ("hypothesis", hyp),
            ("references", refs),
        )
        return self._score(stats, sum(r is not None for r in refs[0]))

    def corpus_score(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str | None]]
    ) -> BLEUScore:
        """Corpus BLEU. ``references`` are reference *streams*, as in sacrebleu:
        ``references[k][i]`` is the k-th reference of hypothesis ``i`` (``None`` where a
        segment has fewer references)."""
        from fastalign import _core

        hyps = check_strings(hypotheses, "hypotheses")
        if isinstance(references, (str, bytes)) or not isinstance(references, Sequence):
            raise TypeError("references must be a sequence of reference streams")
        if len(references) == 0:
            raise InvalidInputError("references is empty: pass at least one reference stream")
        streams = [
            check_strings(s, f"references[{k}]", allow_none=True) for k, s in enumerate(references)
        ]
        for k, s in enumerate(streams):
            if len(s) != len(hyps):
                raise ShapeError(
                    f"references[{k}] has {len(s)} segments but there are {len(hyps)} hypotheses"
                )
        if not hyps:
            raise InvalidInputError("hypotheses is empty")
        per_segment = [self._prep(list(seg)) for seg in zip(*streams, strict=True)]
        hyps = self._prep(hyps)
        counts = {sum(r is not None for r in seg) for seg in per_segment}
        nrefs: int | str = counts.pop() if len(counts) == 1 else "var"
        stats = _utf8_or_raise(
            lambda: _core.bleu_stats(hyps, per_segment, self._opts, True, self.threads),
            ("hypotheses", hyps),
            ("references (by segment)", per_segment),
        )
        return self._score(stats, nrefs)

    def sentence_scores(
        self, hypotheses: Sequence[str], references: Sequence[Sequence[str | None]]
    ) -> np.ndarray:
        """One score per hypothesis, all pairs in one parallel call (GIL released).
        ``references[i]`` is the list of references of hypothesis ``i``."""
        import numpy as np

        from fastalign import _core

        if isinstance(hypotheses, (str, bytes)) or not isinstance(hypotheses, Sequence):
            raise TypeError(
                f"hypotheses must be a sequence of str, got {type(hypotheses).__name__}"
            )
        if isinstance(references, (str, bytes)) or not isinstance(references, Sequence):
            raise TypeError("references must be a sequence of lists of references")
        if len(references) != len(hypotheses):
            raise ShapeError(
                f"got {len(hypotheses)} hypotheses but references for {len(references)} segments"
            )
        if len(hypotheses) == 0:
            return np.zeros(0, dtype=np.float64)
        hyps, refs = hypotheses, references
        if self.lowercase:
            hyps = self._prep(list(hyps))
            refs = [self._prep(list(r)) if not isinstance(r, str) else r for r in refs]
        try:  # the fast path: the core converts and type-checks every element itself
            out = _core.bleu_sentence_scores(hyps, refs, self._opts, self.threads)
        except (TypeError, UnicodeEncodeError):
            # find the culprit and say where it is
            hyps = check_strings(hyps, "hypotheses")
            checked = []
            for i, r in enumerate(refs):
                if isinstance(r, str):
                    raise TypeError(
                        f"references[{i}] is a str; references[i] must be the list of "
                        "references of hypothesis i (pass [[r] for r in refs] for one each)"
                    ) from None
                checked.append(check_strings(r, f"references[{i}]", allow_none=True))
            out = _utf8_or_raise(
                lambda: _core.bleu_sentence_scores(hyps, checked, self._opts, self.threads),
                ("hypotheses", hyps),
                ("references", checked),
            )
        counts = {len(r) - list(r).count(None) for r in refs}
        self._nrefs = counts.pop() if len(counts) == 1 else "var"
        return out

    def tokenize_texts(self, texts: Sequence[str]) -> list[str]:
        """The texts as this configuration tokenizes them (tokens joined by single spaces;
        the ``none`` tokenizer returns its input)."""
        from fastalign import _core

        values = self._prep(check_strings(texts, "texts"))
        return _utf8_or_raise(lambda: _core.bleu_tokenize(values, self._opts), ("texts", values))


def _options(options: dict[str, Any], effective_default: bool) -> BLEU:
    options = dict(options)
    if "use_effective_order" in options:
        if "effective_order" in options:
            raise TypeError("pass effective_order or use_effective_order, not both")
        options["effective_order"] = options.pop("use_effective_order")
    options.pop("force", None)  # sacrebleu's tokenized-input warning switch: nothing to warn
    options.setdefault("effective_order", effective_default)
    return BLEU(**options)


def sentence_bleu(hypothesis: str, references: Sequence[str], **options: Any) -> BLEUScore:
    """sacrebleu's ``sentence_bleu``: BLEU of one hypothesis (effective order on by default).

    Options as :class:`BLEU` (``use_effective_order`` is accepted too).
    """
    return _options(options, True).sentence_score(hypothesis, references)


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str | None]], **options: Any
) -> BLEUScore:
    """sacrebleu's ``corpus_bleu``: ``references`` are reference streams
    (``references[k][i]`` is the k-th reference of hypothesis ``i``)."""
    return _options(options, False).corpus_score(hypotheses, references)


def sentence_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str | None]], **options: Any
) -> np.ndarray:
    """Sentence BLEU of every pair, float64 ``[len(hypotheses)]``, in parallel:
    ``references[i]`` is the list of references of hypothesis ``i``. Defaults as
    :func:`sentence_bleu` (effective order on)."""
    return _options(options, True).sentence_scores(hypotheses, references)


def tokenize(texts: Sequence[str], **options: Any) -> list[str]:
    """Each text as BLEU tokenizes it (``tokenize=``, ``lowercase=``, ``flavor=``).

    Example:
        >>> from fastalign.bleu import tokenize
        >>> tokenize(["It costs $3.50, right?"])
        ['It costs $ 3.50 , right ?']
    """
    return _options(options, True).tokenize_texts(texts)
