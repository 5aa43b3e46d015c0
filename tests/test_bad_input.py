"""Out-of-domain options that used to give plausible output: each is an error of the family's
type whose message names the argument (every numeric option is checked by
``fastalign._validate``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastalign import pareto
from fastalign.errors import InvalidInputError
from fastalign.losses import (
    BetaDPO,
    dpa_reward,
    group_advantages,
    grpo_loss,
    kto,
    nash_md,
    preference_loss,
    slic,
    token_preference_loss,
)

NAN, INF = math.nan, math.inf


def _grpo(**kw):
    lp = torch.zeros(2, 3)
    return grpo_loss(lp, None, torch.ones(2), torch.ones(2, 3), ref_logps=lp, **kw)


def _pref(**kw):
    z = torch.zeros(2)
    return preference_loss(z, z, z, z, **kw)


def _nash(p):
    lp = torch.zeros(2, 3)
    return nash_md(lp, lp, torch.ones(2, 3), torch.tensor(p))


R = np.array([[1.0, 2.0], [3.0, -1.0]])
CASES = [
    # (what, call, exception, message)
    ("grpo beta=nan", lambda: _grpo(beta=NAN), InvalidInputError, "^beta must not be NaN"),
    ("grpo beta=-1", lambda: _grpo(beta=-1.0), InvalidInputError, r"^beta must be in \[0"),
    ("grpo delta=-1", lambda: _grpo(delta=-1.0), InvalidInputError, "^delta must be a finite"),
    ("grpo delta=nan", lambda: _grpo(delta=NAN), InvalidInputError, "^delta must be a finite"),
    (
        "dr_grpo max_completion_length=-5",
        lambda: _grpo(loss_type="dr_grpo", max_completion_length=-5),
        InvalidInputError,
        "^max_completion_length must be >= 1",
    ),
    (
        "dapo num_items_in_batch=0",
        lambda: _grpo(loss_type="dapo", num_items_in_batch=0),
        InvalidInputError,
        "^num_items_in_batch must be a finite number > 0",
    ),
    (
        "group_advantages eps=-1",
        lambda: group_advantages(torch.ones(4), 2, eps=-1.0),
        InvalidInputError,
        r"^eps must be in \[0",
    ),
    (
        "group_advantages eps=nan",
        lambda: group_advantages(torch.ones(4), 2, eps=NAN),
        InvalidInputError,
        "^eps must not be NaN",
    ),
    (
        "group_advantages group_size=2.0",
        lambda: group_advantages(torch.ones(4), 2.0),
        TypeError,
        "^group_size must be an int",
    ),
    (
        "kto z0=inf",
        lambda: kto(torch.zeros(2), torch.zeros(2), torch.tensor([1, 0]), z0=INF),
        InvalidInputError,
        "^z0 must be finite",
    ),
    (
        "kto z0=tensor(nan)",
        lambda: kto(torch.zeros(2), torch.zeros(2), torch.tensor([1, 0]), z0=torch.tensor(NAN)),
        InvalidInputError,
        "^z0 must be one finite number",
    ),
    ("nash_md probability=2", lambda: _nash([2.0, 0.5]), InvalidInputError, "^probability must"),
    ("nash_md probability=nan", lambda: _nash([NAN, 0.5]), InvalidInputError, "^probability"),
    ("BetaDPO alpha=nan", lambda: BetaDPO(alpha=NAN), InvalidInputError, "^alpha must not be NaN"),
    ("BetaDPO rho=1", lambda: BetaDPO(rho=1.0), InvalidInputError, r"^rho must be in \[0"),
    (
        "f_alpha=inf",
        lambda: _pref(f_divergence="alpha_divergence", f_alpha=INF),
        InvalidInputError,
        "^f_alpha must be finite",
    ),
    (
        "token f_alpha=inf",
        lambda: token_preference_loss(
            torch.zeros(4, 3),
            torch.ones(4, 3, dtype=torch.bool),
            torch.zeros(2),
            torch.zeros(2),
            f_alpha=INF,
        ),
        InvalidInputError,
        "^f_alpha must be finite",
    ),
    (
        "slic lam=nan",
        lambda: slic(torch.zeros(2), torch.zeros(2), lam=NAN),
        InvalidInputError,
        "^lam must not be NaN",
    ),
    (
        "dpa_rewards atol=nan",
        lambda: pareto.dpa_rewards(R, [0.6, 0.8], atol=NAN),
        InvalidInputError,
        "^atol must not be NaN",
    ),
    (
        "dpa_rewards direction=nan",
        lambda: pareto.dpa_rewards(R, [NAN, 0.8]),
        InvalidInputError,
        r"^direction must be finite: direction\[0\] = nan",
    ),
    (
        "dpa_rewards complex R",
        lambda: pareto.dpa_rewards(R + 1j, [0.6, 0.8]),
        TypeError,
        "^R must hold real numbers, got dtype complex128",
    ),
    (
        "dpa_reward atol=nan",
        lambda: dpa_reward(
            torch.tensor(R), torch.tensor([0.6, 0.8], dtype=torch.float64), atol=NAN
        ),
        InvalidInputError,
        "^atol must not be NaN",
    ),
    (
        "dpa_reward direction=nan",
        lambda: dpa_reward(torch.tensor(R), torch.tensor([NAN, 0.8], dtype=torch.float64)),
        InvalidInputError,
        "^direction must be finite",
    ),
    (
        "mgda indefinite",
        lambda: pareto.mgda_weights([[1.0, 2.0], [2.0, 1.0]]),
        InvalidInputError,
        "^gram is not positive semidefinite",
    ),
    (
        "mgda batched indefinite",
        lambda: pareto.mgda_weights([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]),
        InvalidInputError,
        r"^gram\[1\] is not positive semidefinite",
    ),
    (
        "mgda tol=nan",
        lambda: pareto.mgda_weights([[1.0]], tol=NAN),
        InvalidInputError,
        "^tol must be a finite number > 0",
    ),
]


@pytest.mark.parametrize(("what", "call", "exc", "match"), CASES, ids=[c[0] for c in CASES])
def test_out_of_domain_options_are_named_errors(what, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_in_domain_edges_still_work():
    """The edges of each domain are accepted: beta=0, eps=0, probability 0 and 1, a PSD
    Gram matrix with a zero eigenvalue."""
    assert torch.isfinite(_grpo(beta=0.0).loss)
    assert torch.isfinite(group_advantages(torch.tensor([1.0, 2.0]), 2, eps=0.0)).all()
    assert torch.isfinite(_nash([0.0, 1.0]).loss)
    np.testing.assert_allclose(pareto.mgda_weights([[1.0, 1.0], [1.0, 1.0]]).sum(), 1.0)


def test_float32_gram_of_dependent_gradients_is_accepted():
    """Gradients a, b, a + b in float32: the Gram matrix is PSD up to float32 rounding (its
    smallest eigenvalue comes out slightly negative); only clearly indefinite ones are refused."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.standard_normal((2, 4096)).astype(np.float32)
        g = np.stack([a, b, a + b])
        w = pareto.mgda_weights(g @ g.T)
        assert abs(w.sum() - 1.0) < 1e-9


def _empty(*shape):
    return torch.zeros(0, *shape, dtype=torch.float64, requires_grad=True)


EMPTY_BATCH = {
    "preference_loss": lambda z: preference_loss(z, z, z, z),
    "preference_loss ipo": lambda z: preference_loss(
        z, z, z, z, loss_type="ipo", chosen_lengths=torch.zeros(0), rejected_lengths=torch.zeros(0)
    ),
    "slic": lambda z: slic(z, z),
    "kto": lambda z: kto(z, z, torch.zeros(0, dtype=torch.bool), z0=0.0),
    "grpo": lambda z: grpo_loss(_empty(3), None, torch.zeros(0), torch.ones(0, 3)),
    "grpo bnpo": lambda z: grpo_loss(
        _empty(3), None, torch.zeros(0), torch.ones(0, 3), loss_type="bnpo"
    ),
    "token_preference_loss": lambda z: token_preference_loss(
        _empty(3), torch.ones(0, 3, dtype=torch.bool), z, z
    ),
    "BetaDPO": lambda z: BetaDPO()(z, z, z, z),
}


@pytest.mark.parametrize("name", sorted(EMPTY_BATCH))
def test_an_empty_batch_is_a_zero_loss_with_a_graph(name):
    """B = 0 gave a NaN loss (the mean of nothing): now 0, still connected to the inputs, so
    backward runs (a data-parallel rank with an empty batch keeps in step)."""
    z = _empty()
    out = EMPTY_BATCH[name](z)
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    out.loss.backward()
    assert out.losses.shape[0] == 0


def test_beta_dpo_state_is_untouched_by_an_empty_batch():
    module = BetaDPO()
    z = _empty()
    module(torch.zeros(4) - 1, torch.zeros(4) - 2, torch.zeros(4), torch.zeros(4))
    m0, s0 = module.m0.clone(), module.s0.clone()
    module(z, z, z, z)
    assert torch.equal(module.m0, m0)
    assert torch.equal(module.s0, s0)
