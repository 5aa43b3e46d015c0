"""The examples in the public docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "fastalign",
        "fastalign.bleu",
        "fastalign.bench",
        "fastalign.dedup",
        "fastalign.dedup.index",
        "fastalign.dedup.local",
        "fastalign.dedup.records",
        "fastalign.errors",
        "fastalign.integrations.hf",
        "fastalign.logprobs",
        "fastalign.losses.beta_dpo",
        "fastalign.losses.fused_linear",
        "fastalign.losses.game",
        "fastalign.losses.grpo",
        "fastalign.losses.preference",
        "fastalign.losses.reference_free",
        "fastalign.losses.token_preference",
        "fastalign.pareto",
        "fastalign.rank",
        "fastalign.rewards",
        "fastalign.rl",
        "fastalign.divergence._api",
        "fastalign.rl._advantages",
        "fastalign.rl._estimators",
    ],
)
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.S)[:1]
    exec(compile(code, "README.md", "exec"), {})
