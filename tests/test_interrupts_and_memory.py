"""Bad input must not take the interpreter down, and Ctrl-C must stop a long Rust call.

Allocation: a call whose output or working set is beyond the machine raises
``fastalign.errors.AllocationError`` (a ``MemoryError``) naming the argument and the size,
instead of aborting the interpreter ("memory allocation of N bytes failed", SIGABRT). Each case
runs in a child process whose address space is capped at what it already uses plus 4 GiB
(``RLIMIT_AS``), so that even the old behaviour could never take more than that, and an abort
only fails the test.

Interrupts: a long call (bootstrap, dedup, Kemeny local search, batched BLEU) in a child gets
SIGINT about a second after it starts and must end with ``KeyboardInterrupt`` within a few
seconds (each would run for many seconds to minutes without the signal).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastalign
from fastalign import _core
from fastalign.errors import AllocationError, FastalignError

# -- the error mapping ---------------------------------------------------------------------------


def test_memory_errors_are_memory_errors():
    with pytest.raises(AllocationError) as info:
        _core.sys_debug_fail("memory")
    assert isinstance(info.value, MemoryError)
    assert isinstance(info.value, FastalignError)
    assert str(info.value) == (
        "debug: n=12 would produce 12 things (9.6 GB): more memory than this process can allocate"
    )
    assert fastalign.AllocationError is AllocationError


def test_an_interrupted_core_call_is_a_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        _core.sys_debug_fail("interrupted")


# -- allocation failures: an exception, not an abort --------------------------------------------

_CAPPED = textwrap.dedent(
    """
    import resource, sys, time
    import numpy as np
    import fastalign, fastalign.pareto, fastalign.rank
    from fastalign.errors import AllocationError
    fastalign.rank.bradley_terry([0, 1], [1, 0])  # the thread pool is up: its stacks counted
    used = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")]
    cap = used[0] + (4 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    t = time.perf_counter()
    try:
        out = CALL
    except AllocationError as e:
        print(f"AllocationError after {time.perf_counter() - t:.2f} s: {e}")
    else:
        print("returned", type(out).__name__)
    """
)

_TWO_FRONTS = (
    "np.concatenate([np.stack([np.arange(K), K - np.arange(K)], 1),"
    " np.stack([np.arange(K) - 0.5, K - np.arange(K) - 0.5], 1)]).astype(float)"
)

ALLOCATION_CASES = {
    # 20k x 20k (first front, last front) pairs: 400M rows of 3 int64
    "pareto_all_pairs": (
        f"fastalign.pareto.pareto_pairs({_TWO_FRONTS.replace('K', '20_000')}, all_pairs=True)",
        "all_pairs=True would produce 400,000,000 pairs (9.6 GB)",
    ),
    # one group of 100k rows: 100k * (100k - 1) / 2 pairs
    "preference_pairs_all": (
        "fastalign.rank.preference_pairs(np.arange(100_000.0), [0, 100_000], mode='all')",
        "mode='all' would produce 4,999,950,000 pairs (120.0 GB)",
    ),
    "preference_pairs_top_bottom": (
        "fastalign.rank.preference_pairs(np.arange(100_000.0), [0, 100_000], "
        "mode='top_bottom', k=50_000)",
        "mode='top_bottom' (k=50000) would produce 2,500,000,000 pairs (60.0 GB)",
    ),
    # a million rounds of 2^20 items: 8.4 TB of scores
    "bootstrap_rounds": (
        "fastalign.rank.bradley_terry(np.arange(20), (np.arange(20) + 1) % 20, n_items=1 << 20, "
        "prior=1.0, bootstrap_rounds=10**6)",
        "bootstrap_rounds=1,000,000 x 1,048,576 items would produce 1,048,576,000,000 scores "
        "(8.4 TB)",
    ),
    # the largest item count accepted: per-item vectors of about a GB each
    "bradley_terry_max_items": (
        "fastalign.rank.bradley_terry([0, 1], [1, 0], n_items=2**27, prior=1.0)",
        "a fit over 134,217,728 items (n_items, or the largest id + 1)",
    ),
    # one ranking of 2^22 items: the curvature caches hold its ~L^2 / 2 stage probabilities
    "plackett_luce_long_ranking": (
        "fastalign.rank.plackett_luce(np.arange(2**22), [0, 2**22], prior=1.0)",
        "rankings whose stages hold 8,796,095,119,359 choice probabilities (the longest ranks "
        "4,194,304 items) (140.7 TB)",
    ),
    "plackett_luce_max_items": (
        "fastalign.rank.plackett_luce([[0, 1, 2], [2, 1, 0]], n_items=2**27, prior=1.0)",
        "a fit over 134,217,728 items (n_items, or the largest id + 1)",
    ),
}


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="caps the child with RLIMIT_AS, reads /proc"
)
@pytest.mark.parametrize("case", sorted(ALLOCATION_CASES))
def test_allocations_beyond_the_machine_raise_instead_of_aborting(case):
    call, message = ALLOCATION_CASES[case]
    p = subprocess.run(
        [sys.executable, "-c", _CAPPED.replace("CALL", call)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])  # -6: aborted
    assert p.stdout.startswith("AllocationError after "), p.stdout
    assert message in p.stdout
    assert p.stdout.rstrip().endswith("more memory than this process can allocate")
    # sized up front: refused before any of the work
    assert float(p.stdout.split()[2]) < 5.0, p.stdout


def test_pair_outputs_are_unchanged():
    """The counted outputs equal the pairs the enumeration makes (small cases)."""
    f = np.array([[1.0, 0.5], [0.2, 0.1], [0.9, 0.9], [0.1, 0.2], [0.5, 0.5], [0.0, 0.1]])
    # group 0: fronts {0, 2}, {1}; group 1: fronts {4}, {3}, {5}
    got = fastalign.pareto.pareto_pairs(f, offsets=[0, 3, 6], all_pairs=True)
    assert got.dtype == np.int64
    assert got.tolist() == [[0, 0, 1], [0, 2, 1], [1, 4, 5]]
    got = fastalign.pareto.pareto_pairs(f, offsets=[0, 3, 6])
    assert got.tolist() == [[0, 0, 1], [1, 4, 5]]
    assert fastalign.pareto.pareto_pairs(f[:0]).shape == (0, 3)
    s = [0.1, 0.9, 0.5, 0.5, 2.0, 1.0]
    p = fastalign.rank.preference_pairs(s, [0, 4, 6], mode="all")
    assert list(zip(p.chosen.tolist(), p.rejected.tolist(), strict=True)) == [
        (1, 2), (1, 3), (1, 0), (2, 0), (3, 0), (4, 5),
    ]  # fmt: skip
    p = fastalign.rank.preference_pairs(s, [0, 4, 6], mode="top_bottom", k=2, margin=0.3)
    assert (p.chosen.tolist(), p.rejected.tolist()) == ([1, 1, 2, 4], [3, 0, 0, 5])


# -- Ctrl-C: KeyboardInterrupt within about a second ----------------------------------------------

_LONG = textwrap.dedent(
    """
    import sys, time
    def go(call):
        print("start", flush=True)
        t = time.perf_counter()
        try:
            call()
        except KeyboardInterrupt:
            print(f"KeyboardInterrupt after {time.perf_counter() - t:.2f} s", flush=True)
        else:
            print(f"finished after {time.perf_counter() - t:.2f} s", flush=True)
    """
)

# each runs for many seconds without the signal (on the 2-core machine of benches/results:
# bootstrap ~1 minute, dedup ~15 s, Kemeny ~15 s, BLEU ~10 s), in a few hundred MB at most
LONG_CALLS = {
    "bootstrap": """
        import numpy as np, fastalign.rank as rank
        rng = np.random.default_rng(0)
        w = rng.integers(0, 200, 20_000)
        l = (w + 1 + rng.integers(0, 199, 20_000)) % 200
        go(lambda: rank.bradley_terry(w, l, prior=0.1, bootstrap_rounds=100_000))
    """,
    "dedup": """
        import fastalign.dedup as dedup
        words = [f"w{i}" for i in range(5000)]
        docs = [" ".join(words[(j * 7919 + k * 13 + (j * k) % 17) % 5000] for k in range(170_000))
                for j in range(20)]  # 20 documents of 1 MB, each 500 times
        go(lambda: dedup.dedup(docs * 500))
    """,
    "kemeny": """
        import numpy as np, fastalign.rank as rank
        P = np.random.default_rng(0).random((4500, 4500))
        go(lambda: rank.kemeny(P, exact=False))
    """,
    "bleu": """
        import fastalign.bleu as bleu
        hyps = [" ".join(f"w{(i * 31 + k * 7) % 100_003}" for k in range(40))
                for i in range(50_000)]
        refs = [[" ".join(f"w{(i * 31 + k * 11) % 100_003}" for k in range(38))]
                for i in range(50_000)]
        go(lambda: bleu.sentence_scores(hyps * 16, refs * 16, tokenize="char"))
    """,
}


def _interrupt(body: str, delay: float = 1.0, wait: float = 20.0) -> tuple[str, float]:
    """Runs ``body`` in a child, SIGINT ``delay`` s after its call starts: the child's report
    and how long after the signal it came."""
    p = subprocess.Popen(
        [sys.executable, "-c", _LONG + textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        started = p.stdout.readline().strip()
        assert started == "start", (started, p.stderr.read() if p.stderr else "")
        time.sleep(delay)
        sent = time.perf_counter()
        p.send_signal(signal.SIGINT)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(p.stdout.readline()), daemon=True)
        reader.start()
        reader.join(wait)
        latency = time.perf_counter() - sent
        assert lines, f"no report {wait} s after SIGINT: the call was not stopped"
        assert lines[0], ("the child ended without a report", p.stderr.read() if p.stderr else "")
        return lines[0].strip(), latency
    finally:
        p.kill()
        p.communicate()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
@pytest.mark.parametrize("case", sorted(LONG_CALLS))
def test_ctrl_c_stops_a_long_call(case):
    report, latency = _interrupt(LONG_CALLS[case])
    assert report.startswith("KeyboardInterrupt after "), report
    assert latency < 3.0, f"KeyboardInterrupt {latency:.2f} s after SIGINT"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_a_signal_handler_that_does_not_raise_lets_the_call_finish():
    body = """
        import signal
        import numpy as np, fastalign.rank as rank
        seen = []
        signal.signal(signal.SIGINT, lambda *a: seen.append(time.perf_counter()))
        P = np.random.default_rng(0).random((1500, 1500))
        want = rank.kemeny(P, exact=False).order
        def call():
            got = rank.kemeny(P, exact=False).order
            assert (got == want).all() and len(seen) == 1, seen
        go(call)
    """
    report, _ = _interrupt(body, delay=0.2)
    assert report.startswith("finished after "), report


def test_calls_off_the_main_thread_give_the_same_results():
    """Only the main thread polls for signals; a call elsewhere runs as before."""
    P = np.random.default_rng(1).random((60, 60))
    w, lo = [0, 0, 1, 2, 2, 3], [1, 2, 0, 0, 3, 1]
    here = (
        fastalign.rank.kemeny(P, exact=False).order.tolist(),
        fastalign.rank.bradley_terry(w, lo, prior=0.1, bootstrap_rounds=50).ci.tolist(),
    )
    out: list[object] = []
    t = threading.Thread(
        target=lambda: out.append(
            (
                fastalign.rank.kemeny(P, exact=False).order.tolist(),
                fastalign.rank.bradley_terry(w, lo, prior=0.1, bootstrap_rounds=50).ci.tolist(),
            )
        )
    )
    t.start()
    t.join()
    assert out == [here]
