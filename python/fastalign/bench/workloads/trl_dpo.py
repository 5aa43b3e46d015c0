"""The ``trl_dpo`` workload: one training step (forward + backward) of TRL's stock
``DPOTrainer`` on a small random Llama, with and without :mod:`fastalign.integrations.trl`,
each in its own process (time per step and peak memory of the step).

The batch is the trainer's own first batch (its collator, padding and prompt masking). The
model's vocabulary is padded to a realistic size (the tokenizer uses its first rows only), so
the LM head costs what it costs in real training. Error: max normwise relative error of (loss,
gradient of the LM head, gradient of the first layer's q projection) against the same step
of the stock trainer on the float64 model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

from fastalign.bench._harness import Row, have
from fastalign.bench._isolated import isolated_rows

# pairs per batch, prompt context words (min, max), answer tail words, hidden, layers, vocab
SIZES: dict[str, tuple[int, tuple[int, int], tuple[int, int], int, int, int]] = {
    "tiny": (2, (2, 4), (1, 3), 32, 1, 0),
    "quick": (4, (16, 32), (4, 12), 128, 2, 8000),
    "default": (8, (48, 64), (8, 24), 256, 2, 32000),
    "full": (8, (96, 128), (16, 48), 512, 4, 64000),
}
REPEAT = {"tiny": 1, "quick": 3, "default": 3, "full": 3}
IMPLS = [
    "TRL DPOTrainer (stock)",
    "TRL DPOTrainer + fastalign.integrations.trl",
    "TRL DPOTrainer + fastalign log-probs only (dpo_loss=False)",
]


def trainer(
    size: str, *, fastalign: bool, dtype: Any = None, out_dir: str, dpo_loss: bool = True
) -> tuple[Any, Any]:
    """A DPOTrainer over the workload's model and data, and its first batch (``dpo_loss``:
    the fused 3-pass DPO loss, or only fastalign's log-probs under TRL's loss)."""
    import datasets
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()  # the bench prints its own progress

    from fastalign.bench import tiny_lm

    pairs, context, tail, hidden, layers, vocab = SIZES[size]
    if fastalign:
        import fastalign.integrations.trl as fa_trl

        fa_trl.enable(dpo_loss=dpo_loss)
    tok = tiny_lm.make_tokenizer()
    model = tiny_lm.make_llama(
        tok, vocab_size=vocab or None, hidden_size=hidden, layers=layers, seed=0
    ).to(dtype or torch.float32)
    ds = Dataset.from_list(tiny_lm.preference_rows(pairs, 0, context=context, tail=tail))
    with warnings.catch_warnings():  # transformers 5.2x renames gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        args = DPOConfig(
            output_dir=out_dir,
            per_device_train_batch_size=pairs,
            max_length=512,
            report_to="none",
            save_strategy="no",
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            gradient_checkpointing=False,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = DPOTrainer(
            model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=ds,
            processing_class=tok,
        )  # fmt: skip
    batch = next(iter(t.get_train_dataloader()))
    return t, batch


def _step(t: Any, batch: Any) -> Callable[[], tuple[Any, ...]]:
    import torch

    model = t.model
    head = model.get_output_embeddings().weight
    q = model.model.layers[0].self_attn.q_proj.weight

    def step() -> tuple[Any, ...]:
        model.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = t.compute_loss(model, t._prepare_inputs(dict(batch)))
            loss.backward()
        return (loss.detach().reshape(1), head.grad.clone(), q.grad.clone())

    torch.manual_seed(0)
    return step


def run_impl(op: str, impl: str, size: str, measure: Callable[..., dict[str, Any]]):
    import tempfile

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        t, batch = trainer(size, fastalign=impl != IMPLS[0], out_dir=tmp, dpo_loss=impl != IMPLS[2])
        return measure(_step(t, batch), REPEAT[size], device)


def _reference(size: str) -> tuple[Any, ...]:
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        t, batch = trainer(size, fastalign=False, dtype=torch.float64, out_dir=tmp)
        return _step(t, batch)()


def run(size: str, progress: Callable[[str], None] | None = None) -> list[Row]:
    if not (have("trl") and have("transformers") and have("datasets")):
        return [Row("trl_dpo", "DPOTrainer step", IMPLS[1], None, error="needs trl, datasets")]
    import torch

    pairs, context, _tail, hidden, layers, vocab = SIZES[size]
    v = f"V={vocab:,}" if vocab else "V=tokenizer"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    wl = (
        f"DPOTrainer step, {pairs} pairs, prompts of {context[0]}-{context[1]}+ words, "
        f"H={hidden} x {layers} layers, {v}, fp32 {device}"
    )
    out = isolated_rows(
        "trl_dpo",
        wl,
        IMPLS,
        size,
        baseline=IMPLS[0],
        reference=lambda: _reference(size),
        tol=1e-4,
        progress=progress,
    )
    for r in out:
        if r.impl == IMPLS[0] and device == "cpu":
            r.note = "TRL's CPU path scores every position (prompt and padding too)"
        elif r.impl == IMPLS[1]:
            r.note = "the loss's gradient formed in the forward: 3 head passes"
        elif r.impl == IMPLS[2]:
            r.note = "TRL's loss on fastalign's log-probs: 4 head passes"
    return out
