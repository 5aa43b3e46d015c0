"""preference_loss: float64 parity with TRL's DPOTrainer loss code, properties, gradients.

TRL computes the DPO-family losses inline in ``DPOTrainer._compute_loss``. The parity tests
run that very method on a stand-in trainer and model: the model returns chosen per-token
log-probs, so TRL's own code forms the sums, the log-ratios and every loss type, and its
logged metrics are compared with ours.
"""

from __future__ import annotations

import math
import types
from collections import defaultdict

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses import PREFERENCE_LOSS_TYPES, preference_loss

dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    @staticmethod
    def gather(x):
        return x


def trl_dpo(per_token_w, per_token_l, ref_w, ref_l, mask_w, mask_l, **cfg):
    """Loss and metrics from TRL's DPOTrainer._compute_loss on given per-token log-probs
    (``[B, T]``, zero outside the completion masks)."""
    log_probs = torch.cat([per_token_w, per_token_l])
    shift_mask = torch.cat([mask_w, mask_l])
    # TRL scores label t+1 from position t; completion_mask is unshifted (first column 0)
    completion_mask = torch.cat([torch.zeros_like(shift_mask[:, :1]), shift_mask], dim=1)
    two_b, seq = completion_mask.shape
    outputs = types.SimpleNamespace(
        log_probs=log_probs,
        entropy=torch.zeros_like(log_probs),
        mean_logits=torch.zeros_like(log_probs),
        is_top1=torch.zeros_like(log_probs, dtype=torch.bool),
        log_sum_sq_probs=torch.zeros_like(log_probs),
        aux_loss=None,
    )
    trainer = types.SimpleNamespace(
        model=types.SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type=cfg.get("f_divergence", "reverse_kl"),
        f_alpha_divergence_coef=cfg.get("f_alpha", 0.5),
        loss_types=cfg["loss_types"],
        loss_weights=cfg.get("loss_weights", [1.0] * len(cfg["loss_types"])),
        beta=cfg["beta"],
        label_smoothing=cfg.get("label_smoothing", 0.0),
        args=types.SimpleNamespace(discopop_tau=cfg.get("discopop_tau", 0.05)),
        use_weighting=False,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(two_b, seq, dtype=torch.long),
        "attention_mask": torch.ones(two_b, seq, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_w,
        "ref_rejected_logps": ref_l,
    }
    loss = dpo_trainer.DPOTrainer._compute_loss(trainer, lambda **kw: outputs, inputs, False)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss, metrics


def random_batch(seed, batch, seq, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask_w = (torch.rand(batch, seq, generator=g) < 0.7).long()
    mask_l = (torch.rand(batch, seq, generator=g) < 0.7).long()
    mask_w[:, 0] = 1
    mask_l[:, 0] = 1
    tok_w = -torch.rand(batch, seq, generator=g, dtype=dtype) * 2 * mask_w
    tok_l = -torch.rand(batch, seq, generator=g, dtype=dtype) * 2 * mask_l
    ref_w = tok_w.sum(1) + torch.randn(batch, generator=g, dtype=dtype) * 2
    ref_l = tok_l.sum(1) + torch.randn(batch, generator=g, dtype=dtype) * 2
    return tok_w, tok_l, ref_w, ref_l, mask_w, mask_l


TRL_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
)


def ours_from(tok_w, tok_l, ref_w, ref_l, mask_w, mask_l, **kw):
    return preference_loss(
        tok_w.sum(1),
        tok_l.sum(1),
        ref_w,
        ref_l,
        chosen_lengths=mask_w.sum(1),
        rejected_lengths=mask_l.sum(1),
        **kw,
    )


# every type TRL 1.x's DPOTrainer knows (cdpo is fastalign's name for TRL 0.x's smoothed sigmoid)
TRL_TYPES = [t for t in PREFERENCE_LOSS_TYPES if t != "cdpo"]


@pytest.mark.parametrize("loss_type", TRL_TYPES)
@given(
    seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 9), beta=st.sampled_from([0.1, 0.5, 2.0])
)
def test_float64_parity_with_trl(loss_type, seed, batch, beta):
    data = random_batch(seed, batch, 7)
    # label smoothing for every type (TRL ignores it where it does not apply: sigmoid too)
    eps = 0.25 if loss_type != "sft" else 0.0
    ours = ours_from(*data, loss_type=loss_type, beta=beta, label_smoothing=eps)
    theirs, metrics = trl_dpo(*data, loss_types=[loss_type], beta=beta, label_smoothing=eps)
    # TRL forms exo_pair's log(eps) from a float32 tensor; everything else is float64
    tol = 1e-7 if loss_type == "exo_pair" else 1e-10
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=tol, abs=tol)
    for name in TRL_METRICS:
        # TRL takes the accuracy's mean in float32 (.float()); the rest is float64
        mtol = 1e-7 if name == "rewards/accuracies" else 1e-12
        assert ours.metrics[name].item() == pytest.approx(metrics[name], rel=mtol, abs=mtol)


@pytest.mark.parametrize(
    "loss_type", [t for t in TRL_TYPES if t not in ("aot", "aot_unpaired", "sft")]
)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6))
def test_per_example_losses_match_trl_one_pair_at_a_time(loss_type, seed, batch):
    data = random_batch(seed, batch, 5)
    eps = 0.2 if loss_type in ("exo_pair", "robust", "sigmoid") else 0.0
    ours = ours_from(*data, loss_type=loss_type, beta=0.3, label_smoothing=eps)
    for i in range(batch):
        one = [t[i : i + 1] for t in data]
        theirs, _ = trl_dpo(*one, loss_types=[loss_type], beta=0.3, label_smoothing=eps)
        tol = 1e-7 if loss_type == "exo_pair" else 1e-10
        assert ours.losses[i].item() == pytest.approx(theirs.item(), rel=tol, abs=tol)


@pytest.mark.parametrize("f_divergence", ["forward_kl", "js_divergence"])
@given(seed=st.integers(0, 2**31 - 1))
def test_f_divergence_parity_float64(f_divergence, seed):
    data = random_batch(seed, 5, 6)
    ours = ours_from(*data, loss_type="sigmoid", beta=0.2, f_divergence=f_divergence)
    theirs, _ = trl_dpo(*data, loss_types=["sigmoid"], beta=0.2, f_divergence=f_divergence)
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("f_alpha", [0.5, 1.0, 1.7])
def test_alpha_divergence_parity_float32(f_alpha):
    # TRL's alpha-divergence branch only knows the fp16/bf16/fp32 clamps, so compare in fp32
    data = random_batch(3, 8, 6, dtype=torch.float32)
    ours = ours_from(
        *data, loss_type="sigmoid", beta=0.2, f_divergence="alpha_divergence", f_alpha=f_alpha
    )
    theirs, _ = trl_dpo(
        *data, loss_types=["sigmoid"], beta=0.2, f_divergence="alpha_divergence", f_alpha=f_alpha
    )
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_combined_loss_types_with_weights_match_trl():
    data = random_batch(11, 6, 8)
    kw = dict(beta=0.1)
    types_, weights = ["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0]
    ours = ours_from(*data, loss_type=types_, loss_weights=weights, **kw)
    theirs, _ = trl_dpo(*data, loss_types=types_, loss_weights=weights, **kw)
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-10)


# ---- properties -------------------------------------------------------------------------

logps = st.lists(st.floats(-50, 0), min_size=1, max_size=8)


@given(pw=logps, beta=st.floats(0.01, 5.0))
def test_policy_equal_to_reference_gives_log2(pw, beta):
    x = torch.tensor(pw, dtype=torch.float64)
    y = x.flip(0)
    for t in ("sigmoid", "robust", "aot", "aot_unpaired"):
        out = preference_loss(x, y, x, y, loss_type=t, beta=beta)
        torch.testing.assert_close(out.losses, torch.full_like(x, math.log(2)))
    hinge = preference_loss(x, y, x, y, loss_type="hinge", beta=beta)
    torch.testing.assert_close(hinge.losses, torch.ones_like(x))


@given(seed=st.integers(0, 2**31 - 1), beta=st.floats(0.05, 3.0))
def test_swapping_chosen_and_rejected_negates_h(seed, beta):
    g = torch.Generator().manual_seed(seed)
    pw, pl, rw, rl = torch.randn(4, 6, generator=g, dtype=torch.float64)
    h = (pw - rw) - (pl - rl)
    a = preference_loss(pw, pl, rw, rl, beta=beta)
    b = preference_loss(pl, pw, rl, rw, beta=beta)
    torch.testing.assert_close(a.losses, -torch.nn.functional.logsigmoid(beta * h))
    torch.testing.assert_close(b.losses, -torch.nn.functional.logsigmoid(-beta * h))
    # hinge and sigmoid of -h relate the same way
    torch.testing.assert_close(a.losses - b.losses, -beta * h)


def test_ipo_sum_normalization_is_the_original_form():
    pw, pl, rw, rl = torch.tensor(
        [[-3.0, -5.0], [-4.0, -4.5], [-3.5, -4.0], [-4.2, -4.4]], dtype=torch.float64
    )
    out = preference_loss(pw, pl, rw, rl, loss_type="ipo", beta=0.5, normalize="sum")
    h = (pw - rw) - (pl - rl)
    torch.testing.assert_close(out.losses, (h - 1.0) ** 2)


def test_gradcheck_every_loss_type():
    g = torch.Generator().manual_seed(0)
    pw, pl = (
        torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)
    )
    rw, rl = torch.randn(2, 5, generator=g, dtype=torch.float64)
    lengths = torch.tensor([3, 4, 5, 6, 7])
    for t in PREFERENCE_LOSS_TYPES:

        def fn(a, b, t=t):
            return preference_loss(
                a,
                b,
                rw,
                rl,
                loss_type=t,
                beta=0.4,
                label_smoothing=0.1,
                chosen_lengths=lengths,
                rejected_lengths=lengths,
            ).losses

        assert torch.autograd.gradcheck(fn, (pw, pl)), t


def test_bad_input():
    x = torch.zeros(3)
    with pytest.raises(ShapeError, match="same batch size"):
        preference_loss(x, torch.zeros(4), x, x)
    with pytest.raises(ShapeError, match="1-D"):
        preference_loss(x[None], x[None], x[None], x[None])
    with pytest.raises(TypeError, match="floating-point"):
        preference_loss(x.long(), x, x, x)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        preference_loss([0.0, 0.0, 0.0], x, x, x)
    with pytest.raises(InvalidInputError, match="beta"):
        preference_loss(x, x, x, x, beta=0.0)
    with pytest.raises(InvalidInputError, match="label_smoothing"):
        preference_loss(x, x, x, x, label_smoothing=0.5)
    with pytest.raises(InvalidInputError, match="unknown loss_type"):
        preference_loss(x, x, x, x, loss_type="dpo++")
    with pytest.raises(InvalidInputError, match="needs chosen_lengths"):
        preference_loss(x, x, x, x, loss_type="ipo")
    with pytest.raises(InvalidInputError, match="exo_pair needs"):
        preference_loss(x, x, x, x, loss_type="exo_pair")
    with pytest.raises(InvalidInputError, match="loss_weights"):
        preference_loss(x, x, x, x, loss_type=["sigmoid", "hinge"], loss_weights=[1.0])
    with pytest.raises(InvalidInputError, match="f_divergence"):
        preference_loss(x, x, x, x, f_divergence="kl")
    with pytest.raises(ShapeError, match="chosen_lengths"):
        preference_loss(x, x, x, x, loss_type="sft", chosen_lengths=torch.ones(2))


def test_sigmoid_ignores_label_smoothing_like_trl_and_cdpo_smooths():
    """TRL 1.x's sigmoid loss ignores label_smoothing (its DPOConfig documents it for robust,
    EXO and AOT only); fastalign applied TRL 0.x's cDPO smoothing: h=2, beta=1, smoothing 0.1
    gave 0.326928 where TRL 1.16 gives 0.126928. The smoothed form is now ``cdpo``."""
    one = torch.tensor([0.0], dtype=torch.float64)
    pw = torch.tensor([2.0], dtype=torch.float64)  # h = (2 - 0) - (0 - 0)
    data = (pw[:, None], one[:, None], one, one, torch.ones(1, 1), torch.ones(1, 1))
    theirs, _ = trl_dpo(*data, loss_types=["sigmoid"], beta=1.0, label_smoothing=0.1)
    sig = preference_loss(pw, one, one, one, beta=1.0, label_smoothing=0.1).loss.item()
    assert sig == pytest.approx(theirs.item(), abs=1e-12)
    assert sig == pytest.approx(math.log1p(math.exp(-2.0)), abs=1e-12)  # 0.126928
    cdpo = preference_loss(pw, one, one, one, beta=1.0, label_smoothing=0.1, loss_type="cdpo")
    want = 0.9 * math.log1p(math.exp(-2.0)) + 0.1 * math.log1p(math.exp(2.0))  # 0.326928
    assert cdpo.loss.item() == pytest.approx(want, abs=1e-12)
    plain = preference_loss(pw, one, one, one, beta=1.0, loss_type="cdpo").loss.item()
    assert plain == pytest.approx(sig, abs=1e-15)  # cdpo without smoothing is sigmoid
