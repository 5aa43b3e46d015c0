"""fastalign.integrations.trl end to end: stock TRL trainers (DPO, KTO, GRPO) for 3 steps on a
tiny random Llama, with and without fastalign: the same per-step losses, the same weight
updates, the same logged metrics, and no ``[tokens, vocab]`` logits in the fastalign run."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip("trl")
pytest.importorskip("datasets")

import fastalign.integrations.trl as fa_trl
from fastalign.bench import tiny_lm

CHUNK = 4  # fastalign's chunk of tokens: the largest [rows, V] block it may form


class VocabWatch(TorchDispatchMode):
    """Records the most rows of any new tensor (not a view) an op produces whose last
    dimension is the vocabulary (the logits, or a chunk of them), and the most rows of a
    logits tile of fastalign's driver (inside its custom op, which a dispatch mode sees as
    one op)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __enter__(self):
        from fastalign.logprobs import _tiling

        self._tile = real = _tiling.tile

        def tile(buf, rows, cols):
            if cols == self.vocab:
                self.rows = max(self.rows, rows)
            return real(buf, rows, cols)

        _tiling.tile = tile
        return super().__enter__()

    def __exit__(self, *exc):
        from fastalign.logprobs import _tiling

        _tiling.tile = self._tile
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view:  # e.g. weight.t(): no new memory
            return out
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.ndim >= 2 and t.shape[-1] == self.vocab:
                self.rows = max(self.rows, math.prod(t.shape[:-1]))
        return out


def _common(tmp_path, **kw):
    return {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1.0,  # SGD: large enough for updates well above fp32 rounding
        "optim": "sgd",
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "seed": 0,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        **kw,
    }


def _trainer(kind, tmp_path, *, tie=False, loss_type=None, lora=False, dpo=None):
    from datasets import Dataset

    tok = tiny_lm.make_tokenizer()
    model = tiny_lm.make_llama(tok, tie_word_embeddings=tie)

    def with_ref():  # the model, a frozen copy as the reference, the tokenizer
        return {"model": model, "ref_model": copy.deepcopy(model), "processing_class": tok}

    if kind == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**{**_common(tmp_path, max_length=32), "loss_type":
                            loss_type or ["sigmoid"], **(dpo or {})})  # fmt: skip
        ds = Dataset.from_list(tiny_lm.preference_rows(12))
        if lora:  # LoRA on the backbone; the reference is the model with adapters disabled
            from peft import LoraConfig

            peft = LoraConfig(
                r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
            )  # random B too: both factors move from the first step
            trainer = DPOTrainer(
                model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft,
            )  # fmt: skip
        else:
            trainer = DPOTrainer(args=args, train_dataset=ds, **with_ref())
    elif kind == "kto":
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(**_common(tmp_path, max_length=32))
        ds = Dataset.from_list(tiny_lm.unpaired_rows(12))
        trainer = KTOTrainer(args=args, train_dataset=ds, **with_ref())
    elif kind == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**_common(tmp_path, max_length=32))
        rows = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in
                tiny_lm.preference_rows(12)]  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok
        )
    elif kind == "distill":
        from trl import DistillationConfig, DistillationTrainer

        # on-policy: the student generates, the teacher (a wider tiny Llama with its own
        # head) scores through TRL's chunked two-head divergence
        path = tmp_path / "tiny"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        teacher = tiny_lm.make_llama(tok, hidden_size=48, seed=1)
        with torch.no_grad():  # a peaked teacher: a divergence (and updates) well above 0
            teacher.lm_head.weight.mul_(30.0)
        args = DistillationConfig(
            **_common(tmp_path, per_device_train_batch_size=2),
            max_completion_length=6, beta=0.5, temperature=0.9,
        )  # fmt: skip
        trainer = DistillationTrainer(
            model=str(path), teacher_model=teacher, args=args,
            train_dataset=Dataset.from_list(tiny_lm.prompt_rows(8)), processing_class=tok,
        )  # fmt: skip
    else:
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

        # GRPO / RLOO reload their reference from the model's path: it lives on disk
        path = tmp_path / "tiny"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        config, trainer_cls = (GRPOConfig, GRPOTrainer) if kind == "grpo" else (
            RLOOConfig, RLOOTrainer)  # fmt: skip
        args = config(
            **_common(tmp_path, per_device_train_batch_size=2),
            num_generations=2, max_completion_length=6, beta=0.04, temperature=0.9,
        )  # fmt: skip
        ds = Dataset.from_list(tiny_lm.prompt_rows(8))
        trainer = trainer_cls(
            model=str(path), reward_funcs=tiny_lm.distinct_words_reward, args=args,
            train_dataset=ds, processing_class=tok,
        )  # fmt: skip
    return trainer, len(tok)


def _run(kind, tmp_path, *, fastalign, budget=1, **kw):
    """Per-step losses (full precision), parameters before and after, logged metrics, and
    the most rows of a [*, V] tensor formed inside the loss computation and its backward
    (generation, which needs logits of the last position, is outside). ``budget``: the
    fused DPO loss's kept tiles (1 byte: none kept, so that no [tokens, V] buffer forms)."""
    if fastalign:
        fa_trl.enable(chunk_rows=CHUNK, memory_budget=budget)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer, _ = _trainer(kind, tmp_path / ("fa" if fastalign else "trl"), **kw)
            before = {
                k: v.detach().clone()
                for k, v in trainer.model.named_parameters()
                if v.requires_grad
            }
            losses = []
            watch = VocabWatch(trainer.model.config.vocab_size)
            real = trainer.compute_loss

            def compute_loss(*a, **k):
                with watch:
                    out = real(*a, **k)
                losses.append(float((out[0] if isinstance(out, tuple) else out).detach()))
                return out

            trainer.compute_loss = compute_loss
            real_backward = trainer.accelerator.backward

            def backward(*a, **k):  # the backward pass is watched too
                with watch:
                    return real_backward(*a, **k)

            trainer.accelerator.backward = backward
            trainer.train()
    finally:
        fa_trl.disable()
    after = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if k in before}
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return losses, before, after, logs, watch.rows


def _assert_same_training(a, b, *, loss_rtol=1e-5, update_rtol=1e-4):
    losses_a, before_a, after_a, logs_a, _ = a
    losses_b, before_b, after_b, logs_b, _ = b
    assert len(losses_a) == len(losses_b) >= 3
    for x, y in zip(losses_a, losses_b, strict=True):
        assert abs(x - y) <= loss_rtol * max(abs(x), 1e-3), (losses_a, losses_b)
    for name, w0 in before_a.items():
        torch.testing.assert_close(before_b[name], w0, rtol=0, atol=0)  # same start
        da, db = after_a[name] - w0, after_b[name] - w0
        scale = max(float(da.abs().max()), 1e-12)
        # the weights agree within 1e-5 relative, and so do the updates (to 1e-4 of the
        # largest, plus the float32 rounding of storing the weights three times)
        torch.testing.assert_close(after_b[name], after_a[name], rtol=1e-5, atol=1e-7)
        rounding = 3 * torch.finfo(torch.float32).eps * after_a[name].abs()
        assert bool(((da - db).abs() <= update_rtol * scale + rounding).all()), name
        assert scale > 1e-5, f"{name} barely moved: the comparison would say nothing"
    for la, lb in zip(logs_a, logs_b, strict=True):
        for key in la.keys() & lb.keys():
            timing = "time" in key or "per_second" in key
            if isinstance(la[key], float) and not timing and key not in ("learning_rate", "epoch"):
                assert lb[key] == pytest.approx(la[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("dpo", {}),
        ("dpo", {"tie": True, "loss_type": ["sigmoid", "sft"]}),
        ("dpo", {"lora": True}),
        ("kto", {}),
        ("grpo", {}),
        ("rloo", {}),
        ("sft", {}),
        ("distill", {}),
    ],
    ids=["dpo", "dpo-tied-sigmoid+sft", "dpo-lora", "kto", "grpo", "rloo", "sft", "distill"],
)
def test_stock_trainer_with_fastalign_trains_identically(tmp_path, kind, kw):
    stock = _run(kind, tmp_path, fastalign=False, **kw)
    fast = _run(kind, tmp_path, fastalign=True, **kw)
    _assert_same_training(stock, fast)
    # TRL's own CPU path scores every position in one [tokens, V] tile; fastalign only
    # forms chunks of CHUNK rows
    assert stock[4] > CHUNK
    assert 0 < fast[4] <= CHUNK


@pytest.fixture
def fused_runs(monkeypatch):
    """Counts the fused DPO step's forward calls."""
    from fastalign.losses import fused_linear

    runs = []
    real = fused_linear._PairwiseFused.forward

    def counted(*a, **k):
        runs.append(1)
        return real(*a, **k)

    monkeypatch.setattr(fused_linear._PairwiseFused, "forward", staticmethod(counted))
    return runs


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"loss_type": ["ipo"]},
        {"loss_type": ["robust"], "label_smoothing": 0.2},
        {"loss_type": ["sigmoid", "hinge", "bco_pair"], "loss_weights": [0.6, 0.3, 0.1]},
        {"f_divergence_type": "js_divergence"},
        {"f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3},
        # (at tau 0.1, beta 2 the 3-step updates differ by 3e-5 relative: stock TRL's own
        # fp32 statistics; fastalign's losses there are within 1e-8 of a float64 run's)
        {"loss_type": ["discopop"], "discopop_tau": 0.5},
        {"ld_alpha": 0.4},
        {"use_weighting": True},
        {"precompute_ref_log_probs": True, "ld_alpha": 0.4},
    ],
    ids=[
        "sigmoid",
        "ipo",
        "robust",
        "weights",
        "js",
        "alpha",
        "discopop",
        "ld-dpo",
        "wpo",
        "precomputed-ref",
    ],
)
def test_dpo_loss_on_the_fused_path_trains_like_stock(tmp_path, fused_runs, cfg):
    """Stock DPOTrainer with enable(): the loss runs on the 3-pass fused step (every tile
    kept), and losses, weight updates and every logged metric equal stock TRL's over 3 steps,
    for the loss types and options of TRL 1.16's DPOTrainer."""
    runs = fused_runs
    dpo = {k: v for k, v in cfg.items() if k != "loss_type"}
    kw = {"loss_type": cfg.get("loss_type"), "dpo": dpo}
    stock = _run("dpo", tmp_path, fastalign=False, **kw)
    assert not runs
    fast = _run("dpo", tmp_path, fastalign=True, budget=None, **kw)
    assert len(runs) >= 3  # the fused step ran every step, no fallback
    _assert_same_training(stock, fast)


def test_dpo_loss_on_the_fused_path_under_bf16_autocast(tmp_path, fused_runs):
    """bf16 autocast on CPU (fp32 master weights): the fused step runs in bf16 with bf16
    kept tiles, and the per-step losses stay within bf16 noise of stock TRL's."""
    kw = {"dpo": {"bf16": True}}
    stock = _run("dpo", tmp_path, fastalign=False, **kw)
    fast = _run("dpo", tmp_path, fastalign=True, budget=None, **kw)
    assert len(fused_runs) >= 3
    for a, b in zip(stock[0], fast[0], strict=True):
        assert abs(a - b) <= 2e-2 * abs(a), (stock[0], fast[0])
    for name, w0 in stock[1].items():
        da, db = stock[2][name] - w0, fast[2][name] - w0
        cos = torch.nn.functional.cosine_similarity(da.flatten(), db.flatten(), dim=0)
        assert cos > 0.99, (name, float(cos))


def test_dpo_loss_falls_back_for_batch_coupled_losses(tmp_path, caplog):
    """sigmoid + sft (a batch-coupled loss) runs TRL's own loss on fastalign's log-probs,
    said once."""
    import logging

    from fastalign.integrations import _trl_dpo

    _trl_dpo._said.clear()
    with caplog.at_level(logging.WARNING, logger="fastalign.integrations.trl"):
        _run("dpo", tmp_path, fastalign=True, loss_type=["sigmoid", "sft"])
    said = [r for r in caplog.records if "couples the batch" in r.getMessage()]
    assert len(said) == 1


def _truth(h, w, b, y, temp=1.0, cap=None, scale=1.0):
    """Float64 definitions of TRL's five outputs, from materialized logits."""
    z = (h @ w.T + (0 if b is None else b)) * scale
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    z = z / temp
    logp_all = torch.log_softmax(z, -1)
    p = logp_all.exp()
    return (
        logp_all.gather(1, y[:, None]).squeeze(1),
        -(p * logp_all).sum(-1),
        torch.logsumexp(2 * logp_all, -1),
        z.mean(-1),
        z.argmax(-1) == y,
    )


OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def test_outputs_match_the_definitions_and_trls_function():
    """Every output TRL asks for, under the transforms TRL passes (temperature, logit scale,
    softcapping, bias): float64-exact against the definitions (TRL's own function, which
    works in float32, agrees to float32 precision)."""
    from trl.trainer import utils

    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 16, generator=g, dtype=torch.float64)
    w = torch.randn(50, 16, generator=g, dtype=torch.float64)
    w[7] = w[3]  # an exact tie at the top: is_top1 follows argmax (the first maximum)
    b = torch.randn(50, generator=g, dtype=torch.float64)
    b[7] = b[3]
    y = torch.randint(0, 50, (37,), generator=g)
    y[:3], y[3:6] = 3, 7
    for kw in ({}, {"temp": 0.7, "cap": 4.0, "scale": 1.3}):
        args = (kw.get("temp", 1.0), 32768, kw.get("cap"), kw.get("scale", 1.0), OUTPUTS)
        truth = _truth(h, w, b, y, *(args[0], args[2], args[3]))
        ours = fa_trl.FastalignLogProbFunction.apply(h, w, b, y, *args)
        trls = utils._ChunkedLogProbFunction.apply(h, w, b, y, *args)
        for name, want, got, theirs in zip(OUTPUTS, truth, ours, trls, strict=True):
            if name == "is_top1":
                assert torch.equal(got, want)
                assert torch.equal(theirs, want)
            else:
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)
                torch.testing.assert_close(theirs.double(), want, rtol=1e-5, atol=1e-5)


def test_gradients_match_the_definitions():
    g = torch.Generator().manual_seed(1)
    h0 = torch.randn(20, 8, generator=g, dtype=torch.float64)
    w0 = torch.randn(30, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 30, (20,), generator=g)
    c = torch.randn(20, generator=g, dtype=torch.float64)
    grads = []
    for use_truth in (True, False):
        h, w = h0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
        if use_truth:
            lp, ent, *_ = _truth(h, w, None, y, temp=0.8, cap=3.0)
        else:
            lp, ent, *_ = fa_trl.FastalignLogProbFunction.apply(
                h, w, None, y, 0.8, 32768, 3.0, 1.0, ("log_probs", "entropy")
            )
        ((lp * c).sum() + (ent * c.flip(0)).sum()).backward()
        grads.append((h.grad, w.grad))
    for want, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_autocast_runs_the_head_in_the_autocast_dtype():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 32, generator=g)
    w = torch.randn(100, 32, generator=g)
    y = torch.randint(0, 100, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp, *_ = fa_trl.FastalignLogProbFunction.apply(h, w, None, y, 1.0, 32768)
    assert lp.dtype == torch.float32

    def logp(z):
        return torch.log_softmax(z.float(), -1).gather(1, y[:, None]).squeeze(1)

    # bf16 operands, as autocast runs them; the product is not rounded to bf16 (fp32-output
    # GEMMs on CUDA, upcast operands on CPU): a bf16 head with exact logits
    bf16 = logp(h.bfloat16().float() @ w.bfloat16().float().T)
    fp32 = logp(h @ w.T)
    torch.testing.assert_close(lp, bf16, rtol=0, atol=1e-5)
    assert float((lp - fp32).abs().max()) > 1e-2  # the check tells the two dtypes apart


def test_autocast_with_fp32_master_weights_accumulates_dw_in_fp32():
    """Under autocast the fp32 weight is rounded per vocabulary slice, never copied whole,
    and its gradient is accumulated in fp32: dW within fp32 rounding of the float64 gradient
    of the bf16-rounded head (a bf16 dW would be ~2^-9 off)."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(64, 32, generator=g, requires_grad=True)
    w = torch.randn(100, 32, generator=g, requires_grad=True)
    y = torch.randint(0, 100, (64,), generator=g)
    c = torch.randn(64, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp, *_ = fa_trl.FastalignLogProbFunction.apply(h, w, None, y, 1.0, 32768)
    (lp * c).sum().backward()
    assert w.grad.dtype == torch.float32
    h64 = h.detach().bfloat16().double().requires_grad_(True)
    w64 = w.detach().bfloat16().double().requires_grad_(True)
    want = torch.log_softmax(h64 @ w64.T, -1).gather(1, y[:, None]).squeeze(1)
    (want * c.double()).sum().backward()
    err = float((w.grad.double() - w64.grad).abs().max() / w64.grad.abs().max())
    assert err < 1e-5, err


def test_no_labelled_position():
    """A micro-batch with nothing to score: empty outputs that still backpropagate."""
    h = torch.randn(0, 8, requires_grad=True)
    w = torch.randn(12, 8, requires_grad=True)
    lp, ent, lss, mean, top1 = fa_trl.FastalignLogProbFunction.apply(
        h, w, None, torch.zeros(0, dtype=torch.long), 1.0, 32768, None, 1.0, OUTPUTS
    )
    assert lp.shape == ent.shape == lss.shape == mean.shape == top1.shape == (0,)
    (lp.sum() + ent.sum()).backward()
    assert h.grad.shape == (0, 8)
    assert w.grad is not None
    assert not w.grad.any()


def test_enable_disable_and_context():
    from trl.trainer import utils

    original = utils._ChunkedLogProbFunction
    assert not fa_trl.is_enabled()
    with fa_trl.enabled(backend="torch"):
        assert utils._ChunkedLogProbFunction is fa_trl.FastalignLogProbFunction
        assert fa_trl.FastalignLogProbFunction.backend == "torch"
        fa_trl.enable(backend="reference")  # idempotent, updates the options
        assert fa_trl.is_enabled()
    assert utils._ChunkedLogProbFunction is original
    assert not fa_trl.is_enabled()
    fa_trl.disable()  # a no-op when off
    with pytest.raises(ValueError, match="backend"):
        fa_trl.enable(backend="cuda")
    with pytest.raises(ValueError, match="chunk_rows"):
        fa_trl.enable(chunk_rows=0)
    assert not fa_trl.is_enabled()


def test_example_script_runs_and_agrees():
    """examples/trl_dpo_tiny.py at a small size: both runs finish with the same losses."""
    import json
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).parents[1] / "examples" / "trl_dpo_tiny.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--steps", "2", "--vocab", "500"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    stock, fast = results["stock TRL"], results["TRL + fastalign"]
    assert len(stock["losses"]) == len(fast["losses"]) == 2
    assert fast["losses"] == pytest.approx(stock["losses"], rel=1e-5)
    assert "speed-up" in proc.stdout


def test_captured_head_placeholders_stay_connected():
    """While the fused DPO loss captures the LM-head call, the placeholder outputs still
    depend on the hidden states and the head (DDP's unused-parameter search must find
    every parameter the fused loss will reach)."""
    from fastalign.integrations import _trl_dpo

    h = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(12, 8, requires_grad=True)
    y = torch.randint(0, 12, (5,))
    with _trl_dpo.capture() as calls:
        lp, *_ = fa_trl.FastalignLogProbFunction.apply(h, w, None, y, 1.0, 32768)
    assert len(calls) == 1
    assert calls[0]["hidden"] is h
    assert not lp.any()
    assert lp.requires_grad
    gh, gw = torch.autograd.grad(lp.sum(), [h, w])
    assert not gh.any()
    assert not gw.any()
