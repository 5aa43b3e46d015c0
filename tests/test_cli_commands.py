"""`fastalign bleu | rank | pareto`: the numbers of the `sacrebleu` command and of the Python
API, `--help`, and bad files named by file and line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastalign import pareto, rank
from fastalign.cli import main

HYPS = [
    "The cat sat on the mat.",
    "A dog barked loudly at night",
    "hello world",
    "It costs $3.50, right?",
    "Ünïcödé text — with dashes and 1,000 numbers.",
]
REFS = [
    ["The cat sat on a mat.", "A dog barked at night", "hello there world",
     "It cost $3.50 right?", "Unicode text - with dashes and 1000 numbers."],
    ["the cat is on the mat", "dogs bark at night", "hello world",
     "The price is $3.50, right?", "Ünïcödé text with dashes, 1,000 numbers."],
]  # fmt: skip


@pytest.fixture
def bleu_files(tmp_path):
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("\n".join(HYPS) + "\n", encoding="utf-8")
    refs = []
    for k, stream in enumerate(REFS):
        ref = tmp_path / f"ref{k}.txt"
        ref.write_text("\n".join(stream) + "  \n", encoding="utf-8")  # trailing blanks stripped
        refs.append(ref)
    tabbed = tmp_path / "refs.tsv"
    tabbed.write_text("".join(f"{a}\t{b}\n" for a, b in zip(*REFS, strict=True)))
    return hyp, refs, tabbed


def _sacrebleu(args, cwd):
    exe = shutil.which("sacrebleu") or str(
        __import__("pathlib").Path(sys.executable).with_name("sacrebleu")
    )
    proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


BLEU_CASES = [
    ["ref0.txt", "-i", "hyp.txt"],
    ["ref0.txt", "ref1.txt", "-i", "hyp.txt", "-f", "text"],
    ["ref0.txt", "ref1.txt", "-i", "hyp.txt", "-w", "4"],
    ["refs.tsv", "-nr", "2", "-i", "hyp.txt", "-f", "text"],
    ["ref0.txt", "-i", "hyp.txt", "--sentence-level"],
    ["ref0.txt", "ref1.txt", "-i", "hyp.txt", "-sl", "-b", "-w", "3"],
    ["ref0.txt", "-i", "hyp.txt", "-b"],
    ["ref0.txt", "-i", "hyp.txt", "-lc", "-tok", "intl", "-f", "text"],
    ["ref0.txt", "ref1.txt", "-i", "hyp.txt", "-tok", "char", "-s", "floor", "-sv", "0.2"],
    ["ref0.txt", "-i", "hyp.txt", "-tok", "none", "-s", "add-k", "-f", "text", "-w", "2"],
    ["ref1.txt", "-i", "hyp.txt", "-tok", "zh", "-s", "none"],
]


@pytest.mark.parametrize("args", BLEU_CASES, ids=" ".join)
def test_bleu_prints_what_the_sacrebleu_command_prints(bleu_files, args, capsys, monkeypatch):
    pytest.importorskip("sacrebleu")
    hyp, _, _ = bleu_files
    monkeypatch.chdir(hyp.parent)
    want = _sacrebleu(args, hyp.parent)
    assert main(["bleu", *args]) == 0
    assert capsys.readouterr().out == want


def test_bleu_reads_hypotheses_and_a_reference_from_stdin(bleu_files, monkeypatch, capsys):
    """`-` for a reference, or hypotheses on stdin, as the Python API scores them."""
    import io

    from fastalign import bleu

    hyp, refs, _ = bleu_files
    want = bleu.corpus_bleu(HYPS, REFS)
    for args, stdin in (
        ([str(refs[0]), str(refs[1]), "-b", "-w", "6"], hyp.read_bytes()),
        (["-", str(refs[1]), "-i", str(hyp), "-b", "-w", "6"], refs[0].read_bytes()),
    ):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        assert main(["bleu", *args]) == 0
        assert capsys.readouterr().out == f"{want.score:.6f}\n"


def test_bleu_bad_input_names_the_file_and_line(bleu_files, tmp_path, capsys):
    hyp, refs, tabbed = bleu_files
    short = tmp_path / "short.txt"
    short.write_text("one line\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf-8\n")
    cases = [
        ([str(short), "-i", str(hyp)], f"{hyp} has 5 lines but {short} has 1 line"),
        ([str(bad), "-i", str(hyp)], f"{bad}:2: not utf-8 text"),
        ([str(tabbed), "-nr", "3", "-i", str(hyp)], f"{tabbed}:1: expected 3 tab-separated"),
        ([str(tmp_path / "missing.txt"), "-i", str(hyp)], "missing.txt: no such file"),
        (["-", "-", "-i", str(hyp)], "standard input (-) can be given as one reference only"),
        ([str(refs[0]), "-i", str(hyp), str(hyp)], "one system per call"),
        ([str(refs[0]), "-i", str(hyp), "-w", "-1"], "--width must be in 0..20"),
        ([], "at least one reference"),
    ]
    for args, message in cases:
        assert main(["bleu", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert err.startswith("fastalign bleu: error: ")


def _battles(tmp_path, fmt="jsonl"):
    rng = np.random.default_rng(3)
    models = ["gpt", "claude", "llama", "qwen"]
    strength = {"gpt": 1.0, "claude": 0.7, "llama": 0.0, "qwen": 0.3}
    rows = []
    for _ in range(600):
        a, b = rng.choice(models, 2, replace=False)
        p = 1 / (1 + math.exp(strength[b] - strength[a]))
        u = rng.random()
        winner = "tie" if u < 0.1 else ("model_a" if rng.random() < p else "model_b")
        rows.append({"model_a": str(a), "model_b": str(b), "winner": winner,
                     "judge": "j1" if rng.random() < 0.5 else "j2"})  # fmt: skip
    path = tmp_path / f"battles.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(
            "model_a,model_b,winner,judge\n"
            + "".join(f"{r['model_a']},{r['model_b']},{r['winner']},{r['judge']}\n" for r in rows)
        )
    return path, rows


def test_rank_bt_equals_the_python_api(tmp_path, capsys):
    path, rows = _battles(tmp_path)
    assert main(["rank", str(path), "--json", "--bootstrap", "200", "--seed", "5"]) == 0
    board = json.loads(capsys.readouterr().out)
    w = [r["model_a"] if r["winner"] != "model_b" else r["model_b"] for r in rows]
    lo = [r["model_b"] if r["winner"] != "model_b" else r["model_a"] for r in rows]
    ties = [r["winner"] == "tie" for r in rows]
    want = rank.bradley_terry(w, lo, ties=ties, bootstrap_rounds=200, seed=5)
    scale = 400 / math.log(10)
    got = {m["model"]: m for m in board["models"]}
    for k, model in enumerate(want.labels):
        assert got[model]["rating"] == pytest.approx(1000 + scale * want.scores[k], abs=1e-9)
        assert got[model]["ci"] == pytest.approx(list(1000 + scale * want.ci[k]), abs=1e-9)
        assert got[model]["rank"] == want.ranks[k]
    assert board["battles"] == 600
    assert board["ties"] == sum(ties)
    assert [m["rank"] for m in board["models"]] == [1, 2, 3, 4]
    assert sum(m["wins"] for m in board["models"]) == 600 - sum(ties)
    # the text table: one line per model, best first, and the same numbers
    assert main(["rank", str(path), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    lines = [line.split() for line in text.splitlines()[3:]]
    assert [line[1] for line in lines] == [m["model"] for m in board["models"]]
    assert float(lines[0][2]) == pytest.approx(board["models"][0]["rating"], abs=0.05)


@pytest.mark.parametrize("method", ["elo", "pl", "lottery"])
def test_rank_other_methods_equal_the_python_api(tmp_path, capsys, method):
    path, rows = _battles(tmp_path, fmt="csv")
    out = tmp_path / "board.json"
    assert main(["rank", str(path), "--method", method, "--bootstrap", "20", "--json",
                 "-o", str(out), "--judge", "j1"]) == 0  # fmt: skip
    board = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == board
    rows = [r for r in rows if r["judge"] == "j1"]
    w = [r["model_a"] if r["winner"] != "model_b" else r["model_b"] for r in rows]
    lo = [r["model_b"] if r["winner"] != "model_b" else r["model_a"] for r in rows]
    ties = np.array([r["winner"] == "tie" for r in rows])
    labels = sorted(set(w) | set(lo))
    if method == "elo":
        want = rank.elo(w, lo, ties=ties).scores
    elif method == "pl":
        d = ~ties
        pairs = [[a, b] for a, b, keep in zip(w, lo, d, strict=True) if keep]
        s = rank.plackett_luce(pairs).scores
        want = 1000 + 400 / math.log(10) * (s - s.mean())
    else:
        want = rank.maximal_lottery(rank.preference_matrix(w, lo, ties=ties))
    key = "probability" if method == "lottery" else "rating"
    got = {m["model"]: m[key] for m in board["models"]}
    np.testing.assert_allclose([got[m] for m in labels], want, rtol=0, atol=1e-6)
    assert board["battles"] == len(rows)
    assert all(m["ci"] is not None for m in board["models"]) or method == "lottery"


def test_rank_bad_files_name_the_file_and_line(tmp_path, capsys):
    cases = {
        "a.jsonl": ('{"model_a": "x", "model_b": "y", "winner": "model_a"}\nnot json\n',
                    "a.jsonl:2: not valid JSON"),
        "b.jsonl": ('{"model_a": "x", "model_b": "y"}\n', "b.jsonl:1: no field 'winner'"),
        "c.csv": ("model_a,model_b,winner\nx,y,model_a\nx,y,draw\n",
                  "c.csv:3: winner 'draw' is none of"),
        "d.csv": ("model_a,model_b,winner\nx,x,tie\n", "d.csv:2: a battle of 'x' with itself"),
        "e.txt": ("x", "cannot tell the format from the extension '.txt'"),
        "f.jsonl": ('{"model_a": "x", "model_b": 3, "winner": "tie"}\n',
                    "f.jsonl:1: model_b must be a non-empty string"),
        "g.jsonl": ("", "g.jsonl: no battles"),
    }  # fmt: skip
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        assert main(["rank", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert message in err, (name, err)
    assert main(["rank", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
    path = tmp_path / "a.jsonl"
    path.write_text('{"model_a": "x", "model_b": "y", "winner": "model_a"}\n')
    assert main(["rank", str(path), "--judge", "j"]) == 2
    assert "no judge column" in capsys.readouterr().err
    assert main(["rank", str(path), "-o", str(path)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert main(["rank", str(path), "--ci", "1.5"]) == 2
    assert "--ci must be in (0, 1)" in capsys.readouterr().err


def _scores(tmp_path):
    rng = np.random.default_rng(7)
    F = np.column_stack([rng.random(60), rng.random(60), rng.integers(10, 90, 60)])
    path = tmp_path / "scores.csv"
    path.write_text(
        "name,helpful,harmless,length,note\n"
        + "".join(
            f"c{i},{float(a)!r},{float(b)!r},{int(c)},x{i}\n" for i, (a, b, c) in enumerate(F)
        )
    )
    return path, F


def test_pareto_equals_the_python_api(tmp_path, capsys):
    path, F = _scores(tmp_path)
    senses = ["max", "max", "min"]
    ref = [-0.5, -0.5, 100.0]
    assert main(["pareto", str(path), "--id", "name", "--max", "helpful", "--max", "harmless",
                 "--ref=" + ",".join(map(str, ref)), "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert res["objectives"] == ["helpful", "harmless", "length"]  # numeric columns, not note
    assert res["sense"] == senses
    fronts = pareto.non_dominated_sort(F, sense=senses)
    assert res["front"] == fronts.tolist()
    crowd = pareto.crowding_distance(F, fronts, sense=senses)
    assert [math.inf if c is None else c for c in res["crowding"]] == crowd.tolist()
    want = pareto.hypervolume(F[fronts == 0], ref, sense=senses)
    assert res["hypervolume"] == want
    assert res["front_sizes"] == np.bincount(fronts).tolist()
    assert res["ids"] == [f"c{i}" for i in range(60)]
    # the report and the written rows
    out = tmp_path / "fronts.csv"
    assert main(["pareto", str(path), "--objectives", "helpful,harmless,length",
                 "--sense", "max,max,min", "--ref=" + ",".join(map(str, ref)), "--top", "0",
                 "--id", "name", "-o", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert f"hypervolume of the first front: {want:.10g}" in text
    assert f"first front ({int((fronts == 0).sum())} rows)" in text
    written = out.read_text().splitlines()
    assert written[0] == "name,helpful,harmless,length,note,front,crowding"
    assert [int(line.split(",")[5]) for line in written[1:]] == fronts.tolist()


def test_pareto_default_reference_point(tmp_path, capsys):
    path, F = _scores(tmp_path)
    assert main(["pareto", str(path), "--objectives", "helpful,length", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    f = F[:, [0, 2]]
    span = f.max(0) - f.min(0)
    assert res["ref"] == pytest.approx((f.max(0) + 0.1 * span).tolist(), rel=1e-15)
    front = pareto.non_dominated_sort(f) == 0
    assert res["hypervolume"] == pareto.hypervolume(f[front], res["ref"])


def test_pareto_bad_input_names_the_file_and_line(tmp_path, capsys):
    path, _ = _scores(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    cases = [
        ([str(bad), "--objectives", "a,b"], f"{bad}:3: b = 'oops' is not a number"),
        ([str(bad), "--objectives", "a,c"], f"{bad}:2: no field 'c'"),
        (
            [str(path), "--ref", "1,2"],
            "--ref has 2 values for the 3 objective(s) helpful, harmless, length",
        ),
        ([str(path), "--max", "nope"], "--max names ['nope']"),
        ([str(path), "--sense", "max,up,min"], "--sense must be min or max"),
        ([str(path), "--max", "helpful", "--sense", "min"], "give --sense or --max, not both"),
        ([str(path), "-o", str(path)], "refusing to overwrite the input"),
    ]
    for args, message in cases:
        assert main(["pareto", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)


@pytest.mark.parametrize("command", ["bench", "dedup", "bleu", "rank", "pareto", "info"])
def test_every_command_has_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "fastalign", command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: fastalign {command}")
    top = subprocess.run([sys.executable, "-m", "fastalign", "--help"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert command in top.stdout


def test_bleu_reads_other_encodings_as_sacrebleu(tmp_path, capsys, monkeypatch):
    """-e utf-16: the whole file is decoded before it is split into lines."""
    pytest.importorskip("sacrebleu")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "h.txt").write_text("\n".join(HYPS) + "\n", encoding="utf-16")
    (tmp_path / "r.txt").write_text("\n".join(REFS[0]) + "\n", encoding="utf-16")
    args = ["r.txt", "-i", "h.txt", "-e", "utf-16", "-f", "text"]
    want = _sacrebleu(args, tmp_path)
    assert main(["bleu", *args]) == 0
    assert capsys.readouterr().out == want


def test_rank_pl_bootstrap_skips_resamples_without_a_maximum(tmp_path, capsys):
    """A model that wins once in 31 battles: the fit exists, but many resamples have no win
    for it (no maximum without a prior); those are left out, not fatal."""
    rows = [{"model_a": "weak", "model_b": m, "winner": "model_b"} for m in ("a", "b", "c")] * 10
    rows.append({"model_a": "weak", "model_b": "a", "winner": "model_a"})
    rows += [{"model_a": x, "model_b": y, "winner": w} for x, y, w in
             [("a", "b", "model_a"), ("b", "c", "model_a"), ("c", "a", "model_a")] * 4]  # fmt: skip
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["rank", str(path), "--method", "pl", "--bootstrap", "50", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert 0 < board["bootstrap_used"] < 50
    assert board["models"][-1]["model"] == "weak"


def test_tables_with_a_bom_and_repeated_columns(tmp_path, capsys):
    bom = tmp_path / "bom.csv"  # a spreadsheet export
    bom.write_bytes(b"\xef\xbb\xbfmodel_a,model_b,winner\nx,y,model_a\ny,x,model_a\n")
    assert main(["rank", str(bom), "--bootstrap", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["battles"] == 2
    scores = tmp_path / "s.csv"
    scores.write_text("a,b\n1,2\n2,1\n3,3\n")
    for args, message in (
        (["--objectives", "a,b,a"], "--objectives names ['a'] more than once"),
        (["--objectives", "a,b", "--id", "a"], "--id 'a' is one of the objectives"),
    ):
        assert main(["pareto", str(scores), *args]) == 2
        assert message in capsys.readouterr().err


def test_pareto_names_the_columns_it_leaves_out(tmp_path, capsys):
    path = tmp_path / "miss.csv"
    path.write_text("id,a,b,note\n1,0.5,2,x\n2,,1,y\n3,0.1,3,z\n")
    assert main(["pareto", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["objectives"] == ["id", "b"]  # no --id: a numeric id column is an objective
    assert res["skipped"] == [f"a (not a number at {path}:3)"]
    assert main(["pareto", str(path), "--id", "id"]) == 0
    out = capsys.readouterr().out
    assert f"left out (not all numbers): a (not a number at {path}:3)" in out
