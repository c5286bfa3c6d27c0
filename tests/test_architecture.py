"""The code's shape, checked mechanically (issue 15): packages import each other's public names only,
no import cycle between modules, no function over 80 lines, every document the code cites is in docs/.
The rules themselves: docs/ARCHITECTURE.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# source folder -> the package it is installed as (pyproject.toml's package-dir)
ROOTS = {"common": "hpogrid.common", "steering": "hpogrid.steering", "evaluator": "hpogrid.evaluator",
         "client": "hpogrid.client", "deploy/gridsim": "hpogrid.gridsim", "deploy/idds_local": "hpogrid.iddslocal"}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__)."""
    out = {}
    for folder, package in ROOTS.items():
        root = REPO / folder
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            name = ".".join([package, *(parts[:-1] if is_init else parts)])
            out[name] = (path, is_init)
    return out


MODULES = _modules()


def _imports(name: str, path: Path, is_init: bool, *, top_level_only: bool) -> list[tuple[int, str]]:
    """(line, absolute dotted target) for each ``hpogrid`` import of a module; a ``from X import y``
    gives X.y (y may be a module or a name)."""
    package = name if is_init else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return [(line, target) for line, target in out if target.startswith("hpogrid.")]


def _owner(name: str) -> str:
    """The package a module belongs to (a package's __init__ belongs to the package itself)."""
    return name if MODULES.get(name, (None, False))[1] else name.rpartition(".")[0]


def _private_step(importer_package: str, target: str) -> str | None:
    """The first private (``_x``) segment of ``target`` that lies outside the importer's own package."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if owner in MODULES and not MODULES[owner][1]:
                owner = owner.rpartition(".")[0]  # a module's private name belongs to the module's package
            if importer_package == owner or importer_package.startswith(owner + "."):
                return None  # a package may use its own private modules and names (and its subpackages')
            return ".".join(parts[:i + 1])
    return None


def test_no_private_module_or_name_across_packages() -> None:
    found = []
    for name, (path, is_init) in MODULES.items():
        for line, target in _imports(name, path, is_init, top_level_only=False):
            step = _private_step(_owner(name), target)
            if step:
                found.append(f"{path.relative_to(REPO)}:{line} imports {step}")
    assert not found, "\n".join(found)


def _resolve(target: str) -> str | None:
    """The module an import target names: itself, or (``from m import name``) its module."""
    if target in MODULES:
        return target
    module = target.rpartition(".")[0]
    return module if module in MODULES else None


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for name, (path, is_init) in MODULES.items():
        deps = {_resolve(t) for _, t in _imports(name, path, is_init, top_level_only=False)}
        graph[name] = {d for d in deps if d and d != name and not name.startswith(d + ".")}  # a parent package is imported first anyway
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_no_function_over_80_lines() -> None:
    long = []
    for folder in [*ROOTS, "bench", "tests", "examples"]:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


CITED = re.compile(r"\b((?:docs/)?[A-Z][A-Z0-9_-]+\.md)\b")


def test_every_cited_document_is_in_docs() -> None:
    missing = []
    texts = [p for folder in [*ROOTS, "docs", "bench", "examples"] for p in (REPO / folder).rglob("*")
             if p.suffix in (".py", ".md", ".sh", ".toml") and ".venv" not in p.parts]
    texts += [REPO / "README.md", REPO / "pyproject.toml", REPO / "Makefile"]
    for path in texts:
        text = path.read_text(errors="replace")
        if "../shared" in text or "shared/reference" in text:
            missing.append(f"{path.relative_to(REPO)} cites ../shared (not in the repository)")
        for m in CITED.finditer(text):
            doc = m.group(1).removeprefix("docs/")
            if doc == "README.md" or (REPO / "docs" / doc).is_file() or (path.parent / doc).is_file():
                continue
            missing.append(f"{path.relative_to(REPO)} cites {m.group(1)}")
    assert not missing, "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("rule", ["steering", "evaluator"])
def test_steering_and_evaluator_stay_independent(rule: str) -> None:
    """steering/ imports neither client/ nor Ray; evaluator/ does not import client/."""
    forbidden = {"steering": ("hpogrid.client", "ray"), "evaluator": ("hpogrid.client",)}[rule]
    bad = []
    for path in sorted((REPO / rule).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names
                    if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)
