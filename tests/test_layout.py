"""The layout's rules, read off the source: no import circle in the Python package (lazy,
function-level imports included) or in the Rust crates; argument checks in one module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from _import_graph import cycles, python_graph, rust_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "fastalign"
CRATES = [ROOT / "rust" / "fastalign-core" / "src", ROOT / "rust" / "fastalign-py" / "src"]


def test_no_import_circle_in_the_python_package():
    graph = python_graph(PACKAGE)
    assert len(graph) > 50  # the whole package was read
    assert cycles(graph) == []


@pytest.mark.parametrize("src", CRATES, ids=lambda p: p.parent.name)
def test_no_module_circle_in_the_rust_crates(src):
    graph = rust_graph(src)
    assert len(graph) > 5
    assert cycles(graph) == []


def test_the_checks_find_circles(tmp_path):
    """The readers see what makes a circle: a lazy Python import, a relative one, a Rust
    `use super::`, a qualified `crate::` path; and not what does not (TYPE_CHECKING imports,
    a test module's use of its parent)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\nimport pkg.a\n"
    )
    (pkg / "d.py").write_text("from pkg import c\n")
    assert cycles(python_graph(pkg)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]

    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "lib.rs").write_text("pub mod x;\npub mod y;\npub mod z;\n")
    (src / "x" / "mod.rs").write_text(
        "mod inner;\npub fn f() { crate::y::g() }\n// use crate::z; (a comment)\n"
    )
    (src / "x" / "inner.rs").write_text(
        'pub fn h() { let _ = "crate::z::k"; super::f() }\n'
        "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"
    )
    (src / "y.rs").write_text("use super::x::f;\npub fn g() {}\n")
    (src / "z.rs").write_text("pub fn k() {}\n#[cfg(test)]\nmod tests { use crate::x; }\n")
    assert cycles(rust_graph(src)) == [["crate::x", "crate::y"]]


def _function_defs(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]


def test_argument_checks_live_in_validate():
    """No module but ``_validate`` defines a ``check_*`` function: one vocabulary of checks."""
    elsewhere = {
        str(p.relative_to(PACKAGE)): names
        for p in PACKAGE.rglob("*.py")
        if p.name != "_validate.py"
        and (names := [n for n in _function_defs(p) if n.lstrip("_").startswith("check_")])
    }
    assert elsewhere == {}
