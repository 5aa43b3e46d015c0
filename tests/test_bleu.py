"""fastalign.bleu against sacrebleu 2.6 (the reference of the default flavour) and against
Hugging Face evaluate's ``compute_bleu`` (reimplemented below from its published definition:
the package fetches its metric script from the network at run time)."""

from __future__ import annotations

import collections
import math
import sys

import numpy as np
import pytest
import sacrebleu
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from fastalign import bleu
from fastalign.errors import InvalidInputError, ShapeError

# ---------------------------------------------------------------------------------------------
# text strategies: words from mixed scripts, punctuation and symbols, digits with separators,
# entities and 13a's special strings, and Python-only whitespace
_PIECES = [
    "the", "cat", "Sat", "on", "mat", "a", "Ünïcödé", "İstanbul", "ΣΟΦΟΣ", "straße", "日本語",
    "中文", "我们", "한국어", "ｆｕｌｌ", "—", "…", "“quoted”", "3.14", "1,000", "1990-2000", "-5",
    "e.g.", "U.S.A.", "don't", "$", "€", "+", "=", "%", "(", ")", "[x]", "{y}", "<tag>", "&amp;",
    "&quot;", "&lt;", "&gt;", "&", "<skipped>", "-\n", "\n", "!", "?", ".", ",", ";", ":", "/",
    "@", "#", "^", "~", "`", "|", "\\", "_", "'", '"', "7", "42", "x2", "٣", "²", "Ⅻ", "🙂", "‰",
]  # fmt: skip
_SPACES = [
    " ",
    " ",
    " ",
    "  ",
    "\t",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "\xa0",
    "\u3000",
    "\u2009",
    "",
]


@st.composite
def texts(draw, max_words=14):
    n = draw(st.integers(0, max_words))
    out = []
    for _ in range(n):
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(st.text(min_size=1, max_size=3)))  # arbitrary Unicode
        else:
            out.append(draw(st.sampled_from(_PIECES)))
        out.append(draw(st.sampled_from(_SPACES)))
    return "".join(out)


def similar(draw, base: str) -> str:
    """A reference sharing words with the hypothesis (so that higher orders match)."""
    words = base.split()
    if not words or draw(st.booleans()):
        return draw(texts())
    keep = [w for w in words if draw(st.integers(0, 4))]
    return " ".join(keep + draw(st.lists(st.sampled_from(_PIECES), max_size=3)))


options = st.fixed_dictionaries(
    {
        "tokenize": st.sampled_from(["13a", "intl", "zh", "char", "none"]),
        "smooth_method": st.sampled_from(["exp", "floor", "add-k", "none"]),
        "lowercase": st.booleans(),
        "effective_order": st.booleans(),
        "max_ngram_order": st.integers(1, 6),
    },
    optional={"smooth_value": st.sampled_from([0.0, 0.05, 0.5, 1, 2.5])},
)


def assert_same(ours: bleu.BLEUScore, theirs, *, tol: float = 1e-9):
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert math.isclose(ours.score, theirs.score, rel_tol=tol, abs_tol=tol), (
        ours.score,
        theirs.score,
    )
    assert math.isclose(ours.bp, theirs.bp, rel_tol=tol, abs_tol=tol)
    assert len(ours.precisions) == len(theirs.precisions)
    for a, b in zip(ours.precisions, theirs.precisions, strict=True):
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), (ours.precisions, theirs.precisions)
    assert math.isclose(ours.ratio, theirs.ratio, rel_tol=tol, abs_tol=tol)


# ---------------------------------------------------------------------------------------------
# tokenizers, code point by code point


def _codepoints(step_astral: int = 7):
    bmp = [c for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    return bmp + list(range(0x10000, 0x110000, step_astral))


@pytest.mark.parametrize(
    ("name", "theirs", "template"),
    [
        ("13a", Tokenizer13a(), "a{c}b {c}1 1{c}2 {c}.{c}"),
        ("intl", None, "a{c}b {c}1 1{c}2 {c}.{c}"),
        ("zh", None, "a{c}b {c}1"),
    ],
)
def test_tokenizers_agree_on_every_code_point(name, theirs, template):
    """Each tokenizer, on every code point of the BMP (and a sample of the astral planes) in
    contexts that exercise its classes (letters, digits, '.' and its own spaces)."""
    if theirs is None:
        theirs = SacreBLEU(tokenize=name).tokenizer
    lines = [template.format(c=chr(c)) for c in _codepoints()]
    ours = bleu.tokenize(lines, tokenize=name)
    want = [theirs(line.rstrip()) for line in lines]
    bad = [(hex(c), o, w) for c, o, w in zip(_codepoints(), ours, want, strict=True) if o != w]
    if name == "intl":
        # Unicode categories of code points assigned after the Unicode version of
        # fastalign's tables (unicode-general-category) may differ from the regex module's
        import unicodedata

        bad = [b for b in bad if unicodedata.category(chr(int(b[0], 16))) != "Cn"]
    assert not bad, bad[:10]


def test_python_whitespace_split_on_every_code_point():
    """Tokens are split on Python's str.isspace() set (it has \\x1c-\\x1f besides Unicode's
    White_Space): the hypothesis length of "a<c>b" under the `none` tokenizer, for every code
    point, is len("a<c>b".split())."""
    from fastalign import _core

    cps = _codepoints(step_astral=1)
    lines = [f"a{chr(c)}b" for c in cps]
    opts = ("none", "sacrebleu", "exp", None, True, 1, False)
    stats = _core.bleu_stats(lines, [["a"]] * len(lines), opts, False).reshape(len(lines), 4)
    want = np.array([len(line.rstrip().split()) for line in lines])
    bad = [hex(c) for c, got, w in zip(cps, stats[:, 0], want, strict=True) if got != w]
    assert not bad, bad[:10]


# ---------------------------------------------------------------------------------------------
# scores against sacrebleu


@example(hyp="the cat", refs=["the cat"], opts={"tokenize": "13a", "smooth_method": "add-k",
         "lowercase": False, "effective_order": False, "max_ngram_order": 4})  # fmt: skip
@given(
    hyp=texts(),
    refs=st.lists(texts(), min_size=1, max_size=4),
    opts=options,
)
def test_sentence_bleu_matches_sacrebleu(hyp, refs, opts):
    theirs = SacreBLEU(**opts).sentence_score(hyp, refs)
    ours = bleu.BLEU(**opts).sentence_score(hyp, refs)
    assert_same(ours, theirs)
    assert ours.counts == theirs.counts[: len(ours.counts)] or opts["smooth_method"] == "add-k"


@st.composite
def sentence_cases(draw):
    hyp = draw(texts())
    refs = [similar(draw, hyp) for _ in range(draw(st.integers(1, 3)))]
    return hyp, refs


@given(case=sentence_cases(), opts=options)
def test_sentence_bleu_with_overlapping_references(case, opts):
    hyp, refs = case
    metric = SacreBLEU(**opts)
    theirs = metric.sentence_score(hyp, refs)
    ours_metric = bleu.BLEU(**opts)
    ours = ours_metric.sentence_score(hyp, refs)
    assert_same(ours, theirs)
    assert ours.signature == metric.get_signature().format()
    assert ours_metric.get_signature() == ours.signature


@given(
    cases=st.lists(sentence_cases(), min_size=1, max_size=6),
    opts=options,
    drop=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_corpus_bleu_matches_sacrebleu_with_variable_reference_counts(cases, opts, drop):
    hyps = [h for h, _ in cases]
    k = max(len(r) for _, r in cases)
    # reference streams; missing references are None (every segment keeps its first one)
    streams = [
        [
            r[j] if j < len(r) and not (j > 0 and drop[i % 6]) else None
            for i, (_, r) in enumerate(cases)
        ]
        for j in range(k)
    ]
    metric = SacreBLEU(**opts)
    theirs = metric.corpus_score(hyps, streams)
    ours = bleu.BLEU(**opts).corpus_score(hyps, streams)
    assert_same(ours, theirs)
    assert ours.counts == [int(c) for c in theirs.counts] or opts["smooth_method"] == "add-k"
    assert ours.totals == [int(t) for t in theirs.totals] or opts["smooth_method"] == "add-k"
    assert ours.signature == metric.get_signature().format()


@given(cases=st.lists(sentence_cases(), min_size=0, max_size=12), opts=options)
@settings(max_examples=40)
def test_sentence_scores_batch_equals_sacrebleu_loop(cases, opts):
    hyps = [h for h, _ in cases]
    refs = [r for _, r in cases]
    metric = SacreBLEU(**opts)
    want = np.array([metric.sentence_score(h, r).score for h, r in cases])
    got = bleu.BLEU(**opts).sentence_scores(hyps, refs)
    assert got.dtype == np.float64
    assert got.shape == (len(hyps),)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_module_functions_use_sacrebleus_defaults():
    hyp, refs = "The quick brown fox jumps.", ["The quick brown fox jumped.", "A fast fox jumps."]
    assert_same(bleu.sentence_bleu(hyp, refs), sacrebleu.sentence_bleu(hyp, refs))
    hyps, streams = [hyp, "hello there"], [[refs[0], "hello there !"], [refs[1], None]]
    assert_same(bleu.corpus_bleu(hyps, streams), sacrebleu.corpus_bleu(hyps, streams))
    s = bleu.sentence_bleu(hyp, refs, use_effective_order=False, smooth_method="floor")
    assert_same(
        s, sacrebleu.sentence_bleu(hyp, refs, smooth_method="floor", use_effective_order=False)
    )
    assert str(bleu.corpus_bleu(hyps, streams)) == str(sacrebleu.corpus_bleu(hyps, streams))
    assert (
        bleu.corpus_bleu(hyps, streams).signature
        == "nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    )


def test_signature_counts_references_at_call_time():
    metric = bleu.BLEU(effective_order=True)
    refs = [["a b", "a c"], ["b c", None]]
    metric.sentence_scores(["a b", "b c"], refs)
    refs[1][1] = "x"  # a later change of the caller's list does not rewrite the signature
    assert metric.get_signature().startswith("nrefs:var|")


def test_threads_do_not_change_numbers():
    rng = np.random.default_rng(0)
    words = np.array(_PIECES[:40])
    hyps = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(500)]
    refs = [[" ".join(rng.choice(words, rng.integers(1, 30)))] for _ in range(500)]
    one = bleu.sentence_scores(hyps, refs, threads=1)
    two = bleu.sentence_scores(hyps, refs, threads=2)
    assert one.tobytes() == two.tobytes()
    c1 = bleu.BLEU(threads=1).corpus_score(hyps, [[r[0] for r in refs]])
    c2 = bleu.BLEU(threads=2).corpus_score(hyps, [[r[0] for r in refs]])
    assert c1 == c2


# ---------------------------------------------------------------------------------------------
# the evaluate flavour, against evaluate's compute_bleu (TensorFlow NMT), reimplemented from
# its published definition with evaluate's tokenizer (13a, no rstrip)


def _ngrams(tokens, max_order):
    c = collections.Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            c[tuple(tokens[i : i + n])] += 1
    return c


def evaluate_bleu(predictions, references, max_order=4, smooth=False):
    tok = Tokenizer13a()
    references = [[tok(r).split() for r in refs] for refs in references]
    predictions = [tok(p).split() for p in predictions]
    matches = [0] * max_order
    possible = [0] * max_order
    ref_length = trans_length = 0
    for refs, trans in zip(references, predictions, strict=True):
        ref_length += min(len(r) for r in refs)
        trans_length += len(trans)
        merged = collections.Counter()
        for r in refs:
            merged |= _ngrams(r, max_order)
        overlap = _ngrams(trans, max_order) & merged
        for ngram in overlap:
            matches[len(ngram) - 1] += overlap[ngram]
        for order in range(1, max_order + 1):
            if len(trans) - order + 1 > 0:
                possible[order - 1] += len(trans) - order + 1
    precisions = [0.0] * max_order
    for i in range(max_order):
        if smooth:
            precisions[i] = (matches[i] + 1.0) / (possible[i] + 1.0)
        elif possible[i] > 0:
            precisions[i] = float(matches[i]) / possible[i]
    if min(precisions) > 0:
        geo_mean = math.exp(sum((1.0 / max_order) * math.log(p) for p in precisions))
    else:
        geo_mean = 0
    ratio = float(trans_length) / ref_length
    bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp, precisions, bp, ratio, trans_length, ref_length


@given(
    cases=st.lists(sentence_cases(), min_size=1, max_size=6),
    smooth=st.booleans(),
    order=st.integers(1, 5),
)
def test_evaluate_flavor_matches_compute_bleu(cases, smooth, order):
    hyps = [h for h, _ in cases]
    refs = [r for _, r in cases]
    tok = Tokenizer13a()
    if any(min(len(tok(r).split()) for r in rs) == 0 for rs in refs) or all(
        not tok(h).split() for h in hyps
    ):
        pass  # evaluate divides by zero there (covered by the pinned tests below)
    else:
        kw = {"flavor": "evaluate", "smooth_method": "add-one" if smooth else "none"}
        kw["max_ngram_order"] = order
        want = evaluate_bleu(hyps, refs, order, smooth)
        streams = [[r[j] if j < len(r) else None for r in refs] for j in range(max(map(len, refs)))]
        got = bleu.corpus_bleu(hyps, streams, **kw)
        assert math.isclose(got.score, want[0], rel_tol=1e-12, abs_tol=1e-15)
        assert got.precisions == pytest.approx(want[1], rel=1e-12, abs=1e-15)
        assert (got.bp, got.sys_len, got.ref_len) == (pytest.approx(want[2]), want[4], want[5])
        # sentence level: each pair on its own
        for h, r, s in zip(hyps, refs, bleu.sentence_scores(hyps, refs, **kw), strict=True):
            if min(len(tok(x).split()) for x in r) and tok(h).split():
                assert math.isclose(
                    s, evaluate_bleu([h], [r], order, smooth)[0], rel_tol=1e-12, abs_tol=1e-15
                )


def test_evaluate_flavor_edges():
    kw = {"flavor": "evaluate"}
    # an empty hypothesis: evaluate divides by zero; the limit (bp 0) gives 0
    assert bleu.sentence_scores([""], [["a b"]], **kw).tolist() == [0.0]
    with pytest.raises(InvalidInputError, match="reference length is 0"):
        bleu.sentence_scores(["a"], [[""]], **kw)
    # one empty reference beside a non-empty one: evaluate takes the shortest (length 0); the
    # message says so (it said "every reference of a segment is empty", which was not the case)
    with pytest.raises(InvalidInputError, match="shortest reference of each segment") as e:
        bleu.sentence_scores(["the cat"], [["", "the cat sat"]], **kw)
    assert "every reference of a segment is empty" not in str(e.value)
    # no rstrip in evaluate: a trailing '-\n' is joined away (sacrebleu strips it first)
    assert bleu.tokenize(["a-\n"], flavor="evaluate") == ["a"]
    assert bleu.tokenize(["a-\n"]) == ["a-"]
    assert bleu.BLEU(flavor="evaluate").smooth_method == "add-one"
    with pytest.raises(InvalidInputError, match="smooth_method"):
        bleu.BLEU(flavor="evaluate", smooth_method="exp")


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_is_reported_clearly():
    with pytest.raises(TypeError, match="sequence of str"):
        bleu.sentence_scores("a b c", [["a b c"]])
    with pytest.raises(TypeError, match="is a str"):
        bleu.sentence_scores(["a b c"], ["a b c"])
    with pytest.raises(TypeError, match="sequence of str"):
        bleu.sentence_bleu("a", "a")
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a str"):
        bleu.sentence_scores(["a", 3], [["a"], ["b"]])
    with pytest.raises(TypeError, match="hypothesis must be a str"):
        bleu.sentence_bleu(None, ["a"])
    with pytest.raises(ShapeError, match="2 hypotheses"):
        bleu.sentence_scores(["a", "b"], [["a"]])
    with pytest.raises(ShapeError, match="segments"):
        bleu.corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(InvalidInputError, match="no reference"):
        bleu.sentence_scores(["a"], [[None]])
    with pytest.raises(InvalidInputError, match="no reference"):
        bleu.sentence_bleu("a", [])
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        bleu.sentence_scores(["ok", "bad \ud800"], [["a"], ["b"]])
    with pytest.raises(InvalidInputError, match=r"references\[0\]\[1\]"):
        bleu.sentence_scores(["ok"], [["a", "\udfff"]])
    with pytest.raises(InvalidInputError, match="tokenize"):
        bleu.BLEU(tokenize="14a")
    with pytest.raises(InvalidInputError, match="smooth_value"):
        bleu.BLEU(smooth_method="floor", smooth_value=float("nan"))
    with pytest.raises(InvalidInputError, match="max_ngram_order"):
        bleu.BLEU(max_ngram_order=0)
    with pytest.raises(InvalidInputError, match="max_ngram_order"):
        bleu.BLEU(max_ngram_order=-1)
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a str"):
        bleu.BLEU(lowercase=True).sentence_scores(["a", 3], [["a"], ["b"]])
    assert bleu.BLEU(tokenize=None).tokenize == "13a"  # sacrebleu's default spelling
    with pytest.raises(InvalidInputError, match="threads"):
        bleu.BLEU(threads=0)
    with pytest.raises(TypeError, match="not both"):
        bleu.sentence_bleu("a", ["a"], effective_order=True, use_effective_order=True)
    assert bleu.sentence_scores([], []).shape == (0,)
    with pytest.raises(InvalidInputError, match="empty"):
        bleu.corpus_bleu([], [[]])
    with pytest.raises(InvalidInputError, match="no score computed"):
        bleu.BLEU().get_signature()


def test_str_on_bytes_and_none_hypotheses():
    with pytest.raises(TypeError):
        bleu.sentence_scores([b"a"], [["a"]])
    with pytest.raises(TypeError, match=r"hypotheses\[0\]"):
        bleu.corpus_bleu([None], [["a"]])


def test_import_is_lazy():
    import subprocess

    code = (
        "import fastalign, sys; fastalign.bleu; fastalign.rewards; "
        "print('numpy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", ["lowercase", "effective_order"])
@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_boolean_options_are_bools(name, value):
    """``lowercase="no"`` meant True (a non-empty string): now a TypeError naming the option."""
    with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
        bleu.BLEU(**{name: value})
    with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
        bleu.sentence_bleu("a b", ["a b"], **{name: value})
    assert getattr(bleu.BLEU(**{name: np.True_}), name) is True  # NumPy bools are bools
