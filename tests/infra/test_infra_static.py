"""Rules the program's source must keep: config read in one place, no resources in `.apply()`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "infra").glob("*.py")), ROOT / "__main__.py"]


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_only_the_settings_module_reads_pulumi_config() -> None:
    readers = {
        path.relative_to(ROOT).as_posix()
        for path in SOURCES
        for call in _calls(ast.parse(path.read_text()))
        if ast.unparse(call.func) in ("pulumi.Config", "Config")
    }
    assert readers == {"infra/config.py"}


def test_no_resource_is_created_inside_apply() -> None:
    """Resources made in `.apply()` vanish from previews and break dependency tracking."""
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        local_functions = {
            node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
        }
        for call in _calls(tree):
            if not (isinstance(call.func, ast.Attribute) and call.func.attr == "apply"):
                continue
            for callback in call.args:
                if isinstance(callback, ast.Name) and callback.id in local_functions:
                    body: ast.AST = local_functions[callback.id]
                else:
                    body = callback
                for inner in _calls(body):
                    if ast.unparse(inner.func).startswith(("aws.", "pulumi_aws.")):
                        offenders.append(f"{path.name}:{inner.lineno}")
    assert offenders == []


def test_no_deprecated_v2_s3_classes_in_source() -> None:
    for path in SOURCES:
        source = path.read_text()
        for name in ("BucketV2", "BucketVersioningV2", "ConfigurationV2", "BucketAclV2"):
            assert name not in source, f"{path.name} uses {name}"
