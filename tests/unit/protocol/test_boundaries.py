"""protocol/ imports only the standard library, pydantic and cryptography (DESIGN.md package table)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import protocol

ALLOWED = {"pydantic", "cryptography", "protocol"} | set(sys.stdlib_module_names)


def test_protocol_imports_only_allowed_packages() -> None:
    root = Path(protocol.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] not in ALLOWED]
    assert not offenders


def test_public_names_resolve() -> None:
    missing = [name for name in protocol.__all__ if not hasattr(protocol, name)]
    assert not missing and len(protocol.__all__) > 40
