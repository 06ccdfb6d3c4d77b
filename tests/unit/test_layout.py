"""The packages keep their roles: the leaderboard domain and storage know nothing of the web, the
worker, Flask or Celery, and storage knows nothing of the domain."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

#: What each package may never import, directly or through another module of the app.
FORBIDDEN = {
    "app.leaderboard": ("flask", "celery", "kombu", "app.web", "app.worker"),
    "app.storage": ("flask", "celery", "kombu", "app.web", "app.worker", "app.leaderboard"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def direct_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from app.storage import keys`` imports the module app.storage.keys.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def app_modules() -> dict[str, set[str]]:
    return {module_name(p): direct_imports(p) for p in APP.rglob("*.py")}


def reachable(start: str, graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or not, each with a chain of imports to it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in graph.get(current, ()):
            if target not in chains:
                chains[target] = [*chains[current], target]
                if target in graph:
                    todo.append(target)
    return chains


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for package, banned in FORBIDDEN.items():
        for module in sorted(m for m in graph if m == package or m.startswith(package + ".")):
            for target, chain in reachable(module, graph).items():
                if any(target == b or target.startswith(b + ".") for b in banned):
                    found.append(" -> ".join(chain))
    return found


def test_the_domain_and_storage_import_no_web_worker_flask_or_celery():
    graph = app_modules()
    assert {"app.leaderboard.boards", "app.storage.keys", "app.web.api.scores"} <= graph.keys()
    assert violations(graph) == []


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("app.leaderboard.boards", "flask"),
        ("app.leaderboard.games", "app.worker.tasks"),
        ("app.storage.keys", "app.leaderboard.games"),
        ("app.storage.intake", "celery"),
    ],
)
def test_a_forbidden_import_is_found_directly_or_through_another_module(module, imported):
    direct = app_modules()
    direct[module].add(imported)
    assert f"{module} -> {imported}" in violations(direct)
    # app.clock may be imported by anyone: what it imports is reached all the same.
    indirect = app_modules()
    indirect[module].add("app.clock")
    indirect["app.clock"].add(imported)
    assert f"{module} -> app.clock -> {imported}" in violations(indirect)
