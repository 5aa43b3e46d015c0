"""A few DPO steps with stock TRL, then the same with fastalign: losses, step time, peak memory.

Builds a small Llama-style model from a config (random weights, no download) with its
vocabulary padded to 32,000 rows, so the LM head costs what it costs in real training, and a
word-level tokenizer in memory. Each run happens in its own process (so its peak memory is
its own), with the same seed and data; ``fastalign.integrations.trl.enable()`` changes where
TRL's log-probs are computed and runs DPOTrainer's loss on fastalign's 3-pass fused step.

    python examples/trl_dpo_tiny.py [--steps 4] [--vocab 32000]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import resource
import tempfile
import time
import warnings


def train(use_fastalign: bool, steps: int, vocab: int, queue: mp.Queue) -> None:
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from fastalign.bench import tiny_lm

    if use_fastalign:
        import fastalign.integrations.trl

        fastalign.integrations.trl.enable()  # the one line a TRL user adds

    tok = tiny_lm.make_tokenizer()
    model = tiny_lm.make_llama(tok, vocab_size=vocab, hidden_size=256, layers=2, seed=0)
    rows = tiny_lm.preference_rows(8 * steps, seed=0, context=(48, 64), tail=(8, 24))
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = DPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=8, learning_rate=1e-4,
            logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
            max_length=512, seed=0, disable_tqdm=True, gradient_checkpointing=False,
        )  # fmt: skip
        trainer = DPOTrainer(
            model=model, ref_model=copy.deepcopy(model), args=args,
            train_dataset=Dataset.from_list(rows), processing_class=tok,
        )  # fmt: skip
        step_times: list[float] = []

        class Timer:  # a TrainerCallback without importing transformers' base class
            def __getattr__(self, name):
                return lambda *a, **k: None

            def on_step_begin(self, *a, **k):
                self.t0 = time.perf_counter()

            def on_step_end(self, *a, **k):
                step_times.append(time.perf_counter() - self.t0)

        trainer.add_callback(Timer())
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    queue.put(
        {
            "losses": losses,
            "step_s": sorted(step_times)[len(step_times) // 2],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_above_start_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                    - rss_before) / 1024,
            "torch_threads": torch.get_num_threads(),
        }
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32_000)
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    results = {}
    for name, flag in (("stock TRL", False), ("TRL + fastalign", True)):
        q = ctx.Queue()
        proc = ctx.Process(target=train, args=(flag, a.steps, a.vocab, q))
        proc.start()
        while proc.is_alive() and q.empty():  # a run that dies before reporting: no hang
            proc.join(timeout=0.5)
        if q.empty():
            raise SystemExit(f"{name} run failed (exit code {proc.exitcode})")
        results[name] = q.get()
        proc.join()
    print(f"{'run':<18} {'median step':>12} {'peak RSS':>10} {'above start':>12}  losses")
    for name, r in results.items():
        losses = " ".join(f"{x:.4f}" for x in r["losses"])
        print(
            f"{name:<18} {r['step_s'] * 1e3:>9.0f} ms {r['peak_mb']:>7.0f} MB "
            f"{r['peak_above_start_mb']:>9.0f} MB  {losses}"
        )
    stock, fast = results["stock TRL"], results["TRL + fastalign"]
    print(
        f"speed-up {stock['step_s'] / fast['step_s']:.2f}x; largest loss difference "
        f"{max(abs(x - y) for x, y in zip(stock['losses'], fast['losses'], strict=True)):.2e}"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
