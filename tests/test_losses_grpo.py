"""GRPO family: parity with TRL's GRPOTrainer loss code (run on a stand-in trainer whose
model returns our per-token log-probs), group advantages vs the straightforward formula and
the spec's properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from fastalign.errors import InvalidInputError, ShapeError
from fastalign.losses import GRPO_LOSS_TYPES, group_advantages, grpo_loss, soft_overlong_penalty
from fastalign.losses._grpo_terms import SAMPLING_CORRECTIONS
from fastalign.reference import trl_grpo as trl_grpo_ref

pytest.importorskip("trl.trainer.grpo_trainer")


def test_trl_still_corrects_rollouts_as_transcribed():
    import inspect

    trl = pytest.importorskip("trl")
    src = " ".join(inspect.getsource(trl.GRPOTrainer._generate_and_score_completions).split())
    for line in trl_grpo_ref.ROLLOUT_LINES:
        assert " ".join(line.split()) in src, line


trl_grpo = trl_grpo_ref.compute_loss


def random_rl_batch(seed, b, t, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(b, t, generator=g) < 0.8).long()
    mask[:, 0] = 1
    logps = -torch.rand(b, t, generator=g, dtype=dtype) * 3
    old = logps + torch.randn(b, t, generator=g, dtype=dtype) * 0.3
    ref = logps + torch.randn(b, t, generator=g, dtype=dtype) * 0.3
    adv = torch.randn(b, generator=g, dtype=dtype)
    return logps, old, ref, adv, mask


def _f32(x):
    """``x`` as TRL's float32 ``torch.where`` of Python floats holds it."""
    return float(torch.tensor(x, dtype=torch.float32))


def _extras(seed, b, t, nan_sampling):
    """Entropies (float32 values: TRL takes their quantile in float32) and sampler log-probs
    near the old ones, some unscored (NaN) when ``nan_sampling``."""
    g = torch.Generator().manual_seed(seed + 1)
    ent = (torch.rand(b, t, generator=g) * 3).double()
    sampling = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    if nan_sampling:
        sampling[torch.rand(b, t, generator=g) < 0.2] = math.nan
    return ent, sampling


_OPTION_SETS = st.fixed_dictionaries(
    {
        "beta": st.sampled_from([0.0, 0.04]),
        "eps_high": st.sampled_from([0.2, 0.28, 4.0]),
        "delta": st.sampled_from([None, 1.5]),
        "use_bias_correction_kl": st.booleans(),
        # fractions whose 1 - q float32 holds exactly: TRL takes the quantile of float32
        # entropies at float32(1 - q), and float32(0.8) > 0.8 drops the token exactly at
        # the 0.8 rank when (n - 1) * 0.8 is whole (top_entropy_quantile=0.2); fastalign
        # keeps it (entropy >= the exact quantile)
        "top_entropy_quantile": st.sampled_from([1.0, 0.75, 0.5, 0.25, 0.0]),
        "off_policy_mask_threshold": st.sampled_from([None, 0.0, 0.5]),
        "with_sampling": st.booleans(),
        "mode": st.sampled_from([None, *SAMPLING_CORRECTIONS]),
        "clip": st.sampled_from([(None, 3.0), (0.5, 2.0), (0.9, None), (0.0, 1.2)]),
        "nan_sampling": st.booleans(),
        "sapo": st.sampled_from([(1.0, 1.05), (0.5, 2.0)]),
        "vespo": st.sampled_from([(2.0, 3.0, 3.0, 2.0), (1.5, 0.5, 3.0, 1.0)]),
    }
)


def _run_both(loss_type, level, seed, b, t, o, grad=False):
    logps, old, ref, adv, mask = random_rl_batch(seed, b, t)
    ent, sampling = _extras(seed, b, t, o["nan_sampling"])
    mode = o["mode"] if o["with_sampling"] else None
    if loss_type == "vespo" and mode is not None and mode.startswith("sequence"):
        mode = "token_" + mode.split("_")[1]  # TRL refuses sequence modes for VESPO
    sampler = sampling if o["with_sampling"] else None
    num_items = int(mask.sum()) + 3
    a = logps.clone().requires_grad_(grad)
    ours = grpo_loss(
        a, old, adv, mask, ref_logps=ref, beta=o["beta"], epsilon_low=0.2,
        epsilon_high=o["eps_high"], delta=o["delta"], loss_type=loss_type,
        importance_sampling_level=level, max_completion_length=t + 2,
        num_items_in_batch=num_items, use_bias_correction_kl=o["use_bias_correction_kl"],
        sapo_temperature_pos=_f32(o["sapo"][0]), sapo_temperature_neg=_f32(o["sapo"][1]),
        vespo_k_pos=o["vespo"][0], vespo_lambda_pos=o["vespo"][1],
        vespo_k_neg=o["vespo"][2], vespo_lambda_neg=o["vespo"][3], entropies=ent,
        top_entropy_quantile=o["top_entropy_quantile"],
        off_policy_mask_threshold=o["off_policy_mask_threshold"], sampling_logps=sampler,
        sampling_correction=mode, sampling_clip_min=o["clip"][0],
        sampling_clip_max=o["clip"][1],
    )  # fmt: skip
    c = logps.clone().requires_grad_(grad)
    theirs, metrics = trl_grpo(
        c, old, ref, adv, mask, loss_type=loss_type, beta=o["beta"], eps_low=0.2,
        eps_high=o["eps_high"], delta=o["delta"], level=level, max_len=t + 2,
        num_items=num_items, entropies=ent, top_entropy_quantile=o["top_entropy_quantile"],
        off_policy_mask_threshold=o["off_policy_mask_threshold"],
        use_bias_correction_kl=o["use_bias_correction_kl"], sampling=sampler, mode=mode,
        clip_min=o["clip"][0], clip_max=o["clip"][1], sapo=o["sapo"], vespo=o["vespo"],
    )  # fmt: skip
    return (ours, a), (theirs, c, metrics)


@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
@pytest.mark.parametrize("level", ["token", "sequence"])
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), t=st.integers(1, 7), o=_OPTION_SETS)
def test_float64_parity_with_trl(loss_type, level, seed, b, t, o):
    (ours, _), (theirs, _, metrics) = _run_both(loss_type, level, seed, b, t, o)
    assert ours.loss.item() == pytest.approx(theirs.item(), rel=1e-10, abs=1e-12)
    assert set(metrics) - {"entropy"} <= set(ours.metrics)
    for name, value in metrics.items():
        # TRL's global means divide in float32 (mask.sum().float()); the rest is float64
        got = ours.metrics[name].item()
        assert got == pytest.approx(value, rel=1e-6, abs=1e-7, nan_ok=True), name


@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
@given(seed=st.integers(0, 2**31 - 1), level=st.sampled_from(["token", "sequence"]), o=_OPTION_SETS)
def test_gradients_match_trl(loss_type, seed, level, o):
    (ours, a), (theirs, c, _) = _run_both(loss_type, level, seed, 4, 6, o, grad=True)
    ours.loss.backward()
    theirs.backward()
    torch.testing.assert_close(a.grad, c.grad, rtol=1e-12, atol=1e-14)


@given(
    seed=st.integers(0, 2**31 - 1),
    groups=st.integers(1, 5),
    g=st.integers(1, 6),
    scale=st.sampled_from(["group", "batch", "none"]),
)
def test_group_advantages_formula(seed, groups, g, scale):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(groups * g, generator=gen, dtype=torch.float64)
    got = group_advantages(r, g, scale=scale)
    want = []
    for i in range(groups):
        grp = r[i * g : (i + 1) * g].tolist()
        mean = sum(grp) / g
        std = (sum((x - mean) ** 2 for x in grp) / (g - 1)) ** 0.5 if g > 1 else 0.0
        for x in grp:
            want.append(x - mean)
        if scale == "group":
            want[-g:] = [w / (std + 1e-4) for w in want[-g:]]
    want_t = torch.tensor(want, dtype=torch.float64)
    if scale == "batch":
        # (TRL's nanstd forms its Bessel factor in float32; this is the exact float64 one)
        bstd = r.std() if r.numel() > 1 else torch.tensor(0.0, dtype=r.dtype)
        want_t = want_t / (bstd + 1e-4)
    torch.testing.assert_close(got, want_t, rtol=1e-12, atol=1e-12)


def test_group_advantages_nan_rewards_are_left_out():
    r = torch.tensor([1.0, float("nan"), 3.0, 2.0, 2.0, 5.0], dtype=torch.float64)
    adv = group_advantages(r, 3, scale="none")
    torch.testing.assert_close(
        adv, torch.tensor([-1.0, 0.0, 1.0, -1.0, -1.0, 2.0], dtype=torch.float64)
    )


@given(seed=st.integers(0, 2**31 - 1), loss_type=st.sampled_from(GRPO_LOSS_TYPES))
def test_on_policy_without_kl_is_minus_advantage_aggregated(seed, loss_type):
    logps, _, _, adv, mask = random_rl_batch(seed, 5, 6)
    cap = 5.0 if loss_type == "cispo" else None
    out = grpo_loss(logps, None, adv, mask, loss_type=loss_type, max_completion_length=6,
                    epsilon_high=cap)  # fmt: skip
    m = mask.double()
    per_token = -adv[:, None] * m
    # CISPO and VESPO (phi(1) = 1) are REINFORCE on-policy: -A lp; SAPO: -(2 / tau) A
    reinforce = per_token * logps
    tau = torch.where(adv > 0, 1.0, 1.05).double()[:, None]
    want = {
        "grpo": (per_token.sum(1) / m.sum(1)).mean(),
        "bnpo": per_token.sum() / m.sum(),
        "dr_grpo": per_token.sum() / (5 * 6),
        "dapo": per_token.sum() / m.sum(),
        "luspo": per_token.sum(1).mean(),
        "cispo": reinforce.sum() / m.sum(),
        "vespo": reinforce.sum() / m.sum(),
        "sapo": ((2 / tau * per_token).sum(1) / m.sum(1)).mean(),
    }[loss_type]
    torch.testing.assert_close(out.loss, want)


def test_soft_overlong_penalty_spec_cases():
    got = soft_overlong_penalty(torch.tensor([0, 80, 85, 90, 100, 101]), 100, 20)
    torch.testing.assert_close(got, torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0, -1.0]))


def test_bad_input():
    logps, old, _ref, adv, mask = random_rl_batch(0, 4, 5)
    with pytest.raises(ShapeError, match="mask must have shape"):
        grpo_loss(logps, old, adv, mask[:, :3])
    with pytest.raises(ShapeError, match="advantages"):
        grpo_loss(logps, old, adv[:3], mask)
    with pytest.raises(InvalidInputError, match="needs ref_logps"):
        grpo_loss(logps, old, adv, mask, beta=0.1)
    with pytest.raises(InvalidInputError, match="max_completion_length"):
        grpo_loss(logps, old, adv, mask, loss_type="dr_grpo")
    with pytest.raises(InvalidInputError, match="loss_type"):
        grpo_loss(logps, old, adv, mask, loss_type="ppo")
    with pytest.raises(InvalidInputError, match="pass epsilon_high"):
        grpo_loss(logps, old, adv, mask, loss_type="cispo")
    with pytest.raises(InvalidInputError, match="needs the per-token entropies"):
        grpo_loss(logps, old, adv, mask, top_entropy_quantile=0.2)
    with pytest.raises(InvalidInputError, match="top_entropy_quantile must be in"):
        grpo_loss(logps, old, adv, mask, top_entropy_quantile=1.5, entropies=logps.abs())
    bad = logps.abs().clone()
    bad[0, 0] = math.nan
    with pytest.raises(InvalidInputError, match=r"entropies\[0, 0\] = nan"):
        grpo_loss(logps, old, adv, mask, top_entropy_quantile=0.5, entropies=bad)
    with pytest.raises(InvalidInputError, match="needs sampling_logps"):
        grpo_loss(logps, old, adv, mask, sampling_correction="token_mask")
    with pytest.raises(InvalidInputError, match="sampling_correction must be one of"):
        grpo_loss(logps, old, adv, mask, sampling_logps=old, sampling_correction="tis")
    with pytest.raises(InvalidInputError, match="token-level sampling_correction"):
        grpo_loss(logps, old, adv, mask, loss_type="vespo", sampling_logps=old,
                  sampling_correction="sequence_mask")  # fmt: skip
    with pytest.raises(InvalidInputError, match="must not exceed sampling_clip_max"):
        grpo_loss(logps, old, adv, mask, sampling_logps=old, sampling_clip_min=4.0)
    with pytest.raises(InvalidInputError, match="needs a sampling_clip_min or _max"):
        grpo_loss(logps, old, adv, mask, sampling_logps=old, sampling_correction="token_truncate",
                  sampling_clip_max=None)  # fmt: skip
    with pytest.raises(ShapeError, match="sampling_logps must have shape"):
        grpo_loss(logps, old, adv, mask, sampling_logps=old[:, :2])
    with pytest.raises(TypeError, match="use_bias_correction_kl"):
        grpo_loss(logps, old, adv, mask, use_bias_correction_kl="yes")
    with pytest.raises(InvalidInputError, match="do not split into groups of 3"):
        group_advantages(torch.zeros(4), 3)
    with pytest.raises(InvalidInputError, match="scale"):
        group_advantages(torch.zeros(4), 2, scale="std")


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4))
def test_pama_loss_is_grpo_with_the_projected_advantage(seed, n):
    from fastalign.losses import pama_loss

    logps, old, _, _, mask = random_rl_batch(seed, 5, 6)
    g = torch.Generator().manual_seed(seed)
    adv = torch.randn(5, n, generator=g, dtype=torch.float64)
    out = pama_loss(logps, old, adv, mask)
    clipped = adv.clamp(min=0)
    lo, hi = clipped.min(1).values, clipped.max(1).values
    s_star = torch.where(lo > 0, lo, torch.where(hi < 0, hi, torch.zeros_like(lo)))
    want = grpo_loss(logps, old, s_star, mask)
    torch.testing.assert_close(out.loss, want.loss, rtol=0, atol=0)
    raw = pama_loss(logps, old, adv, mask, clip_advantages=False)
    lo, hi = adv.min(1).values, adv.max(1).values
    s_raw = torch.where(lo > 0, lo, torch.where(hi < 0, hi, torch.zeros_like(lo)))
    torch.testing.assert_close(raw.loss, grpo_loss(logps, old, s_raw, mask).loss, rtol=0, atol=0)


def _rank_grpo_loop(logps, old, items, rel, g, reward, eps_low=0.2, eps_high=0.2):
    b, k = rel.shape
    if reward == "dcg":
        r = [
            [sum(float(rel[i, j]) / math.log2(j + 2) for j in range(kk, k)) for kk in range(k)]
            for i in range(b)
        ]
    else:
        r = rel.tolist()
    adv = [[0.0] * k for _ in range(b)]
    for start in range(0, b, g):
        for kk in range(k):
            col = [r[i][kk] for i in range(start, start + g)]
            m = sum(col) / g
            sd = (sum((c - m) ** 2 for c in col) / (g - 1)) ** 0.5
            for i in range(start, start + g):
                adv[i][kk] = (r[i][kk] - m) / (sd + 1e-4)
    terms, per_seq = [], []
    for i in range(b):
        row = []
        for kk in range(k):
            toks = [t for t in range(logps.shape[1]) if int(items[i, t]) == kk]
            if not toks:
                continue
            u = math.exp(sum(float(logps[i, t] - old[i, t]) for t in toks) / len(toks))
            a = adv[i][kk]
            row.append(-min(u * a, min(max(u, 1 - eps_low), 1 + eps_high) * a))
        terms += row
        per_seq.append(sum(row) / max(len(row), 1))
    return sum(terms) / max(len(terms), 1), per_seq


@given(
    seed=st.integers(0, 2**31 - 1),
    reward=st.sampled_from(["dcg", "relevance"]),
    k=st.integers(1, 4),
)
def test_rank_grpo_against_loop(seed, reward, k):
    from fastalign.losses import rank_grpo_loss

    g = torch.Generator().manual_seed(seed)
    b, t, group = 4, 9, 2
    logps = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    old = logps + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    items = torch.randint(-1, k, (b, t), generator=g)
    rel = torch.rand(b, k, generator=g, dtype=torch.float64)
    out = rank_grpo_loss(logps, old, items, rel, group, reward=reward)
    want, per_seq = _rank_grpo_loop(logps, old, items, rel, group, reward)
    assert out.loss.item() == pytest.approx(want, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(out.losses, torch.tensor(per_seq, dtype=torch.float64))


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_group_with_one_scored_completion(scale):
    """A group whose other completions are unscorable: its std is undefined (NaN), and TRL's
    GRPOTrainer zeroes every NaN advantage (it gave NaN here, and grpo_loss a NaN loss)."""
    r = torch.tensor([float("nan"), 1.0, 0.2, 0.9], dtype=torch.float64)
    adv = group_advantages(r, 2, scale=scale)
    assert not torch.isnan(adv).any()
    assert adv[:2].tolist() == [0.0, 0.0]  # the lone scored completion is its group's mean
    if scale == "group":
        d = 0.35 / (0.7 / 2**0.5 + 1e-4)
        torch.testing.assert_close(adv, torch.tensor([0.0, 0.0, -d, d], dtype=torch.float64))
    logps, _, _, _, mask = random_rl_batch(0, 4, 5)
    assert torch.isfinite(grpo_loss(logps, None, adv, mask).loss)


def test_group_advantages_refuses_infinite_rewards():
    with pytest.raises(InvalidInputError, match=r"rewards\[2\] is inf"):
        group_advantages(torch.tensor([0.0, 1.0, float("inf"), 2.0]), 2)


# -- multi-objective aggregation, as TRL 1.16's GRPOTrainer computes it --------------------
# TRL computes the advantages inline in GRPOTrainer._generate_and_score_completions (not
# callable alone); _trl_advantages transcribes that block, and the test below checks that
# the installed TRL still holds the transcribed lines.

_TRL_LINES = (
    "rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)",
    "mean_k = torch.nanmean(grouped, dim=1, keepdim=True)",
    "std_k = nanstd(grouped, dim=1, keepdim=True) if num_generations > 1 else "
    "torch.zeros_like(mean_k)",
    "reward_k = (grouped - mean_k) / (std_k + 1e-4)",
    "advantages = (rewards - torch.nanmean(rewards)) / (std_rewards + 1e-4)",
    "unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)",
    "advantages = torch.nan_to_num(advantages, nan=0.0)",
)


def _exact_nanstd(x, dim=None, keepdim=False):
    """TRL's nanstd with the Bessel factor in float64 (TRL forms it in float32)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=keepdim)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=keepdim).to(torch.float64)
    return torch.sqrt(var * count / (count - 1))


def _trl_advantages(per_func, weights, g, scale, aggregation, nanstd=None):
    if nanstd is None:
        from trl.trainer.utils import nanstd

    unscorable = torch.isnan(per_func).all(dim=1)
    if aggregation == "sum_then_normalize":
        rewards = (per_func * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        mean = torch.nanmean(rewards.view(-1, g), dim=1).repeat_interleave(g, dim=0)
        if scale in ("group", "none"):
            std = (nanstd(rewards.view(-1, g), dim=1).repeat_interleave(g, dim=0) if g > 1
                   else torch.zeros_like(rewards))  # fmt: skip
        else:
            std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else 0 * rewards
        adv = rewards - mean
        if scale != "none":
            adv = adv / (std + 1e-4)
    else:
        grouped = per_func.view(-1, g, per_func.shape[1])
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if g > 1 else torch.zeros_like(mean_k)
        reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, per_func.shape[1])
        rewards = (reward_k * weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else 0 * rewards
        adv = (rewards - torch.nanmean(rewards)) / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


def test_trl_still_computes_advantages_as_transcribed():
    import inspect

    trl = pytest.importorskip("trl")
    src = " ".join(inspect.getsource(trl.GRPOTrainer._generate_and_score_completions).split())
    for line in _TRL_LINES:
        assert " ".join(line.split()) in src, line


@example(seed=54144, groups=3, g=4, k=3, scale="group", aggregation="normalize_then_sum",
         nan_frac=0.3)  # fmt: skip
@given(
    seed=st.integers(0, 2**31 - 1),
    groups=st.integers(1, 4),
    g=st.integers(1, 5),
    k=st.integers(1, 3),
    scale=st.sampled_from(["group", "batch", "none"]),
    aggregation=st.sampled_from(["sum_then_normalize", "normalize_then_sum"]),
    nan_frac=st.sampled_from([0.0, 0.3]),
)
def test_multi_objective_aggregation_equals_trl(seed, groups, g, k, scale, aggregation, nan_frac):
    pytest.importorskip("trl")
    if aggregation == "normalize_then_sum":
        scale = "group"
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(groups * g, k, generator=gen, dtype=torch.float64)
    r[torch.rand(r.shape, generator=gen) < nan_frac] = float("nan")
    w = torch.rand(k, generator=gen, dtype=torch.float64) + 0.5
    got = group_advantages(r, g, scale=scale, aggregation=aggregation, reward_weights=w)
    # the transcription with the Bessel factor in float64: equal to rounding
    exact = _trl_advantages(r, w, g, scale, aggregation, nanstd=_exact_nanstd)
    torch.testing.assert_close(got, exact, rtol=1e-12, atol=1e-12)
    # with TRL's own nanstd, whose float32 factor (~6e-8 relative) the normalizations amplify
    want = _trl_advantages(r, w, g, scale, aggregation)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_one_column_is_the_one_dimensional_call():
    r = torch.tensor([1.0, float("nan"), 3.0, 2.0, 2.0, 5.0], dtype=torch.float64)
    for scale in ("group", "batch", "none"):
        torch.testing.assert_close(group_advantages(r[:, None], 3, scale=scale),
                                   group_advantages(r, 3, scale=scale))  # fmt: skip


def test_aggregation_checks():
    r = torch.ones(4, 2)
    with pytest.raises(ShapeError, match="reward_weights must have shape"):
        group_advantages(r, 2, reward_weights=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match="aggregation"):
        group_advantages(r, 2, aggregation="mean")
    with pytest.raises(InvalidInputError, match="scale applies"):
        group_advantages(r, 2, aggregation="normalize_then_sum", scale="batch")
    with pytest.raises(InvalidInputError, match=r"reward_weights must be finite"):
        group_advantages(r, 2, reward_weights=[1.0, float("nan")])
    with pytest.raises(InvalidInputError, match=r"rewards\[1, 0\] is inf"):
        group_advantages(torch.tensor([[1.0, 0.0], [float("inf"), 0.0]]), 2)


@given(
    values=st.lists(st.floats(0, 10, width=32), min_size=1, max_size=40),
    q=st.floats(0, 1),
)
def test_quantile_equals_torch_quantile(values, q):
    from fastalign.losses._grpo_terms import quantile

    x = torch.tensor(values, dtype=torch.float64)
    assert quantile(x, q).item() == torch.quantile(x, q).item()
