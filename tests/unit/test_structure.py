"""Production code keeps its shape: small modules, short functions, no borrowed private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("handlers", "pipeline", "infra", "schemas")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60

# Declarative tables: long because they list things, not because they do many things.
LONG_ALLOWED = {
    "pipeline/cli.py:build_parser",  # argparse set-up: one add_argument per option
}

# Modules allowed to break the rules for now: none (the issue 12 splits have landed).
KNOWN_OFFENDERS: set[str] = set()


def _modules() -> list[Path]:
    files = [ROOT / "__main__.py"]
    for package in PRODUCTION:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _known(where: str) -> bool:
    module = where.split(":")[0]
    return where in KNOWN_OFFENDERS or f"{module}:*" in KNOWN_OFFENDERS


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, named `Class.method` / `outer.inner`."""
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((prefix + child.name, child))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from `def` to the end, decorators aside."""
    return (node.end_lineno or node.lineno) - node.lineno + 1


def module_offences(path: Path, name: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8")
    name = name or _name(path)
    offences = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        offences.append(f"{name}: {lines} lines (max {MAX_MODULE_LINES})")
    tree = ast.parse(text, filename=name)
    for qualname, node in _functions(tree):
        where = f"{name}:{qualname}"
        size = _function_lines(node)
        if size > MAX_FUNCTION_LINES and where not in LONG_ALLOWED:
            offences.append(f"{where}: {size} lines (max {MAX_FUNCTION_LINES})")
    offences += [f"{name}: {o}" for o in _private_imports(tree)]
    # A lazily filled module global is what functools.cache is for.
    offences += [
        f"{name}: `global {', '.join(node.names)}` (line {node.lineno}): use functools.cache"
        for node in ast.walk(tree)
        if isinstance(node, ast.Global)
    ]
    return offences


def _private_imports(tree: ast.AST) -> list[str]:
    """`from x import _y`, and `x._y` on a module bound by `import x` / `from p import x`."""
    offences = []
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offences.append(f"imports private {node.module}.{alias.name}")
                # `from handlers.core import commit as commits`: a module bound to a name.
                if _is_module(f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        owner = _dotted(node.value)
        if owner and owner.split(".")[0] in modules and not node.attr.startswith("__"):
            offences.append(f"uses private {owner}.{node.attr} (line {node.lineno})")
    return offences


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for a chain of names, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_production_code_keeps_its_shape() -> None:
    offences = []
    for path in _modules():
        offences += [o for o in module_offences(path) if not _known(o.split(": ")[0])]
    assert offences == [], "\n".join(offences)


def test_known_offenders_still_offend() -> None:
    # An entry that no longer offends is stale: remove it, so the rule covers that code.
    offending = set()
    for path in _modules():
        for o in module_offences(path):
            where = o.split(": ")[0]
            offending.add(where)
            offending.add(f"{where.split(':')[0]}:*")
    stale = {k for k in KNOWN_OFFENDERS if k not in offending}
    assert not stale, f"no longer offending, remove from KNOWN_OFFENDERS: {sorted(stale)}"


def test_the_guard_catches_each_kind_of_offence(tmp_path: Path) -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_FUNCTION_LINES + 1))
    source = (
        "from handlers.core.decode import _private\n"
        "from handlers.core import commit\n"
        f"def long():\n{body}\n"
        "def reach():\n    return commit._internal()\n"
        "def lazy():\n    global _CACHE\n"
    )
    source += "\n" * (MAX_MODULE_LINES - source.count("\n") + 1)
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    offences = module_offences(path, "pipeline/probe.py")
    assert len(offences) == 5, offences
    assert "lines (max 600)" in offences[0]
    assert offences[1].startswith("pipeline/probe.py:long: 62 lines")
    assert "imports private handlers.core.decode._private" in offences[2]
    assert "uses private commit._internal" in offences[3]
    assert "global _CACHE" in offences[4]
