"""fastalign.dedup: exact and MinHash-LSH near-duplicate clusters against exact Jaccard ground
truth, datasketch (same num_perm / threshold, same run), the MinHash estimator's statistics,
and the invariances (threads, stream splits, signatures made elsewhere)."""

from __future__ import annotations

import functools
import itertools
import math
import os
import string
import struct
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastalign import dedup
from fastalign.bench.workloads.dedup import datasketch_flags, dedup_corpus
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.reference.dedup import doc_scores, jaccard_truth, shingle_sets


@pytest.fixture(scope="module")
def planted():
    """3000 documents, 30% planted near-duplicates, and the exact truth at 0.8."""
    texts = dedup_corpus(3000, seed=11)
    pairs, flagged = jaccard_truth(texts, 0.8)
    return texts, pairs, flagged


# -- reference normalization and shingles (pure Python) ------------------------------------------


def ref_normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower().replace("ς", "σ")
    t = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in t)
    return " ".join(t.split())


def ref_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingle_sets([ref_normalize(a), ref_normalize(b)], n)
    if not sa or not sb:
        return 1.0 if sa == sb else 0.0
    return len(sa & sb) / len(sa | sb)


# Characters assigned in Unicode 14 or earlier (Python 3.11's tables) whose mappings the Rust
# crates (newer Unicode) share: Latin with accents, Greek, Cyrillic, CJK, full-width forms,
# ligatures, punctuation and symbols, several kinds of whitespace.
ALPHABET = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + " \t\n\u00a0\u2003\u3000"
    + "éÉüÜßçÅøΣσςΑαЖжЯя中文字漢ＡＢｃｄ１２３ﬁﬂ①½™€—–…«»¿¡"
)
texts_st = st.text(alphabet=ALPHABET, max_size=60)


@given(texts_st)
def test_normalization_equals_the_python_reference(text):
    assert dedup.normalize_text([text]) == [ref_normalize(text)]


@given(st.lists(texts_st, min_size=1, max_size=12))
def test_exact_groups_equal_normalized_strings(texts):
    got = dedup.exact(texts).cluster.tolist()
    first: dict[str, int] = {}
    want = [first.setdefault(ref_normalize(t), i) for i, t in enumerate(texts)]
    assert got == want
    raw = dedup.exact(texts, normalize=False).cluster.tolist()
    first = {}
    assert raw == [first.setdefault(t, i) for i, t in enumerate(texts)]


WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "Hello,", "WORLD!", "x-ray", "ﬁ", "ÉTÉ"]
words_st = st.lists(st.sampled_from(WORDS), max_size=25)


@given(words_st, words_st, st.integers(1, 6))
def test_exact_verification_reports_the_true_jaccard(a_words, b_words, n):
    a, b = " ".join(a_words), " ".join(b_words)
    r = dedup.dedup([a, b], threshold=0.01, verify="exact", ngram=n, bands=(128, 1))
    want = ref_jaccard(a, b, n)
    if not ref_normalize(a) or not ref_normalize(b):
        assert r.pairs.shape == (0, 2)  # empty documents are never near-duplicates
    elif want >= 0.25:  # a candidate for sure: missed with probability (1 - J)^128 < 1e-15
        assert r.pairs.tolist() == [[0, 1]]
        assert r.jaccard is not None
        assert r.jaccard[0] == pytest.approx(want, abs=1e-15)
    elif want == 0:
        assert r.pairs.shape == (0, 2)
    elif len(r.pairs):  # maybe a candidate: then with its exact similarity
        assert r.jaccard is not None
        assert r.jaccard[0] == pytest.approx(want, abs=1e-15)


def test_case_never_matters_greek_final_sigma():
    assert dedup.normalize_text(["ΟΔΟΣ", "οδος", "Σίσυφος"]) == ["οδοσ", "οδοσ", "σίσυφοσ"]
    assert dedup.exact(["ΟΔΟΣ ΚΑΙ ΛΟΓΟΣ", "οδος και λογος"]).cluster.tolist() == [0, 0]


def test_many_copies_are_linear_not_pairwise():
    """20k copies of one text (plus noise) with verification: copies join their original
    directly (pairwise checks through one bucket would take minutes)."""
    texts = ["the same boilerplate prompt that appears everywhere in the data"] * 20_000
    texts += [f"unique text number {i} with its own words" for i in range(50)]
    for verify in ("minhash", "exact"):
        r = dedup.dedup(texts, verify=verify)
        assert r.cluster[:20_000].tolist() == [0] * 20_000
        assert len(r.pairs) == 19_999
    index = dedup.MinHashIndex(verify="minhash")
    assert index.add(texts).sum() == 51
    ids, _ = index.query(texts[:1])[0]
    assert ids.tolist() == list(range(20_000))


def test_band_products_that_overflow_are_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="num_perm"):
        dedup.dedup(["a b c"], bands=(2, 2**63))
    with pytest.raises(InvalidInputError, match="num_perm"):
        dedup.MinHashIndex(bands=(2, 2**63))
    # a crafted file header: bands x rows overflowing, never a giant allocation
    index = dedup.MinHashIndex(num_perm=16, threshold=0.5)
    index.add(["a b c d e f"])
    path = tmp_path / "ix.bin"
    index.save(path)
    data = bytearray(path.read_bytes())
    data[8 + 3 * 8 : 8 + 5 * 8] = (2**32).to_bytes(8, "little") * 2
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="num_perm"):
        dedup.MinHashIndex.load(path)


def test_char_shingles():
    r = dedup.dedup(["abcdefgh", "abcdefgx", "zzzzzzzz"], unit="char", ngram=3, threshold=0.5,
                    verify="exact", bands=(64, 2))  # fmt: skip
    # 6 trigrams each, 5 shared: 5 / 7
    assert r.pairs.tolist() == [[0, 1]]
    assert r.jaccard is not None
    assert r.jaccard[0] == pytest.approx(5 / 7)


# -- recall / precision against the truth and datasketch ----------------------------------------


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.01) / max(n, 1))


def test_recall_and_precision_at_least_datasketch(planted):
    datasketch = pytest.importorskip("datasketch")
    texts, _pairs, truth = planted
    ds_flag = datasketch_flags(texts)
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    ds_recall, ds_precision = doc_scores(ds_flag, truth)
    assert (lsh.b, lsh.r) == dedup.lsh_params(0.8, 128)
    n_true, n_flag = int(truth.sum()), int(ds_flag.sum())
    for verify in (False, "minhash", "exact"):
        r = dedup.dedup(texts, threshold=0.8, num_perm=128, verify=verify)
        recall, precision = doc_scores(r.cluster_sizes() > 1, truth)
        # same S-curve in expectation: equal within sampling error (3 standard errors of the
        # difference of two estimates); verification only raises precision
        assert recall >= ds_recall - 3 * math.sqrt(2) * _se(ds_recall, n_true), verify
        assert precision >= ds_precision - 3 * math.sqrt(2) * _se(ds_precision, n_flag), verify
        if verify == "exact":
            assert precision == 1.0
        if verify == "minhash":
            assert precision > ds_precision


def test_pair_recall_follows_the_lsh_s_curve(planted):
    """Each true pair becomes a candidate with probability 1 - (1 - J^r)^b; the count of
    found pairs is within 4 standard deviations of the sum of those probabilities."""
    texts, pairs, _ = planted
    b, r = dedup.lsh_params(0.8, 128)
    res = dedup.dedup(texts, threshold=0.8, verify="exact")
    # a true pair counts as found when both ends ended in one cluster
    hit = sum(res.cluster[i] == res.cluster[j] for i, j in pairs)
    p = np.array([1 - (1 - j**r) ** b for j in pairs.values()])
    assert len(pairs) > 300
    assert abs(hit - p.sum()) <= 4 * math.sqrt((p * (1 - p)).sum()) + 0.05 * len(p)
    # and no pair in the result is below the threshold
    assert res.jaccard is not None
    assert (res.jaccard >= 0.8).all()


def test_minhash_estimate_is_unbiased_with_binomial_variance():
    """Pairs with known Jaccard similarity (planted shingle overlaps): the mean estimate error
    is ~0 and its variance ~J(1-J)/P."""
    rng = np.random.default_rng(5)
    p = 128
    for common, only in [(60, 20), (30, 40), (90, 5)]:
        j = common / (common + 2 * only)
        a_texts, b_texts = [], []
        for _ in range(400):
            tokens = [f"t{x}" for x in rng.choice(10**9, common + 2 * only, replace=False)]
            shared, ea, eb = (
                tokens[:common],
                tokens[common : common + only],
                tokens[common + only :],
            )
            a_texts.append(" ".join(shared + ea))
            b_texts.append(" ".join(shared + eb))
        sa = dedup.signatures(a_texts, num_perm=p, ngram=1)
        sb = dedup.signatures(b_texts, num_perm=p, ngram=1)
        err = (sa == sb).mean(axis=1) - j
        var = j * (1 - j) / p
        assert abs(err.mean()) < 4 * math.sqrt(var / len(err)), (j, err.mean())
        assert 0.75 < err.var() / var < 1.33, (j, err.var() / var)


# -- invariances ---------------------------------------------------------------------------------


def _same(a: dedup.DedupResult, b: dedup.DedupResult) -> None:
    np.testing.assert_array_equal(a.cluster, b.cluster)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.similarity, b.similarity)
    np.testing.assert_array_equal(a.keep, b.keep)


@pytest.mark.parametrize("verify", [False, "minhash", "exact"])
def test_thread_count_does_not_change_the_result(planted, verify):
    texts = planted[0][:1500]
    one, two = (dedup.dedup(texts, verify=verify, threads=k) for k in (1, 2))
    _same(one, two)
    _same(dedup.exact(texts, threads=1), dedup.exact(texts, threads=2))


def test_signatures_made_elsewhere_give_the_same_clusters(planted):
    texts = planted[0][:1200]
    parts = [dedup.signatures(texts[i : i + 500]) for i in range(0, len(texts), 500)]
    for verify in (False, "minhash"):
        _same(
            dedup.dedup_signatures(np.concatenate(parts), verify=verify),
            dedup.dedup(texts, verify=verify),
        )


@functools.cache
def _stream_case(verify):
    texts = dedup_corpus(600, seed=3, min_words=5, max_words=40)
    return texts, dedup.dedup(texts, threshold=0.7, verify=verify)


@given(
    cuts=st.lists(st.integers(0, 600), max_size=6),
    verify=st.sampled_from([False, "minhash"]),
)
def test_streaming_index_equals_batch_for_any_split(cuts, verify):
    texts, want = _stream_case(verify)
    index = dedup.MinHashIndex(threshold=0.7, verify=verify)
    keep = []
    bounds = sorted({0, len(texts), *cuts})
    for a, b in itertools.pairwise(bounds):
        keep.extend(index.add(texts[a:b]).tolist())
    np.testing.assert_array_equal(index.clusters(), want.cluster)
    # "kept" in a stream: no earlier near-duplicate; the first of each cluster always is
    assert all(keep[i] for i in np.flatnonzero(want.keep))
    assert len(index) == len(texts)


def test_index_query_save_and_load(tmp_path, planted):
    texts = planted[0][:800]
    index = dedup.MinHashIndex(threshold=0.8, verify="minhash")
    index.add(texts)
    m = index.query(texts[:50])
    assert len(m) == 50
    for q, (ids, sim) in enumerate(m):
        assert q in ids.tolist()
        assert (sim >= 0.8).all()
    path = tmp_path / "index.bin"
    index.save(path)
    back = dedup.MinHashIndex.load(path)
    assert len(back) == len(index)
    assert back.params == index.params
    np.testing.assert_array_equal(back.clusters(), index.clusters())
    np.testing.assert_array_equal(back.signatures(), index.signatures())
    back.add(["a new text that is not like the others at all"])
    assert len(back) == len(index) + 1
    assert [p.name for p in tmp_path.iterdir()] == ["index.bin"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would have made it
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InvalidInputError, match="truncated"):
        dedup.MinHashIndex.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="not a fastalign MinHash index"):
        dedup.MinHashIndex.load(path)


# -- the documented rules and bad input ----------------------------------------------------------


def test_empty_documents_rule():
    texts = ["", "   ", "?!", "", "real words here"]
    r = dedup.dedup(texts)
    assert r.empty.tolist() == [True, True, True, True, False]
    assert r.keep.all()
    assert r.cluster.tolist() == [0, 1, 2, 3, 4]
    assert dedup.exact(texts).cluster.tolist() == [0, 0, 0, 0, 4]
    assert dedup.exact(texts).empty.tolist() == [True, True, True, True, False]
    assert (dedup.signatures(texts)[:4] == 2**32 - 1).all()
    empty = dedup.dedup([])
    assert empty.keep.shape == (0,)
    assert empty.pairs.shape == (0, 2)
    assert empty.summary()["texts"] == 0


def test_short_documents_are_one_shingle():
    r = dedup.dedup(["one two", "One two!", "one three"], verify="exact")
    assert r.cluster.tolist() == [0, 0, 2]


def test_summary_and_clusters():
    texts = ["a b c d e f"] * 3 + ["x y z w v u"] * 2 + ["lonely text here now"]
    r = dedup.dedup(texts)
    assert r.summary() == {"texts": 6, "kept": 3, "removed": 3, "clusters": 2,
                           "largest_cluster": 3, "empty": 0}  # fmt: skip
    assert [c.tolist() for c in r.clusters()] == [[0, 1, 2], [3, 4]]
    assert "removed=3" in repr(r)


@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        ("just one string", TypeError, "not a single str"),
        (["ok", None], TypeError, r"texts\[1\] is None"),
        (["ok", 3], TypeError, r"texts\[1\] is int, not str"),
        (["ok", b"bytes"], TypeError, r"texts\[1\] is bytes"),
        (["ok", "\ud800"], UnicodeError, r"texts\[1\] is not valid Unicode"),
        (42, TypeError, "not int"),
    ],
)
def test_bad_texts(bad, exc, match):
    with pytest.raises(exc, match=match):
        dedup.dedup(bad)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"threshold": 1.0}, InvalidInputError, "threshold"),
        ({"threshold": float("nan")}, InvalidInputError, "threshold"),
        ({"threshold": "0.8"}, TypeError, "threshold"),
        ({"num_perm": 1}, InvalidInputError, "num_perm"),
        ({"num_perm": True}, TypeError, "num_perm"),
        ({"ngram": 0}, InvalidInputError, "ngram"),
        ({"unit": "token"}, InvalidInputError, "unit"),
        ({"verify": "maybe"}, InvalidInputError, "verify"),
        ({"bands": (20, 20)}, InvalidInputError, "num_perm"),
        ({"normalize": "yes"}, TypeError, "normalize"),
        ({"seed": -1}, InvalidInputError, "seed"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        dedup.dedup(["a b c", "a b c"], **kwargs)


def test_bad_signatures():
    with pytest.raises(TypeError, match="uint32"):
        dedup.dedup_signatures(np.zeros((3, 8), dtype=np.int64))
    with pytest.raises(ShapeError):
        dedup.dedup_signatures(np.zeros(8, dtype=np.uint32))
    with pytest.raises(InvalidInputError, match="needs the texts"):
        dedup.dedup_signatures(np.zeros((3, 8), dtype=np.uint32), verify="exact")
    index = dedup.MinHashIndex(num_perm=64)
    with pytest.raises(ShapeError, match=r"num_perm|values"):
        index.add_signatures(np.zeros((2, 32), dtype=np.uint32))
    with pytest.raises(InvalidInputError, match="signatures only"):
        dedup.MinHashIndex(verify="exact")


def test_array_inputs():
    texts = ["alpha beta gamma delta", "alpha beta gamma delta", "other"]
    want = dedup.dedup(texts).cluster.tolist()
    assert dedup.dedup(np.array(texts)).cluster.tolist() == want
    assert dedup.dedup(tuple(texts)).cluster.tolist() == want
    assert dedup.dedup(iter(texts)).cluster.tolist() == want
    pa = pytest.importorskip("pyarrow")
    assert dedup.dedup(pa.array(texts)).cluster.tolist() == want
    with pytest.raises(ShapeError):
        dedup.dedup(np.array([texts]))


# -- contamination and records -------------------------------------------------------------------


def test_contamination(planted):
    texts = planted[0]
    train, held = texts[:2000], texts[2000:2300]
    leaked = [train[5] + " extra", train[17].upper(), "an unrelated evaluation question"]
    for verify in ("minhash", "exact", False):
        r = dedup.contamination(train, leaked + held[:20], threshold=0.8, verify=verify)
        assert r.contaminated[:3].tolist() == [True, True, False], verify
        assert r.match[:3].tolist() == [5, 17, -1]
        assert r.similarity[1] == 1.0
        assert r.similarity[2] == 0.0
    r = dedup.contamination(train, leaked, verify="exact")
    assert r.similarity[0] == pytest.approx(ref_jaccard(train[5], leaked[0]))
    assert r.rate == pytest.approx(2 / 3)


def test_record_helpers():
    rows = [
        {"prompt": "Tell me a joke", "chosen": "A", "rejected": "B"},
        {"prompt": "tell me a joke!", "chosen": "A", "rejected": "C"},
        {"prompt": [{"role": "user", "content": "Tell me a joke"}], "chosen": "A", "rejected": "B"},
    ]
    assert dedup.record_texts(rows[2:], "prompt") == ["user: Tell me a joke"]
    kept, r = dedup.dedup_records(rows, "prompt", exact_only=True)
    assert kept == rows[0:1] + rows[2:]
    assert r.n_removed == 1
    kept, r = dedup.dedup_records(rows, ["prompt", "chosen", "rejected"], exact_only=True)
    assert len(kept) == 3
    with pytest.raises(KeyError, match="row 1 has no field 'prompt'"):
        dedup.record_texts([{"prompt": "y"}, {"q": 1}], "prompt")
    with pytest.raises(TypeError, match=r"row 1: 'prompt' is None"):
        dedup.record_texts([{"prompt": "x"}, {"prompt": None}])
    with pytest.raises(TypeError, match="records must be"):
        dedup.record_texts("prompt")


def test_records_from_pandas_with_chat_columns():
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("pandas")
    chat = [{"role": "user", "content": "Hello there"}]
    df = pa.table({"prompt": [chat, chat, [{"role": "user", "content": "Bye"}]]}).to_pandas()
    kept, r = dedup.dedup_records(df, "prompt", exact_only=True)
    assert r.n_removed == 1
    assert len(kept) == 2


def test_records_from_arrow_and_datasets():
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"prompt": ["Same text here", "same text here.", "different"], "k": [1, 2, 3]})
    kept, _ = dedup.dedup_records(table, "prompt", exact_only=True)
    assert isinstance(kept, pa.Table)
    assert kept.column("k").to_pylist() == [1, 3]
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(table.to_pydict())
    kept, _r = dedup.dedup_records(ds, "prompt", exact_only=True)
    assert kept["k"] == [1, 3]
    with pytest.raises(KeyError, match="no column 'answer'"):
        dedup.record_texts(ds, "answer")


_HUGE_NUM_PERM = """
import sys
from fastalign import dedup
from fastalign.errors import InvalidInputError
calls = {
    "dedup": lambda p: dedup.dedup(["a b c", "a b d"], num_perm=p),
    "MinHashIndex": lambda p: dedup.MinHashIndex(num_perm=p),
    "contamination": lambda p: dedup.contamination(["a b c"], ["a b c"], num_perm=p),
    "lsh_params": lambda p: dedup.lsh_params(0.8, p),
}
for p in (2**40, 10**6, 4097):
    for name, call in calls.items():
        try:
            call(p)
        except InvalidInputError as e:
            assert "num_perm" in str(e) and "4096" in str(e), (name, p, e)
        else:
            sys.exit(f"{name}(num_perm={p}) did not raise")
print("refused")
"""


def test_huge_num_perm_is_refused_before_the_band_search():
    """num_perm=2**40 used to run the band search over every bands x rows <= num_perm (20 s
    at 10**5, holding the GIL) before the 4096 limit was checked: now a named error at once."""
    proc = subprocess.run(
        [sys.executable, "-c", _HUGE_NUM_PERM], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "refused" in proc.stdout
    assert dedup.lsh_params(0.5, dedup.MAX_NUM_PERM)  # the limit itself is allowed


@pytest.mark.parametrize("name", ["num_perm", "ngram"])
def test_int_options_beyond_the_native_types_are_named_errors(name):
    with pytest.raises(InvalidInputError, match=name):
        dedup.signatures(["a b c"], **{name: 2**70})


_MANY_THREADS = """
import os
from fastalign import bleu, dedup
from fastalign.errors import InvalidInputError
for call in (
    lambda t: dedup.dedup(["a b c", "a b d"], threads=t),
    lambda t: bleu.sentence_scores(["a b c"], [["a b c"]], threads=t),
):
    try:
        call(100000)
    except InvalidInputError as e:
        assert "threads must be in [1," in str(e), e
    else:
        raise SystemExit("threads=100000 was accepted")
import time
for t in range(20, 0, -1):  # distinct counts: only the last few (small) pools are kept
    dedup.dedup(["a b c", "a b d"], threads=t)
for _ in range(50):  # a dropped pool's threads end on their own, soon after
    tasks = len(os.listdir("/proc/self/task"))
    if tasks < 40:
        break
    time.sleep(0.1)
assert tasks < 40, tasks  # 20 + 19 + ... + 1 = 210 threads if every pool were kept
print("ok", tasks)
"""


def test_threads_are_capped_and_pools_bounded():
    """threads=100000 started that many OS threads (no return); every distinct count kept its
    pool forever (threads=1..48 left 1,180 threads alive)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MANY_THREADS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")


@pytest.mark.parametrize("bad", [0, -1, 2**70, 2.0, "2"])
def test_threads_checked_by_name(bad):
    with pytest.raises((TypeError, InvalidInputError), match="threads"):
        dedup.dedup(["a b c"], threads=bad)


def test_band_choice_equals_datasketch_including_exact_ties():
    """datasketch's own _optimal_param over a grid; threshold 0.5 with num_perm 2 or 3 is an
    exact tie ((1, 1) and (2, 1) both score 0.125) that fastalign broke the other way."""
    lsh = pytest.importorskip("datasketch.lsh")
    assert dedup.lsh_params(0.5, 2) == (1, 1)
    assert dedup.lsh_params(0.5, 3) == (1, 1)
    for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        for p in [*range(2, 40), 64, 128, 256]:
            assert dedup.lsh_params(t, p) == lsh._optimal_param(t, p, 0.5, 0.5), (t, p)


@pytest.mark.parametrize("bad", [{"a b c", "d e f"}, frozenset({"a b c"}), {"a b c": 1}])
def test_sets_and_mappings_are_not_texts(bad):
    """A set's order depends on the hash seed and a dict holds keys: results indexed by
    position would be meaningless, so every text API refuses them by name."""
    kind = type(bad).__name__
    calls = [
        ("texts", lambda: dedup.dedup(bad)),
        ("texts", lambda: dedup.exact(bad)),
        ("texts", lambda: dedup.signatures(bad)),
        ("texts", lambda: dedup.normalize_text(bad)),
        ("texts", lambda: dedup.MinHashIndex().add(bad)),
        ("texts", lambda: dedup.MinHashIndex().query(bad)),
        ("train", lambda: dedup.contamination(bad, ["x"])),
        ("eval", lambda: dedup.contamination(["x"], bad)),
    ]
    for name, call in calls:
        with pytest.raises(
            TypeError, match=rf"^{name} must be an ordered sequence .* not a {kind}"
        ):
            call()


def test_contamination_names_the_bad_item_by_its_argument():
    """It said texts[1] for a bad eval item; now train[i] / eval[i], in every verify mode."""
    for verify in ("none", "minhash", "exact"):
        with pytest.raises(TypeError, match=r"^train\[1\] is int, not str"):
            dedup.contamination(["a b c", 3], ["x"], verify=verify)
        with pytest.raises(TypeError, match=r"^eval\[0\] is None"):
            dedup.contamination(["a b c"], [None], verify=verify)
        with pytest.raises(UnicodeError, match=r"^eval\[1\] is not valid Unicode"):
            dedup.contamination(["a b c"], ["ok", "\ud800"], verify=verify)


def test_corrupted_index_files_are_refused(tmp_path):
    """A flipped bit in the seed loaded (and every query then missed), a flipped signature
    bit went unnoticed, a threshold of 0 was accepted: the file now carries a checksum and its
    header is checked with the API's own rules."""
    index = dedup.MinHashIndex(num_perm=16, threshold=0.5)
    index.add(["a b c d e f", "g h i j k l"])
    path = tmp_path / "ix.bin"
    index.save(path)
    good = path.read_bytes()
    for at in (8 + 2 * 8, len(good) - 20):  # a bit of the seed, a bit of a signature
        data = bytearray(good)
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(InvalidInputError, match="checksum does not match"):
            dedup.MinHashIndex.load(path)
    data = bytearray(good)
    data[8 + 6 * 8 : 8 + 7 * 8] = struct.pack("<d", 0.0)
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"threshold 0(\.0)? is outside \(0, 1\)"):
        dedup.MinHashIndex.load(path)
    path.write_bytes(good)
    assert dedup.MinHashIndex.load(path).clusters().tolist() == index.clusters().tolist()
