"""The import direction in DESIGN.md: scoring imports neither FastAPI nor SQLAlchemy nor our other layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "scoring": {"fastapi", "starlette", "sqlalchemy", "alembic", "app", "models", "migrations", "httpx"},
    "models": {"fastapi", "starlette", "app", "migrations", "pydantic"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_what_it_must_not(layer):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[layer])
        for path in (ROOT / layer).rglob("*.py")
    }
    assert {p: bad for p, bad in offenders.items() if bad} == {}


def test_routers_do_not_import_models_directly():
    for path in (ROOT / "app" / "routers").rglob("*.py"):
        assert "models" not in imported_roots(path), path


def test_nothing_imports_app_main_but_the_server_and_tests():
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("scoring/**/*.py"), *ROOT.glob("models/**/*.py")]:
        if path.name == "main.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "app.main" not in modules, path
