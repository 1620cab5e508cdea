"""DESIGN.md's layering, checked: each package imports only what its row in the table allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"hardware", "protocol", "kiosk", "server", "baodao"}
ALLOWED = {
    "hardware": set(),
    "protocol": set(),
    "kiosk": {"hardware", "protocol"},
    "server": {"protocol"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {}
    for path in files:
        bad = (_imports(path) & OURS) - ALLOWED[package] - {package}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_protocol_imports_no_web_or_database_library():
    heavy = {"flask", "sqlalchemy", "alembic", "werkzeug", "requests", "cv2", "smartcard", "serial"}
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & heavy) for p in (ROOT / "protocol").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
