"""The architecture as an import graph: read with ``ast`` from the product packages' sources (imports inside
functions included, ``if TYPE_CHECKING:`` blocks excluded), it has no circle between modules, no arrow against the
layers ``latentdream`` ← ``lightning_modules`` ← ``analysis`` ← ``experiments``, and no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("latentdream", "lightning_modules", "analysis", "experiments")  # each may import only those before it
MAX_LINES = 500


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name ``tree`` imports, at any depth except under ``if TYPE_CHECKING:``; ``from a import b``
    yields ``a.b`` as well as ``a`` (``b`` may be a submodule), relative imports resolved against ``module``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = LAYERS) -> dict[str, set[str]]:
    """module → the product modules it imports (only names that are modules of ``packages`` under ``root``)."""
    sources = {module_name(p, root): p for top in packages for p in sorted((root / top).rglob("*.py"))}
    graph = {}
    for name, path in sources.items():
        names = imported_names(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
        graph[name] = {n for n in names if n in sources and n != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, …, a], or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {top: i for i, top in enumerate(LAYERS)}
    return [f"{a} -> {b}" for a, targets in sorted(graph.items()) for b in sorted(targets)
            if rank[b.split(".")[0]] > rank[a.split(".")[0]]]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT)


def test_the_product_has_no_import_circle(graph):
    assert len(graph) > 50  # the walk found the product's modules
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_import_goes_against_the_layers(graph):
    assert layer_violations(graph) == []


def test_no_product_module_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for top in LAYERS for p in (ROOT / top).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_circle_added_on_purpose_is_found_even_inside_a_function(tmp_path):
    _write(tmp_path, {
        "latentdream/__init__.py": "", "lightning_modules/__init__.py": "", "analysis/__init__.py": "",
        "experiments/__init__.py": "", "experiments/sub/__init__.py": "",
        "experiments/cli.py": "from experiments.sub import sweep\n",
        "experiments/sub/sweep.py": "def child():\n    from experiments import cli\n",
    })
    assert find_cycle(import_graph(tmp_path)) == ["experiments.cli", "experiments.sub.sweep", "experiments.cli"]


def test_type_only_imports_do_not_count_and_relative_imports_resolve(tmp_path):
    _write(tmp_path, {
        "latentdream/__init__.py": "", "lightning_modules/__init__.py": "", "experiments/__init__.py": "",
        "analysis/__init__.py": "", "analysis/dream/__init__.py": "",
        "analysis/settings.py": "from analysis.dream.modes import DreamMode\n",
        "analysis/dream/modes.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from analysis.settings import DreamSettings\n",
        "analysis/dream/seed.py": "from .modes import DreamMode\nfrom . import modes\n",
    })
    graph = import_graph(tmp_path)
    assert find_cycle(graph) is None
    assert graph["analysis.dream.seed"] == {"analysis.dream.modes", "analysis.dream"}


def test_an_arrow_against_the_layers_is_found(tmp_path):
    _write(tmp_path, {
        "latentdream/__init__.py": "", "experiments/__init__.py": "", "analysis/__init__.py": "",
        "lightning_modules/__init__.py": "def f():\n    import analysis.tracking\n",
        "analysis/tracking.py": "",
    })
    assert layer_violations(import_graph(tmp_path)) == ["lightning_modules -> analysis.tracking"]
