"""The house's layering, as a test: imports point downwards only, and no module loop.

Bottom to top: ``pfi.base`` → ``pfi.protocols`` → ``pfi.ledger`` → ``pfi.flows`` → the faces
(``pfi.cli``, ``plugins/pfi_airflow``, ``dags/``). Each layer may import its own modules and the
layers below it, never one above. The devkit (``pfi_devkit``: the local partner servers) and the
benchmarks are no part of the product: nothing under ``include/`` imports them. Every import is
counted, the ones inside functions too (a late import hides a loop, it does not remove it), except
those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = ROOT / "include"

#: Layer of each top-level part of the product, bottom first, and what each may import.
LAYERS = ("pfi.base", "pfi.protocols", "pfi.ledger", "pfi.flows", "pfi.cli")
#: ``pfi`` itself (its ``__init__``, ``__main__``): the package's face, may name the CLI.
FACES = ("pfi.cli", "pfi.__main__", "pfi_airflow", "dags")
NOT_PRODUCT = ("pfi_devkit", "bench", "tests", "pfi_fixtures")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    modules = {module_name(p, INCLUDE): p for p in (INCLUDE / "pfi").rglob("*.py")}
    modules.update({module_name(p, ROOT / "plugins"): p for p in (ROOT / "plugins").rglob("*.py")})
    modules.update({f"dags.{p.stem}": p for p in (ROOT / "dags").glob("*.py")})
    return {name: path for name, path in modules.items() if "migrations" not in name}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every module ``name`` imports at run time (``from pkg import sub`` names ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (item for stmt in child.orelse for item in visit_one(stmt))
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in known else base), node.lineno
        else:
            yield from visit(node)

    yield from visit(tree)


def layer_of(module: str) -> str | None:
    for layer in (*LAYERS, *FACES, *NOT_PRODUCT):
        if module == layer or module.startswith(f"{layer}."):
            return layer
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, int]]]:
    modules = product_modules()
    known = set(modules)
    return {name: list(imports_of(name, path, known)) for name, path in modules.items()}


def test_every_product_module_belongs_to_a_layer(graph):
    loose = [m for m in graph if m.startswith("pfi.") and layer_of(m) is None]
    assert loose == [], f"modules outside the layers {LAYERS}: {loose}"


def test_imports_point_downwards_only(graph):
    wrong = []
    for module, imports in graph.items():
        own = layer_of(module)
        if own not in LAYERS:
            continue
        allowed = LAYERS[: LAYERS.index(own) + 1]
        for target, line in imports:
            if not target.startswith("pfi.") and target != "pfi":
                continue
            if target == "pfi":  # the package's own __init__ (its version)
                continue
            if layer_of(target) not in allowed:
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == [], "imports pointing up or sideways:\n" + "\n".join(wrong)


def test_the_product_never_imports_the_devkit_and_the_domain_never_airflow(graph):
    """Nothing a site installs (``include/``, ``plugins/``, ``dags/``) imports the devkit, the
    benchmarks or the tests; the domain package imports neither Airflow nor its adapters."""
    wrong = [
        f"{module}:{line} imports {target}"
        for module, imports in graph.items()
        for target, line in imports
        if layer_of(target) in NOT_PRODUCT
        or (
            module.split(".")[0] == "pfi"
            and (target.split(".")[0] in ("airflow", "pfi_airflow") or target.startswith("dags"))
        )
    ]
    assert wrong == [], "\n".join(wrong)


def test_faces_do_not_import_each_other_upwards(graph):
    """Hooks (``plugins/``) never import a DAG; the domain never imports a hook (above)."""
    wrong = [
        f"{module}:{line} imports {target}"
        for module, imports in graph.items()
        if module.startswith("pfi_airflow")
        for target, line in imports
        if target.startswith("dags") or layer_of(target) in NOT_PRODUCT
    ]
    assert wrong == [], "\n".join(wrong)


def test_no_import_loop(graph):
    """Tarjan's strongly connected components over module → imported module edges."""
    edges = {
        m: sorted({t for t, _ in imports if t in graph and t != m}) for m, imports in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    assert loops == [], f"import loops: {loops}"


def test_the_checker_sees_a_loop_and_an_upward_import(tmp_path):
    """The rules above would pass on nothing: show they read what they must."""
    (tmp_path / "pfi" / "protocols").mkdir(parents=True)
    (tmp_path / "pfi" / "__init__.py").write_text("")
    (tmp_path / "pfi" / "protocols" / "__init__.py").write_text("")
    lazy = "def f():\n    from pfi.ledger import Ledger\n"
    (tmp_path / "pfi" / "protocols" / "x.py").write_text(lazy)
    hidden = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pfi.flows import y\n"
    (tmp_path / "pfi" / "protocols" / "z.py").write_text(hidden)
    known = {"pfi.ledger", "pfi.flows.y"}
    seen = list(imports_of("pfi.protocols.x", tmp_path / "pfi/protocols/x.py", known))
    assert seen == [("pfi.ledger", 2)]
    assert list(imports_of("pfi.protocols.z", tmp_path / "pfi/protocols/z.py", known)) == [
        ("typing", 1)
    ]
    assert layer_of("pfi.ledger.items") == "pfi.ledger"


def test_below_the_faces_nothing_imports_by_name(graph):
    """A dynamic import (``importlib.import_module``, ``__import__``) is invisible to the rules
    above; only the faces may discover modules that way (the CLI's command groups, its settings
    check)."""
    wrong = []
    for module, path in product_modules().items():
        if layer_of(module) not in LAYERS[:-1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name in ("import_module", "__import__"):
                wrong.append(f"{module}:{node.lineno}")
    assert wrong == [], f"dynamic imports below the faces: {wrong}"
