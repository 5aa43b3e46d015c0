"""Module dependency graphs of the Python package and the Rust crates, and their cycles.

Python: every ``import`` / ``from ... import`` statement of every module under a package,
function-level (lazy) imports included, those under ``if TYPE_CHECKING:`` left out; ``from a
import b`` is an edge to ``a.b`` when that is a module, else to ``a``; relative imports are
resolved.

Rust: every module file reachable from ``lib.rs`` (through ``mod x;``) is a node; inline
modules belong to their file. An edge A -> B is a reference in code (comments and string /
char literals blanked first) through a ``use`` tree (``pub use`` too) or a qualified path
(``crate::a``, ``super::x``, ``self::x``, ``child::x``), resolved to the deepest module it
names. A ``#[cfg(test)]`` module's reference to its own parent is natural and left out.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

Graph = dict[str, set[str]]


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    nodes = sorted(set(graph) | {w for ws in graph.values() for w in ws})

    def strong(v: str) -> None:  # iterative, so deep graphs cannot overflow the stack
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strong(v)
    return out


# -- Python ------------------------------------------------------------------------------------


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    for n in ast.walk(sub):
                        if hasattr(n, "lineno"):
                            lines.add(n.lineno)
    return lines


def python_graph(package_dir: str | Path) -> Graph:
    """Module -> modules it imports, within the package at ``package_dir``."""
    root = Path(package_dir)
    package = root.name
    files = {_module_name(root, p): p for p in root.rglob("*.py")}
    graph: Graph = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_lines(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")
                    up = parts if is_pkg else parts[:-1]
                    up = up[: len(up) - (node.level - 1)]
                    base = ".".join([*up, *([base] if base else [])])
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in files else base)
            for t in targets:
                while t and t not in files and t.startswith(package):
                    t = t.rpartition(".")[0]  # `import a.b.c` of a non-module: its module
                if t in files and t != mod:
                    graph[mod].add(t)
    return graph


# -- Rust --------------------------------------------------------------------------------------

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CHAR = re.compile(r"b?'(?:\\u\{[0-9a-fA-F]{1,6}\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'")
_RAW = re.compile(r'b?r(#*)"')


def _word_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


def blank(text: str) -> str:
    """Rust source with comments and string / char literals replaced by spaces (newlines
    kept, so positions and line numbers stay)."""
    out: list[str] = []
    i, n = 0, len(text)

    def spaces(s: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
        elif (m := _RAW.match(text, i)) and not _word_before(text, i):
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
        elif c == '"' or (text.startswith('b"', i) and not _word_before(text, i)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        elif c in "'b" and (m := _CHAR.match(text, i)) and (c == "'" or not _word_before(text, i)):
            j = m.end()
        else:
            out.append(c)
            i += 1
            continue
        out.append(spaces(text[i:j]))
        i = j
    return "".join(out)


def _cfg_test_before(code: str, pos: int) -> bool:
    """Whether the attributes right before ``pos`` include ``#[cfg(test)]``."""
    head = code[:pos].rstrip()
    while head.endswith("]"):
        depth, j = 0, len(head) - 1
        while j >= 0:
            if head[j] == "]":
                depth += 1
            elif head[j] == "[":
                depth -= 1
                if depth == 0:
                    break
            j -= 1
        if j <= 0 or head[j - 1] != "#":
            break
        if re.fullmatch(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]", head[j - 1 :]):
            return True
        head = head[: j - 1].rstrip()
    return False


_MOD = re.compile(r"(?<![\w:])(?:pub\s*(?:\([^)]*\))?\s*)?mod\s+(" + IDENT + r")\s*([;{])")


class _RustFile:
    def __init__(self, path: str, mod: tuple[str, ...], is_test: bool) -> None:
        self.path, self.mod, self.is_test = path, mod, is_test
        with open(path, encoding="utf-8") as f:
            self.code = blank(f.read())
        self.inline: list[tuple[int, int, str, bool]] = []  # braces span, name, test
        self.decls: list[tuple[str, bool, int]] = []  # `mod x;`: name, test, position
        for m in _MOD.finditer(self.code):
            test = _cfg_test_before(self.code, m.start())
            if m.group(2) == ";":
                self.decls.append((m.group(1), test, m.start()))
                continue
            start, depth, j = m.end() - 1, 0, m.end() - 1
            while j < len(self.code):
                depth += {"{": 1, "}": -1}.get(self.code[j], 0)
                if depth == 0:
                    break
                j += 1
            self.inline.append((start, j, m.group(1), test))

    def module_at(self, pos: int) -> tuple[tuple[str, ...], bool]:
        mod, test = self.mod, self.is_test
        for start, end, name, t in sorted(self.inline):
            if start < pos < end:
                mod, test = (*mod, name), test or t
        return mod, test


def _use_leaves(tree: str) -> list[list[str]]:
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+" + IDENT, "", tree))
    out: list[list[str]] = []

    def walk(prefix: list[str], s: str) -> None:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += (ch == "{") - (ch == "}")
            cur += ch
        parts.append(cur)
        for p in filter(None, parts):
            if "{" in p:
                head, rest = p.split("{", 1)
                walk(prefix + [x for x in head.split("::") if x], rest[:-1])
            else:
                segs = [x for x in p.split("::") if x]
                out.append(list(prefix) if segs == ["self"] else prefix + segs)

    walk([], tree)
    return out


def _resolve(segs: list[str], cur: tuple[str, ...], known: dict) -> tuple[str, ...] | None:
    segs = [s for s in segs if s != "*"]
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] == "self":
        base, rest = cur, segs[1:]
    elif segs[0] == "super":
        base, rest = cur, segs
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif (*cur, segs[0]) in known:
        base, rest = cur, segs
    else:
        return None  # an external crate's path
    for s in rest:
        if (*base, s) not in known:
            break
        base = (*base, s)
    return base


def rust_graph(src: str | Path) -> Graph:
    """File module -> file modules it refers to, for the crate whose ``lib.rs`` is in
    ``src``; nodes are named ``crate``, ``crate::a::b``."""
    files: dict[tuple[str, ...], _RustFile] = {}
    known: dict[tuple[str, ...], bool] = {}
    todo = [(os.path.join(src, "lib.rs"), (), False)]
    while todo:
        path, mod, test = todo.pop()
        f = files[mod] = _RustFile(path, mod, test)
        known[mod] = test
        d, base = os.path.dirname(path), os.path.basename(path)
        child_dir = d if base in ("lib.rs", "mod.rs", "main.rs") else os.path.join(d, base[:-3])
        for start, _end, _name, t in f.inline:
            known[f.module_at(start + 1)[0]] = test or t
        for name, t, pos in f.decls:
            parent, ptest = f.module_at(pos)
            sub = parent[len(mod) :]
            for cand in (os.path.join(child_dir, *sub, name + ".rs"),
                         os.path.join(child_dir, *sub, name, "mod.rs")):  # fmt: skip
                if os.path.exists(cand):
                    todo.append((cand, (*parent, name), ptest or t))
                    break
            else:
                raise FileNotFoundError(f"no file for `mod {name};` in {path}")

    def file_of(m: tuple[str, ...]) -> tuple[str, ...]:
        while m not in files:
            m = m[:-1]
        return m

    def name(m: tuple[str, ...]) -> str:
        return "::".join(("crate", *m))

    path_re = re.compile(
        r"(?<![\w:])((?:crate|super|self|" + IDENT + r")(?:\s*::\s*(?:" + IDENT + r"|\*|\{))+)"
    )
    use_re = re.compile(r"(?<![\w:])use\s+([^;]+);")
    graph: Graph = {name(m): set() for m in files}
    for f in files.values():
        refs: list[tuple[tuple[str, ...], list[str]]] = []
        spans = []
        for m in use_re.finditer(f.code):
            spans.append((m.start(), m.end()))
            cur = f.module_at(m.start())[0]
            refs += [(cur, leaf) for leaf in _use_leaves(m.group(1))]
        for m in path_re.finditer(f.code):
            if any(a <= m.start() < b for a, b in spans):
                continue
            segs = [s for s in re.split(r"\s*::\s*", m.group(1)) if s and s not in "{*"]
            cur = f.module_at(m.start())[0]
            if segs[0] in ("crate", "super", "self") or (*cur, segs[0]) in known:
                refs.append((cur, segs))
        for cur, segs in refs:
            target = _resolve(segs, cur, known)
            if target is None or (known.get(cur) and target == cur[:-1]):
                continue  # extern, or a test module's use of its own parent
            a, b = file_of(cur), file_of(target)
            if a != b:
                graph[name(a)].add(name(b))
    return graph
