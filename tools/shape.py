"""The package's shape, checked: no file over 400 lines, no class over 200, no function over 60
(methods and nested functions included); no import circle between modules (imports inside
functions and under ``if TYPE_CHECKING`` included); and the layering rules below.

    python tools/shape.py            # report and exit 1 on any finding
    python tools/shape.py --report   # report only (exit 0)

Reads the source with :mod:`ast`; imports nothing of watcherd.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "watcherd"
MAX_FILE, MAX_CLASS, MAX_FUNCTION = 400, 200, 60
#: What each package must not import (docs/architecture.md). media, store and search are plain
#: libraries: they take values and know nothing of the daemon's machinery. Above them the
#: layers run broker < dispatch < fleet < worker, watch < web, cli: nothing imports upward.
_DAEMON = ("celery", "kombu", "click", "watcherd.config")
_UPPER = ("watcherd.worker", "watcherd.watch", "watcherd.web", "watcherd.cli",
          "watcherd.supervisor", "watcherd.install")
FORBIDDEN = {
    "watcherd.media": (*_DAEMON, "watcherd.store", "watcherd.search"),
    "watcherd.store": (*_DAEMON, "watcherd.media", "watcherd.search"),
    "watcherd.metadata": (*_DAEMON, "watcherd.store", "watcherd.search", "watcherd.media"),
    "watcherd.search": _DAEMON,
    "watcherd.broker": ("watcherd.store", "watcherd.dispatch", "watcherd.fleet", *_UPPER),
    "watcherd.dispatch": ("watcherd.fleet", *_UPPER),
    "watcherd.fleet": _UPPER,
    "watcherd.worker": ("watcherd.watch", "watcherd.web", "watcherd.cli", "watcherd.supervisor"),
    "watcherd.watch": ("watcherd.worker", "watcherd.web", "watcherd.cli", "watcherd.supervisor"),
    "watcherd.web": ("watcherd.worker", "watcherd.watch", "watcherd.cli", "watcherd.supervisor"),
    # config is read by every layer, so it reads none of them (only watcherd.meta).
    "watcherd.config": ("celery", "kombu", "click", "watcherd.media", "watcherd.store",
                        "watcherd.search", "watcherd.broker", "watcherd.dispatch",
                        "watcherd.fleet", *_UPPER),
    # install-systemd's work: pure functions that render and write files (the command prints).
    "watcherd.install": ("celery", "kombu", "click", "watcherd.broker", "watcherd.dispatch",
                         "watcherd.fleet", "watcherd.worker", "watcherd.watch", "watcherd.web",
                         "watcherd.cli", "watcherd.supervisor"),
}


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _sized(tree: ast.AST) -> Iterator[tuple[str, str, int, int]]:
    """(kind, qualified name, first line, length) of every class and function."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                end = child.end_lineno or child.lineno
                yield kind, name, child.lineno, end - child.lineno + 1
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def _imports(name: str, path: Path, tree: ast.AST) -> set[str]:
    """Every module this one imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def check(root: Path = ROOT) -> list[Finding]:
    mods = modules(root)
    findings: list[Finding] = []
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        source = path.read_text()
        rel = str(path.relative_to(root))
        lines = source.count("\n") + (not source.endswith("\n"))
        if lines > MAX_FILE:
            findings.append(Finding(rel, f"{lines} lines (limit {MAX_FILE})"))
        tree = ast.parse(source, rel)
        for kind, qual, line, length in _sized(tree):
            limit = MAX_CLASS if kind == "class" else MAX_FUNCTION
            if length > limit:
                findings.append(Finding(f"{rel}:{line}", f"{kind} {qual}: {length} lines "
                                        f"(limit {limit})"))
        imported = _imports(name, path, tree)
        graph[name] = {m for m in imported if m in mods and m != name}
        for package, banned in FORBIDDEN.items():
            if name == package or name.startswith(package + "."):
                bad = {m for m in imported if any(m == b or m.startswith(b + ".")
                                                  for b in banned)}
                findings.extend(Finding(rel, f"imports {m} ({package} must not)")
                                for m in sorted(bad) if m.rpartition(".")[0] not in bad)
    findings.extend(Finding(" -> ".join(c), "import circle") for c in cycles(graph))
    return findings


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted.
    A package's ``__init__`` importing its own submodules is no circle of concern when the
    submodules do not import it back; one that does is reported."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="report only; exit 0")
    args = parser.parse_args(argv)
    findings = check()
    for f in findings:
        print(f)
    print(f"shape: {len(findings)} findings (files <= {MAX_FILE} lines, classes <= {MAX_CLASS}, "
          f"functions <= {MAX_FUNCTION}, no import circle, layering)")
    return 0 if args.report or not findings else 1


if __name__ == "__main__":
    sys.exit(main())
