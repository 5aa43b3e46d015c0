"""SimPO / CPO / ORPO / SLiC / RPO / MaPPO / KTO: parity with TRL's code where TRL has the
loss (CPO / SimPO: CPOTrainer.cpo_loss; ORPO: ORPOTrainer.odds_ratio_loss; KTO:
KTOTrainer._compute_loss on a stand-in trainer), else the spec's equations; gradchecks."""

from __future__ import annotations

import math
import types
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses import cpo, kto, mappo, orpo, preference_loss, rpo, simpo, slic

cpo_trainer = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
orpo_trainer = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
kto_trainer = pytest.importorskip("trl.trainer.kto_trainer")

CPU = types.SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x)


def pairs(seed, b, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lw = torch.randint(1, 30, (b,), generator=g)
    ll = torch.randint(1, 30, (b,), generator=g)
    pw = -torch.rand(b, generator=g, dtype=dtype) * lw * 2
    pl = -torch.rand(b, generator=g, dtype=dtype) * ll * 2
    rw = pw + torch.randn(b, generator=g, dtype=dtype)
    rl = pl + torch.randn(b, generator=g, dtype=dtype)
    return pw, pl, rw, rl, lw, ll


def trl_cpo(pw, pl, *, loss_type, beta, label_smoothing=0.0, simpo_gamma=0.5, alpha=0.0):
    """TRL's CPOTrainer.cpo_loss on the log-probs its trainer gives it (``alpha``: AlphaPO)."""
    fake = types.SimpleNamespace(
        alpha=alpha,
        loss_type=loss_type,
        simpo_gamma=simpo_gamma,
        beta=beta,
        label_smoothing=label_smoothing,
        accelerator=CPU,
    )
    return cpo_trainer.CPOTrainer.cpo_loss(fake, pw, pl)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 8),
    beta=st.sampled_from([0.1, 0.7]),
    eps=st.sampled_from([0.0, 0.2]),
)
def test_cpo_pair_term_matches_trl(loss_type, seed, b, beta, eps):
    pw, pl, _, _, lw, ll = pairs(seed, b)
    ours = cpo(pw, pl, chosen_lengths=lw, rejected_lengths=ll, beta=beta, alpha=0.0,
               label_smoothing=eps, loss_type=loss_type)  # fmt: skip
    # TRL's CPOTrainer.concatenated_forward averages the log-probs for ipo (and simpo)
    tw, tl = (pw / lw, pl / ll) if loss_type == "ipo" else (pw, pl)
    theirs, rw, _rl = trl_cpo(tw, tl, loss_type=loss_type, beta=beta, label_smoothing=eps)
    torch.testing.assert_close(ours.losses, theirs, rtol=1e-12, atol=1e-12)
    assert ours.metrics["rewards/chosen"].item() == pytest.approx(rw.mean().item(), rel=1e-12)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8), a=st.sampled_from([-0.3, 0.1, 0.5]))
def test_cpo_alphapo_matches_trl(loss_type, seed, b, a):
    """TRL's CPOConfig.alpha (AlphaPO's reward shape (1 - p^-a) / a) is cpo's alphapo."""
    pw, pl, _, _, lw, ll = pairs(seed, b)
    pw, pl = pw / 10, pl / 10  # p^-a stays finite in TRL's direct form
    ours = cpo(pw, pl, chosen_lengths=lw, rejected_lengths=ll, beta=0.2, alpha=0.0,
               loss_type=loss_type, alphapo=a)  # fmt: skip
    tw, tl = (pw / lw, pl / ll) if loss_type == "ipo" else (pw, pl)
    theirs, rw, rl = trl_cpo(tw, tl, loss_type=loss_type, beta=0.2, alpha=a)
    torch.testing.assert_close(ours.losses, theirs, rtol=1e-10, atol=1e-12)
    assert ours.metrics["rewards/chosen"].item() == pytest.approx(rw.mean().item(), rel=1e-10)
    assert ours.metrics["rewards/rejected"].item() == pytest.approx(rl.mean().item(), rel=1e-10)


def test_cpo_ipo_uses_per_token_means_like_trl():
    """The defect: s_w = -4 over 4 tokens, s_l = -9 over 3, beta = 0.1, cpo_alpha = 0: TRL's
    CPO IPO gives ((-1 + 3) - 5)^2 = 9.0; fastalign took the sums ((-4 + 9) - 5)^2 = 0."""
    one = torch.tensor
    out = cpo(one([-4.0]), one([-9.0]), chosen_lengths=one([4]), rejected_lengths=one([3]),
              beta=0.1, alpha=0.0, loss_type="ipo")  # fmt: skip
    assert out.loss.item() == pytest.approx(9.0, abs=1e-6)
    with pytest.raises(InvalidInputError, match="rejected_lengths"):
        cpo(one([-4.0]), one([-9.0]), chosen_lengths=one([4]), loss_type="ipo")


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8))
def test_cpo_nll_term_is_token_mean_of_chosen(seed, b):
    pw, pl, _, _, lw, _ = pairs(seed, b)
    out = cpo(pw, pl, chosen_lengths=lw, alpha=1.0)
    base = cpo(pw, pl, alpha=0.0)
    torch.testing.assert_close(
        out.losses - base.losses, torch.full_like(pw, -(pw.sum() / lw.sum()).item())
    )


@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 8),
    beta=st.sampled_from([2.0, 2.5]),
    gamma=st.sampled_from([0.5, 1.2]),
)
def test_simpo_matches_trl_on_mean_logps(seed, b, beta, gamma):
    pw, pl, _, _, lw, ll = pairs(seed, b)
    ours = simpo(pw, pl, chosen_lengths=lw, rejected_lengths=ll, beta=beta, gamma=gamma)
    # TRL's CPO trainer feeds SimPO per-token *average* log-probs
    theirs, _, _ = trl_cpo(pw / lw, pl / ll, loss_type="simpo", beta=beta, simpo_gamma=gamma)
    torch.testing.assert_close(ours.losses, theirs, rtol=1e-12, atol=1e-12)
    ratio = simpo(
        pw, pl, chosen_lengths=lw, rejected_lengths=ll, beta=beta, gamma_beta_ratio=gamma / beta
    )
    torch.testing.assert_close(ratio.losses, ours.losses)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8), lam=st.sampled_from([0.1, 0.5]))
def test_orpo_matches_trl(seed, b, lam):
    pw, pl, _, _, lw, ll = pairs(seed, b)
    ours = orpo(pw, pl, chosen_lengths=lw, rejected_lengths=ll, lam=lam)
    fake = types.SimpleNamespace(beta=lam, accelerator=CPU)
    # unpacked under the names TRL's get_batch_loss_metrics gives them (and logs)
    ratio_losses, _, _, log_odds_ratio, log_odds_chosen = orpo_trainer.ORPOTrainer.odds_ratio_loss(
        fake, pw / lw, pl / ll
    )
    nll = -(pw.sum() / lw.sum())
    # TRL casts to float32 inside odds_ratio_loss (float32-level agreement); ours stays in
    # float64 and is checked exactly against the equations below
    torch.testing.assert_close(ours.losses, nll - ratio_losses.double(), rtol=1e-5, atol=1e-6)
    mw, ml = pw / lw, pl / ll
    exact = (mw - ml) - (torch.log(-torch.expm1(mw)) - torch.log(-torch.expm1(ml)))
    torch.testing.assert_close(ours.losses, nll - lam * F.logsigmoid(exact), rtol=1e-12, atol=1e-12)
    # (fastalign had these two swapped relative to what TRL logs)
    assert ours.metrics["log_odds_ratio"].item() == pytest.approx(
        log_odds_ratio.item(), rel=1e-5, abs=1e-6
    )
    assert ours.metrics["log_odds_chosen"].item() == pytest.approx(
        log_odds_chosen.item(), rel=1e-5, abs=1e-6
    )
    assert ours.metrics["log_odds_ratio"].item() == pytest.approx(
        F.logsigmoid(exact).mean().item(), rel=1e-12
    )


def test_orpo_log1mexp_is_stable_near_zero_and_far_below():
    pw = torch.tensor([-1e-12, -50.0], dtype=torch.float64)
    out = orpo(
        pw, pw - 1, chosen_lengths=torch.tensor([1, 1]), rejected_lengths=torch.tensor([1, 1])
    )
    assert torch.isfinite(out.losses).all()
    want = (pw - (pw - 1)) - (torch.log(-torch.expm1(pw)) - torch.log(-torch.expm1(pw - 1)))
    assert out.metrics["log_odds_chosen"].item() == pytest.approx(want.mean().item(), rel=1e-12)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8))
def test_slic_rpo_mappo_equations(seed, b):
    pw, pl, rw, rl, lw, _ = pairs(seed, b)
    s = slic(pw, pl, delta=1.0, lam=0.1)
    torch.testing.assert_close(s.losses, torch.relu(1 - pw + pl) - 0.1 * pw)
    r = rpo(pw, pl, rw, rl, beta=0.2, eta=0.005)
    dpo = -F.logsigmoid(0.2 * ((pw - rw) - (pl - rl)))
    torch.testing.assert_close(r.losses, dpo + 0.005 * 0.2 * (-pw))
    rm = rpo(pw, pl, rw, rl, beta=0.2, eta=0.005, nll="mean", chosen_lengths=lw)
    torch.testing.assert_close(rm.losses, dpo + 0.005 * 0.2 * (-(pw.sum() / lw.sum())))
    gap = torch.rand(b, dtype=torch.float64)
    m = mappo(pw, pl, rw, rl, gap, beta=0.3)
    torch.testing.assert_close(m.losses, -F.logsigmoid(0.3 * (pw - rw) - gap * 0.3 * (pl - rl)))
    one = mappo(pw, pl, rw, rl, torch.ones(b, dtype=torch.float64), beta=0.3)
    torch.testing.assert_close(one.losses, preference_loss(pw, pl, rw, rl, beta=0.3).losses)


# ---- KTO ---------------------------------------------------------------------------------


class _Acc:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x


def trl_kto(policy, ref, labels, kl_policy, kl_ref, *, beta, lam_d, lam_u):
    b = policy.shape[0]
    ids = torch.zeros(b, 3, dtype=torch.long)
    kl_ids = torch.ones(b, 3, dtype=torch.long)
    mask = torch.tensor([[0, 1, 1]] * b)

    def per_token(sums):  # TRL sums the per-token log-probs of the completion positions
        return torch.stack([sums, torch.zeros_like(sums)], dim=1)

    def model(input_ids, **kw):
        lp = per_token(kl_policy) if input_ids is kl_ids else per_token(policy)
        z = torch.zeros_like(lp)
        return types.SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z, aux_loss=None)

    trainer = types.SimpleNamespace(
        model=types.SimpleNamespace(training=True),
        accelerator=_Acc(),
        calculate_KL=True,
        aux_loss_enabled=False,
        precompute_ref_logps=True,
        loss_type="kto",
        beta=beta,
        desirable_weight=lam_d,
        undesirable_weight=lam_u,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    trainer._compute_kl_logps = lambda m, batch: kto_trainer.KTOTrainer._compute_kl_logps(
        trainer, m, batch
    )
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "completion_mask": mask,
        "KL_input_ids": kl_ids,
        "KL_attention_mask": torch.ones_like(kl_ids),
        "KL_completion_mask": mask,
        "label": labels,
        "ref_logps": ref,
        "ref_KL_logps": kl_ref,
    }
    loss = kto_trainer.KTOTrainer._compute_loss(trainer, model, inputs, False)
    return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(2, 9), beta=st.sampled_from([0.1, 0.5]))
def test_kto_matches_trl(seed, b, beta):
    g = torch.Generator().manual_seed(seed)
    policy = -torch.rand(b, generator=g, dtype=torch.float64) * 20
    ref = policy + torch.randn(b, generator=g, dtype=torch.float64)
    kl_policy = -torch.rand(b, generator=g, dtype=torch.float64) * 20
    kl_ref = kl_policy + torch.randn(b, generator=g, dtype=torch.float64)
    labels = torch.rand(b, generator=g) < 0.5
    labels[0], labels[1] = True, False
    n_d, n_u = int(labels.sum()), b - int(labels.sum())
    lam_u = n_d / n_u  # keeps lam_D n_D / (lam_U n_U) = 1: inside the recommended range
    ours = kto(
        policy,
        ref,
        labels,
        kl_policy_logps=kl_policy,
        kl_ref_logps=kl_ref,
        beta=beta,
        undesirable_weight=lam_u,
    )
    theirs, metrics = trl_kto(
        policy, ref, labels, kl_policy, kl_ref, beta=beta, lam_d=1.0, lam_u=lam_u
    )
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-12)
    for name in (
        "kl",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ):
        assert ours.metrics[name].item() == pytest.approx(metrics[name], rel=1e-12, abs=1e-12)


def test_kto_z0_given_and_weight_warning():
    x = torch.tensor([-3.0, -4.0, -5.0], dtype=torch.float64)
    lab = torch.tensor([True, True, False])
    with pytest.warns(UserWarning, match="outside \\[1, 4/3\\]"):
        out = kto(x, x + 0.5, lab, z0=0.25)
    rho = torch.full((3,), -0.5, dtype=torch.float64)
    want = torch.where(
        lab, 1 - torch.sigmoid(0.1 * (rho - 0.25)), 1 - torch.sigmoid(0.1 * (0.25 - rho))
    )
    torch.testing.assert_close(out.losses, want)


def test_gradchecks():
    g = torch.Generator().manual_seed(1)
    pw = (-torch.rand(4, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
    pl = (-torch.rand(4, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
    lens = torch.tensor([2, 3, 4, 5])
    ref = torch.cat([pw, pl]).detach() - 0.3  # fixed: gradcheck perturbs only pw, pl
    fns = [
        lambda a, b: simpo(a, b, chosen_lengths=lens, rejected_lengths=lens).losses,
        lambda a, b: cpo(a, b, chosen_lengths=lens).losses,
        lambda a, b: orpo(a, b, chosen_lengths=lens, rejected_lengths=lens).losses,
        lambda a, b: slic(a, b).losses,
        lambda a, b: (
            kto(
                torch.cat([a, b]),
                ref,
                torch.tensor([True] * 4 + [False] * 4),
                z0=0.1,
            ).losses
        ),
    ]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (pw, pl))


def test_bad_input():
    x = torch.zeros(3, dtype=torch.float64) - 1
    with pytest.raises(InvalidInputError, match="simpo needs chosen_lengths"):
        simpo(x, x)
    with pytest.raises(InvalidInputError, match="cpo with alpha"):
        cpo(x, x)
    with pytest.raises(InvalidInputError, match="reward_gap must lie in"):
        mappo(x, x, x, x, torch.full((3,), 2.0, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="reference point"):
        kto(x, x, torch.tensor([True, False, True]))
    with pytest.raises(ShapeError, match="desirable must be"):
        kto(x, x, torch.tensor([True, False]), z0=0.0)
    with pytest.raises(InvalidInputError, match="0/1"):
        kto(x, x, torch.tensor([0, 2, 1]), z0=0.0)
    with pytest.raises(InvalidInputError, match="mean log-probs < 0"):
        orpo(x + 1, x, chosen_lengths=torch.ones(3), rejected_lengths=torch.ones(3))
    assert math.isfinite(slic(x, x).loss.item())


def test_orpo_equals_trl_trainer_end_to_end_with_its_prompt_nll():
    """TRL's ORPOTrainer.get_batch_loss_metrics (its concatenated_forward on a stand-in model
    that returns fixed logits): the odds ratio on response tokens, the NLL over prompt and
    response. With nll_chosen_logps / nll_chosen_lengths, orpo gives TRL's loss and metrics."""
    trainer_cls = orpo_trainer.ORPOTrainer
    g = torch.Generator().manual_seed(3)
    b, t, v, prompt = 3, 9, 11, 3
    logits = torch.randn(2 * b, t, v, generator=g, dtype=torch.float64)
    ids = torch.randint(0, v, (2 * b, t), generator=g)
    attn = torch.ones(2 * b, t, dtype=torch.long)
    attn[1, -2:] = 0  # right padding
    attn[b + 2, -3:] = 0
    labels = torch.where(attn == 1, ids, -100)
    labels[:, :prompt] = -100
    batch = {
        "chosen_input_ids": ids[:b], "chosen_attention_mask": attn[:b], "chosen_labels": labels[:b],
        "rejected_input_ids": ids[b:], "rejected_attention_mask": attn[b:],
        "rejected_labels": labels[b:],
    }  # fmt: skip
    fake = types.SimpleNamespace(
        is_encoder_decoder=False, padding_value=0, label_pad_token_id=-100, beta=0.25,
        aux_loss_enabled=False, accelerator=types.SimpleNamespace(
            device=torch.device("cpu"), gather_for_metrics=lambda x: x),
        concatenated_inputs=trainer_cls.concatenated_inputs,
        get_batch_logps=trainer_cls.get_batch_logps,
    )  # fmt: skip
    fake.concatenated_forward = lambda model, bt: trainer_cls.concatenated_forward(fake, model, bt)
    fake.odds_ratio_loss = lambda w, lo: trainer_cls.odds_ratio_loss(fake, w, lo)
    model = lambda *a, **k: types.SimpleNamespace(logits=logits)  # noqa: E731
    loss, metrics = trainer_cls.get_batch_loss_metrics(fake, model, batch)

    # fastalign from the same logits: next-token log-probs, response sums, full-sequence NLL
    lp = torch.log_softmax(logits[:, :-1], -1)

    def sums(lab):
        m = lab[:, 1:] != -100
        tok = lp.gather(2, lab[:, 1:].clamp(min=0)[..., None]).squeeze(2) * m
        return tok.sum(1), m.sum(1)

    s, n = sums(labels)
    s_nll, n_nll = sums(torch.where(attn == 1, ids, -100))
    ours = orpo(s[:b], s[b:], chosen_lengths=n[:b], rejected_lengths=n[b:], lam=0.25,
                nll_chosen_logps=s_nll[:b], nll_chosen_lengths=n_nll[:b])  # fmt: skip
    # TRL forms the odds ratio in float32 (.float()); everything else is float64
    assert ours.loss.item() == pytest.approx(loss.item(), rel=1e-6, abs=1e-7)
    for name in ("nll_loss", "log_odds_ratio", "log_odds_chosen", "logps/chosen",
                 "logps/rejected", "rewards/chosen", "rewards/margins"):  # fmt: skip
        assert ours.metrics[name].item() == pytest.approx(float(metrics[name]), rel=1e-6), name
    # the default NLL (responses only) is a different number: the option matters here
    plain = orpo(s[:b], s[b:], chosen_lengths=n[:b], rejected_lengths=n[b:], lam=0.25)
    assert abs(plain.metrics["nll_loss"].item() - float(metrics["nll_loss"])) > 1e-3
    with pytest.raises(InvalidInputError, match="together"):
        orpo(s[:b], s[b:], chosen_lengths=n[:b], rejected_lengths=n[b:], nll_chosen_logps=s[:b])
