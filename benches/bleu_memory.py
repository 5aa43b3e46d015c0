"""Resident memory over a long BLEU reward loop (the RL case: every completion new).

fastalign's ``bleu_reward`` for ``--calls`` calls (default one million, one new completion
per call) against sacrebleu's ``sentence_bleu`` for ``--sacrebleu-calls`` calls (default 50k:
it is ~50x slower), RSS sampled along the way. sacrebleu's tokenizers cache per call
(functools.lru_cache on bound methods of a new tokenizer each call), so its RSS grows.

Usage: ``python benches/bleu_memory.py [--calls N] [--sacrebleu-calls M]``.
"""

from __future__ import annotations

import argparse
import gc
import time

from fastalign.bench._harness import status_mb


def pair(i: int) -> tuple[str, str]:
    """A new hypothesis/reference pair for every i (so no cache can ever hit)."""
    hyp = " ".join(f"w{(i * 31 + k * 7) % 100_003}" for k in range(20))
    ref = " ".join(f"w{(i * 31 + k * 11) % 100_003}" for k in range(18))
    return hyp, ref


def loop(name: str, score, calls: int, samples: int = 10) -> list[tuple[int, float]]:
    out = []
    gc.collect()
    base = status_mb()
    t0 = time.perf_counter()
    step = max(1, calls // samples)
    for i in range(calls):
        h, r = pair(i)
        score(h, r)
        if (i + 1) % step == 0:
            out.append((i + 1, status_mb() - base))
    dt = time.perf_counter() - t0
    print(f"{name}: {calls:,} calls in {dt:.1f} s ({calls / dt:,.0f} calls/s)")
    for n, grown in out:
        print(f"  after {n:>9,} calls: RSS +{grown:7.1f} MB")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--sacrebleu-calls", type=int, default=50_000)
    args = p.parse_args()

    from fastalign.rewards import bleu_reward

    bleu_reward(completions=["warm up"], reference=["warm up"])
    loop(
        "fastalign bleu_reward",
        lambda h, r: bleu_reward(completions=[h], reference=[r]),
        args.calls,
    )
    try:
        import sacrebleu
    except ImportError:
        print("sacrebleu not installed: its row is skipped")
        return
    loop(
        "sacrebleu sentence_bleu",
        lambda h, r: sacrebleu.sentence_bleu(h, [r]),
        args.sacrebleu_calls,
    )


if __name__ == "__main__":
    main()
