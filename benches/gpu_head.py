"""The prepared device run for the GPU head (issue: the GPU head at the matmul floor), one
command, under 8 minutes on an H100/H200; each phase writes its results as it ends, so a run
stopped at its limit still leaves what it finished.

Phases (``--phases``, in this order):

- ``smoke``: seconds of in-process checks against float64 (benches/gpu_logprobs.py's).
- ``kernels``: CUDA-event times of every piece of the tiling driver at the table's sizes (the
  logits GEMM of one [R x H] x [H x Vs] tile with fp32 output, the fold row kernel, the
  gradient row kernel, the dX and dW GEMMs of a tile), scaled to the whole op, beside the
  driver's measured forward and forward+backward, and the first fused Triton kernel's
  forward / backward: the diagnosis of design/gpu_head.md confirmed or not.
- ``tables``: token_logps fwd+bwd and the fused DPO step with every peer in the same run
  (fastalign.bench's logprob / dpo rows: each row in its own process, median of >= 10 runs,
  peak, max error vs float64, MFU).
- ``trl``: end to end, stock TRL ``DPOTrainer`` vs TRL + ``fastalign.integrations.trl`` (and,
  for the first model, fastalign's log-probs under TRL's own loss: ``dpo_loss=False``) on
  random-init models built from configs (a Qwen2.5-0.5B-like model, H=896, V=151936, tied;
  a Llama-3.2-1B-like model, H=2048, V=128256, tied), bf16, 8 pairs per step, prompts ~256
  and completions 256-512 tokens, each arm in its own process, warm-up then timed steps,
  arms alternated: median step time, tokens/s, peak memory, loss and grad-norm differences.
- ``tests``: ``pytest tests/gpu`` (real sizes, bf16/fp16/fp32), its log saved.

Results: ``gpu_head_<card>.md`` and ``.json`` in ``$OUT`` (or ``--out``); the JSON has
``rows``: ``{"op", "impl", "median_ms", "peak_mb", "max_err"}`` with ``op`` in
``token_logps``, ``fused_dpo``, ``trl_dpo_step:<model>`` and ``impl`` in ``floor``, ``naive``,
``trl``, ``liger``, ``torch_lce``, ``fastalign``, ``stock``; other rows (fastalign's torch
path, the first Triton kernel) under ``other_rows``.

Usage: ``python benches/gpu_head.py [--size tiny|quick|default] [--phases ...]``. ``--size
tiny`` with ``TRITON_INTERPRET=1`` runs every phase on CPU in a minute or two (a test does).
Nothing is downloaded: models come from configs, data from fastalign.bench.tiny_lm; carry
the wheels the device image lacks (trl, datasets, ...) and install them first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))

import gpu_logprobs  # noqa: E402  (the smoke checks, the tables, card and versions)

IMPL_KEYS = {
    "floor": "floor",
    "naive torch": "naive",
    "TRL": "trl",
    "Liger": "liger",
    "torch linear_cross_entropy": "torch_lce",
    "fastalign triton": "fastalign",
    "fastalign FusedLinearPreferenceLoss": "fastalign",
}

# e2e models: (hidden, layers, heads, kv heads, intermediate, vocab, family)
MODELS = {
    "qwen2.5-0.5b-like": (896, 24, 14, 2, 4864, 151936, "qwen2"),
    "llama-3.2-1b-like": (2048, 16, 32, 8, 8192, 128256, "llama"),
    "tiny": (32, 1, 4, 2, 64, 512, "llama"),
}
# per size: models, pairs per step, prompt words, completion words, warm-up, timed, rounds
E2E = {
    "tiny": (["tiny"], 2, (6, 8), (4, 8), 1, 2, 1),
    "quick": (["qwen2.5-0.5b-like"], 8, (250, 260), (256, 512), 2, 5, 1),
    "default": (["qwen2.5-0.5b-like", "llama-3.2-1b-like"], 8, (250, 260), (256, 512), 3, 10, 1),
}


def _impl_key(impl: str) -> str | None:
    for prefix, key in IMPL_KEYS.items():
        if impl.startswith(prefix):
            return key
    return None


class Timer:
    """Median milliseconds of ``fn`` over ``reps`` calls (CUDA events on a GPU)."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self, fn, reps: int = 10) -> float:
        import torch

        fn()  # warm-up (and autotune / compile)
        times = []
        for _ in range(reps):
            if self.device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


def kernels(size: str) -> list[dict]:
    """Per-piece times of the driver and of the first fused kernel (see the module doc)."""
    import torch

    from fastalign.logprobs import _rows_triton as rows
    from fastalign.logprobs import _tiling
    from fastalign.logprobs._fused_gemm import fused_logps
    from fastalign.logprobs._tiling import RowState, Transform, label_grad, plan

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    n, h, v = {"tiny": (64, 32, 300), "quick": (4096, 4096, 128256)}.get(
        size, (16384, 4096, 128256)
    )
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(n, h, device=dev, generator=g).to(dtype)
    w = (torch.randn(v, h, device=dev, generator=g) * (2 / h**0.5)).to(dtype)
    y = torch.randint(0, v, (n,), device=dev, generator=g)
    up = torch.randn(n, device=dev, generator=g)
    tiles = plan(n, v, torch.device(dev)) if size != "tiny" else _tiling.Tiles(16, 128)
    r, vs = tiles.rows, tiles.vocab
    n_tiles = -(-n // r) * -(-v // vs)
    timer = Timer(dev)
    out: list[dict] = []

    def row(piece: str, ms: float, per_op: int, note: str = "") -> None:
        out.append(
            {"piece": piece, "ms": ms, "count": per_op, "total_ms": ms * per_op, "note": note}
        )
        print(
            f"  {piece:<44} {ms:9.3f} ms x {per_op:<4} = {ms * per_op:9.2f} ms {note}", flush=True
        )

    xr, ws = x[:r], w[:vs]
    z = torch.empty(r, vs, device=dev, dtype=torch.float32)
    flops = 2 * r * vs * h
    ms = timer(lambda: _tiling.logits_tile(xr, ws, z))
    row("GEMM logits tile (fp32 out)", ms, n_tiles, f"{flops / ms / 1e9:.0f} TF/s")
    st = RowState.empty(r, torch.float32, x.device, entropy=True, stats=True)
    ms = timer(lambda: rows.fold(z, None, y[:r], 0, Transform(), st, first=True))
    row("row kernel fold (entropy + stats)", ms, n_tiles, f"{r * vs * 4 / ms / 1e6:.0f} GB/s")
    st = RowState.empty(r, torch.float32, x.device, entropy=False, stats=False)
    ms = timer(lambda: rows.fold(z, None, y[:r], 0, Transform(), st, first=True))
    row("row kernel fold (log-probs only)", ms, n_tiles, f"{r * vs * 4 / ms / 1e6:.0f} GB/s")
    gbuf = torch.empty(r, vs, device=dev, dtype=dtype)
    m, ls = torch.zeros(r, device=dev), torch.full((r,), float(torch.log(torch.tensor(v))))
    ls = ls.to(dev)
    lab = label_grad(torch.full((r,), -5.0, device=dev), up[:r])
    ms = timer(
        lambda: rows.grad(z, None, y[:r], 0, Transform(), m, ls, None, up[:r], None, lab, gbuf)
    )
    row(
        "row kernel grad (G in the weight dtype)",
        ms,
        n_tiles,
        f"{r * vs * (4 + gbuf.element_size()) / ms / 1e6:.0f} GB/s",
    )
    acc = torch.zeros(r, h, device=dev, dtype=torch.float32)
    ms = timer(lambda: _tiling.mm_acc(acc, gbuf, ws, first=False))
    row("GEMM dX += G W_s (fp32 accumulator)", ms, n_tiles, f"{flops / ms / 1e9:.0f} TF/s")
    dws = torch.zeros(vs, h, device=dev, dtype=dtype)
    ms = timer(lambda: dws.addmm_(gbuf.t(), xr))
    row("GEMM dW_s += G^T X_r (weight dtype)", ms, n_tiles, f"{flops / ms / 1e9:.0f} TF/s")

    import fastalign

    def fwd():
        with torch.no_grad():
            fastalign.token_logps(x, w, y, backend="triton")

    def fwd_bwd(fn):
        def step():
            hh, ww = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
            lp = fn(hh, ww)
            torch.autograd.grad(lp, [hh, ww], up)

        return step

    kw = {} if size != "tiny" else {"chunk_rows": r, "chunk_vocab": vs}
    row("driver forward (measured)", timer(fwd, 5), 1)
    drv = fwd_bwd(lambda hh, ww: fastalign.token_logps(hh, ww, y, backend="triton", **kw))
    row("driver forward + backward (measured)", timer(drv, 5), 1)
    first = fwd_bwd(lambda hh, ww: fused_logps(hh, ww, None, y, Transform(), False)[0])
    with torch.no_grad():
        row(
            "first kernel forward (measured)",
            timer(lambda: fused_logps(x, w, None, y, Transform(), False), 5),
            1,
        )
    row("first kernel forward + backward (measured)", timer(first, 5), 1)
    gfull = torch.randn(n, v, device=dev, generator=g).to(dtype)

    def floor():
        torch.mm(x, w.t())
        torch.mm(x, w.t())
        torch.mm(gfull, w)
        torch.mm(gfull.t(), x)

    row(
        "floor: 4 x torch.mm of the whole op",
        timer(floor, 5),
        1,
        f"{8 * n * h * v / 1e12:.2f} TFLOP",
    )
    return out


# ---- end to end: one arm per process --------------------------------------------------------


def arm(size: str, model_name: str, which: str, out_file: str) -> None:
    """One arm (``stock`` or ``fastalign``) of the e2e comparison, in this process."""
    import copy
    import warnings

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from fastalign.bench import tiny_lm

    _, pairs, prompt, completion, warm, timed, _ = E2E[size]
    hidden, layers, heads, kv, inter, vocab, family = MODELS[model_name]
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    if which in ("fastalign", "logprobs"):
        import fastalign.integrations.trl as fa_trl

        fa_trl.enable(dpo_loss=which == "fastalign")  # "logprobs": TRL's loss, 4 passes
    tok = tiny_lm.make_tokenizer()
    import transformers

    config_cls, model_cls = {
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    }[family]
    cfg = config_cls(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):  # random init on the device: seconds, not minutes
        model = model_cls(cfg).to(dtype)
    steps = warm + timed
    rows = tiny_lm.preference_rows(pairs * steps, 0, context=prompt, tail=completion)
    times: list[float] = []
    peaks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
                if state.global_step == warm:
                    torch.cuda.reset_peak_memory_stats()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
                peaks.append(torch.cuda.max_memory_allocated() / 2**20)
            times.append(time.perf_counter() - self.t0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = DPOConfig(
            output_dir=str(Path(out_file).parent / f"trainer_{which}"),
            max_steps=steps,
            per_device_train_batch_size=pairs,
            max_length=2048,
            report_to="none",
            save_strategy="no",
            use_cpu=not cuda,
            bf16=cuda,
            logging_steps=1,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
            learning_rate=1e-6,
        )
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            callbacks=[Clock()],
        )
        batch = next(iter(trainer.get_train_dataloader()))
        tokens = sum(
            int(v.ne(tok.pad_token_id).sum())
            for k, v in batch.items()
            if k.endswith("input_ids") and torch.is_tensor(v)
        )
        trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    result = {
        "which": which,
        "model": model_name,
        "step_s": times[warm:],
        "peak_mb": max(peaks[warm:]) if peaks else None,
        "tokens_per_step": tokens,
        "loss": [e["loss"] for e in logs],
        "grad_norm": [e.get("grad_norm") for e in logs],
    }
    Path(out_file).write_text(json.dumps(result))


def e2e(size: str, out: Path) -> list[dict]:
    """Both arms per model, each in its own process, alternated over rounds."""
    models, *_, rounds = E2E[size]
    results: list[dict] = []
    for i, model_name in enumerate(models):
        # the first model also runs fastalign's log-probs under TRL's own loss (4 passes)
        arms = ("stock", "fastalign", "logprobs") if i == 0 else ("stock", "fastalign")
        runs: dict[str, list[dict]] = {w: [] for w in arms}
        for k in range(rounds):
            for which in arms if k % 2 == 0 else arms[::-1]:
                f = out / f"e2e_{model_name}_{which}_{k}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--arm",
                    which,
                    "--model",
                    model_name,
                    "--size",
                    size,
                    "--arm-out",
                    str(f),
                ]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    print(f"  {model_name} {which}: FAILED\n{proc.stderr[-3000:]}", flush=True)
                    runs[which].append({"error": proc.stderr[-1500:]})
                    continue
                r = json.loads(f.read_text())
                r["wall_s"] = wall
                runs[which].append(r)
                med = statistics.median(r["step_s"]) * 1e3
                print(
                    f"  {model_name} {which} round {k}: median step {med:.1f} ms, peak "
                    f"{r['peak_mb']} MB, {r['tokens_per_step']} tokens",
                    flush=True,
                )
        ok = {w: [r for r in rs if "error" not in r] for w, rs in runs.items()}
        summary = {"model": model_name, "runs": runs}
        if ok["stock"] and ok["fastalign"]:
            s, f = ok["stock"][0], ok["fastalign"][0]
            summary["loss_max_abs_diff"] = max(
                abs(a - b) for a, b in zip(s["loss"], f["loss"], strict=False)
            )
            gn = [
                (a, b)
                for a, b in zip(s["grad_norm"], f["grad_norm"], strict=False)
                if a is not None and b is not None
            ]
            if gn:
                summary["grad_norm_max_rel_diff"] = max(
                    abs(a - b) / max(abs(a), 1e-12) for a, b in gn
                )
            for w in arms:
                if not ok[w]:
                    continue
                steps = [t for r in ok[w] for t in r["step_s"]]
                summary[w] = {
                    "median_ms": statistics.median(steps) * 1e3,
                    "tokens_per_s": ok[w][0]["tokens_per_step"] / statistics.median(steps),
                    "peak_mb": max((r["peak_mb"] or 0) for r in ok[w]) or None,
                }
        results.append(summary)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="default", choices=["tiny", "quick", "default"])
    p.add_argument("--out", default=str(ROOT / "benches" / "results"))
    p.add_argument("--phases", default="smoke,kernels,tables,trl,tests")
    p.add_argument("--arm", choices=["stock", "fastalign", "logprobs"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--arm-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.arm:
        arm(args.size, args.model, args.arm, args.arm_out)
        return 0
    phases = args.phases.split(",")
    name, peak = gpu_logprobs.card()
    out = Path(os.environ.get("OUT") or args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    md_path, json_path = out / f"gpu_head_{slug}.md", out / f"gpu_head_{slug}.json"
    versions = gpu_logprobs._versions()
    print(versions, flush=True)
    report: dict = {
        "card": name,
        "size": args.size,
        "versions": versions,
        "rows": [],
        "other_rows": [],
    }
    failed = False
    md = f"# the GPU head on {name}\n\n{versions}; size {args.size}\n"

    def write() -> None:
        md_path.write_text(md)
        json_path.write_text(json.dumps(report, indent=2, default=str))

    for phase in phases:
        t0 = time.perf_counter()
        print(f"== {phase}", flush=True)
        try:
            if phase == "smoke":
                lines = gpu_logprobs.smoke(args.size)
                report["smoke"] = lines
                failed |= any(line.startswith("FAIL") for line in lines)
                md += "\n## smoke (vs float64)\n\n```\n" + "\n".join(lines) + "\n```\n"
            elif phase == "kernels":
                pieces = kernels(args.size)
                report["kernels"] = pieces
                md += "\n## a. kernel pieces (median ms; total = per call x calls per op)\n\n"
                md += "| piece | ms | calls | total ms | note |\n|---|---|---|---|---|\n"
                md += "".join(
                    f"| {k['piece']} | {k['ms']:.3f} | {k['count']} | "
                    f"{k['total_ms']:.2f} | {k['note']} |\n"
                    for k in pieces
                )
            elif phase == "tables":
                sub: dict = {}
                md, bad = gpu_logprobs._tables(
                    args.size, peak, md, sub, lambda _: None, {"token_logps", "fused_dpo"}
                )
                failed |= bad
                for op in ("token_logps", "fused_dpo"):
                    for r in sub.get(op, []):
                        key = _impl_key(r["impl"])
                        item = {
                            "op": op,
                            "impl": key or r["impl"],
                            "median_ms": None if r["median_s"] is None else r["median_s"] * 1e3,
                            "peak_mb": r["peak_mb"],
                            "max_err": r["max_err"],
                        }
                        report["rows" if key else "other_rows"].append(item)
            elif phase == "trl":
                res = e2e(args.size, out)
                report["trl"] = res
                md += "\n## c. end to end: TRL DPOTrainer step, stock vs + fastalign\n\n"
                md += (
                    "| model | arm | median step ms | tokens/s | peak MB |\n|---|---|---|---|---|\n"
                )
                for s in res:
                    for w in ("stock", "fastalign", "logprobs"):
                        if w in s:
                            a = s[w]
                            md += (
                                f"| {s['model']} | {w} | {a['median_ms']:.1f} | "
                                f"{a['tokens_per_s']:.0f} | {a['peak_mb']} |\n"
                            )
                            kind = "other_rows" if w == "logprobs" else "rows"
                            report[kind].append(
                                {
                                    "op": f"trl_dpo_step:{s['model']}",
                                    "impl": {"logprobs": "fastalign log-probs only"}.get(w, w),
                                    "median_ms": a["median_ms"],
                                    "peak_mb": a["peak_mb"],
                                    "max_err": s.get("loss_max_abs_diff") if w != "stock" else None,
                                }
                            )
                    if "loss_max_abs_diff" in s:
                        md += (
                            f"\n{s['model']}: max |loss difference| "
                            f"{s['loss_max_abs_diff']:.3g}, grad-norm rel. difference "
                            f"{s.get('grad_norm_max_rel_diff', float('nan')):.3g}\n"
                        )
                    else:
                        failed = True
            elif phase == "tests":
                cmd = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-W",
                    "default",
                    str(ROOT / "tests" / "gpu"),
                    "-m",
                    "gpu",
                    "-p",
                    "no:cacheprovider",
                    "-rfE",
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                (out / "pytest_gpu.log").write_text(proc.stdout + proc.stderr)
                tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
                report["tests_rc"] = proc.returncode
                md += f"\n## d. pytest tests/gpu\n\nexit code {proc.returncode}: {tail}\n"
                failed |= proc.returncode not in (0, 5)
            else:
                raise ValueError(f"unknown phase {phase!r}")
        except Exception as e:  # report and go on: later phases still run
            failed = True
            md += f"\n## {phase}: FAILED\n\n```\n{type(e).__name__}: {e}\n```\n"
            print(f"  {phase} FAILED: {type(e).__name__}: {e}", flush=True)
        md += f"\n({phase}: {time.perf_counter() - t0:.0f} s)\n"
        write()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
