"""Production modules use each other only through public names (no `_private` imports)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("handlers", "pipeline", "schemas", "infra")


def _private_uses(source: str) -> list[str]:
    """`from m import _x`, and `m._x` where `m` is a module the file imported."""
    tree = ast.parse(source)
    modules: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                elif node.module and node.module.split(".")[0] in PRODUCTION:
                    modules.add(alias.asname or alias.name)  # may be a module: checked below
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_check_finds_private_imports() -> None:
    source = "from handlers.core import decode as d\nfrom a.b import _c\nx = d._spans\n"
    assert _private_uses(source) == ["line 2: from a.b import _c", "line 3: d._spans"]
    assert _private_uses("import os\nfrom a import b\nx = b.c\ny = self._z\n") == []


def test_no_production_module_imports_private_names() -> None:
    files = [ROOT / "__main__.py", *(p for d in PRODUCTION for p in (ROOT / d).rglob("*.py"))]
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in files
        if (uses := _private_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
