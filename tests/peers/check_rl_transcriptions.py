"""Check fastalign.reference.rl's transcriptions of verl's and OpenRLHF's estimators against
the packages themselves, in float64 (not collected by pytest: neither package installs
beside the test environment).

Usage, with the two wheels unpacked on PYTHONPATH (``pip download --no-deps verl openrlhf``)::

    PYTHONPATH=unpacked python tests/peers/check_rl_transcriptions.py --stub

``--stub`` stands in empty modules for the heavy imports the two packages make at import time
but these functions never call (tensordict, ray, flash-attn, deepspeed, ...). Prints the max
|difference| per function and exits non-zero above 1e-12.
"""

from __future__ import annotations

import importlib
import sys
import types


def _stub_missing(root: str) -> None:
    """Import ``root``, standing in a permissive empty module for each missing import."""

    class _Any(types.ModuleType):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.__path__: list[str] = []

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": lambda self, *a, **k: None,
                                   "__call__": lambda self, *a, **k: None})  # fmt: skip

    for _ in range(200):
        try:
            importlib.import_module(root)
            return
        except ModuleNotFoundError as e:
            name = e.name
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sys.modules.setdefault(".".join(parts[:i]), _Any(".".join(parts[:i])))
    raise RuntimeError(f"could not import {root}")


def main() -> int:
    import torch

    from fastalign import rl
    from fastalign.reference import rl as ref

    if "--stub" in sys.argv:
        _stub_missing("verl.trainer.ppo.core_algos")
        _stub_missing("openrlhf.models.utils")
    from openrlhf.models import utils as orl
    from verl.trainer.ppo import core_algos as ca
    from verl.utils import torch_functional as vf

    g = torch.Generator().manual_seed(0)
    b, t, k = 12, 9, 3
    mask = (torch.rand(b, t, generator=g) < 0.8).long()
    mask[:, 0] = 1
    tok = torch.randn(b, t, generator=g, dtype=torch.float64) * mask
    scores = torch.randn(b, generator=g, dtype=torch.float64)
    logp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 20
    refp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 20
    old = logp + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.5
    cfg = types.SimpleNamespace(gamma=0.9)
    worst = {}

    def diff(name, a, c):
        worst[name] = max(worst.get(name, 0.0), float((a - c).detach().abs().max()))

    diff("masked_whiten", ref.verl_masked_whiten(tok, mask), vf.masked_whiten(tok, mask))
    # verl forms the whitening's Bessel factor n / (n - 1) from the mask's sum: in float32
    # for an integer mask (a ~1e-8 relative difference), exactly for a float64 one
    a, _ = ca.compute_reinforce_plus_plus_outcome_advantage(tok, mask, config=cfg)
    diff(
        "reinforce_pp (verl, int mask: float32 Bessel)", ref.verl_reinforce_pp(tok, mask, 0.9)[0], a
    )
    a, r = ca.compute_reinforce_plus_plus_outcome_advantage(tok, mask.double(), config=cfg)
    a2, r2 = ref.verl_reinforce_pp(tok, mask, 0.9)
    diff("reinforce_pp", a2, a)
    diff("reinforce_pp returns", r2, r)
    index = [i // k for i in range(b)]
    outcome = torch.zeros_like(tok)
    last = t - 1 - mask.flip(1).argmax(1)
    outcome[torch.arange(b), last] = scores
    a, _ = ca.compute_reinforce_plus_plus_baseline_outcome_advantage(outcome, mask.double(), index)
    diff("reinforce_pp_baseline", ref.verl_reinforce_pp_baseline(scores, mask, k), a)
    base = torch.randn(b, generator=g, dtype=torch.float64)
    a, r = ca.compute_remax_outcome_advantage(tok, base, mask)
    a2, r2 = ref.verl_remax(tok, base, mask)
    diff("remax", a2, a)
    diff("remax returns", r2, r)
    for kind in ("k1", "k2", "k3", "abs", "k3+", "k1+"):
        lp1 = logp.clone().requires_grad_(True)
        lp2 = logp.clone().requires_grad_(True)
        v1 = ca.kl_penalty(lp1, refp, kind)
        v2 = ref.verl_kl_penalty(lp2, refp, kind)
        diff(f"verl kl {kind}", v2, v1)
        v1.sum().backward()
        v2.sum().backward()
        diff(f"verl kl {kind} grad", lp2.grad, lp1.grad)
    for kind in ("k1", "k2", "k3"):
        for unbiased in (False, True):
            for o in (None, old):
                lp1 = logp.clone().float().requires_grad_(True)
                lp2 = logp.clone().float().requires_grad_(True)
                of = None if o is None else o.float()
                v1 = orl.compute_approx_kl(lp1, refp.float(), of, kind, unbiased)
                v2 = ref.openrlhf_approx_kl(lp2, refp.float(), of, kind, unbiased)
                diff(f"openrlhf kl {kind} (float32)", v2, v1)
                v1.sum().backward()
                v2.sum().backward()
                diff(f"openrlhf kl {kind} grad (float32)", lp2.grad, lp1.grad)
    # and fastalign itself against the transcriptions (what tests/test_rl.py does)
    a, _ = rl.reinforce_plus_plus(tok, mask, gamma=0.9)
    diff("fastalign reinforce_plus_plus vs verl", a, ref.verl_reinforce_pp(tok, mask, 0.9)[0])
    for name, d in worst.items():
        print(f"{name:40s} {d:.3e}")
    exact = {k: v for k, v in worst.items() if "float32 Bessel" not in k}
    return 0 if max(exact.values()) <= 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
