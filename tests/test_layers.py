"""The package's layer rules (DESIGN §2, issue 19), read from the code's own imports, function-level
ones included: no import cycle between modules, the pure core imports no I/O, plotting or
widgets, no audit imports another audit, and nothing below the entry points imports them."""

from __future__ import annotations

import ast
from pathlib import Path

import auditkit

PACKAGE = Path(auditkit.__file__).parent
#: the pure core: config, sample orders, plans, metrics, results, the audits' verifiers
CORE = (
    "auditkit.config",
    "auditkit.options",
    "auditkit.data",
    "auditkit.plan",
    "auditkit.metrics",
    "auditkit.early_stopping",
    "auditkit.results",
    "auditkit.errors",
    "auditkit.audits.kit",
    "auditkit.mlperf_models",
)
IO_AND_PRESENTATION = ("httpx", "aiohttp", "matplotlib", "ipywidgets", "IPython", "uvicorn")
ENTRY_POINTS = ("auditkit.cli", "auditkit.notebooks_run", "auditkit.notebook_runner")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every auditkit module (or third-party top-level package) `path` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            out.add(base)
            # `from auditkit.audits import kit` imports a module, not a name
            out |= {f"{base}.{alias.name}" for alias in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path, name) if m in files and m != name}
        for name, path in files.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_package_parent(module: str, imported: str) -> bool:
    """`auditkit.audits.test04.scoring` importing `auditkit.audits.test04` (its own package's face)
    is how Python loads it, not a cycle of design."""
    return module.startswith(imported + ".")


def test_no_import_cycles() -> None:
    graph = {m: {i for i in deps if not _is_package_parent(m, i)} for m, deps in _graph().items()}
    assert _cycles(graph) == []


def test_core_imports_no_io_plotting_or_widgets() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    bad = []
    for name, path in files.items():
        if not any(name == c or name.startswith(c + ".") for c in CORE):
            continue
        for imported in _imports(path, name):
            if imported.split(".")[0] in IO_AND_PRESENTATION:
                bad.append(f"{name} imports {imported}")
    assert bad == []


def test_no_audit_imports_another_audit() -> None:
    graph = _graph()
    bad = []
    for name, deps in graph.items():
        parts = name.split(".")
        if len(parts) < 3 or parts[1] != "audits" or not parts[2].startswith("test"):
            continue
        own = ".".join(parts[:3])
        for dep in deps:
            dep_parts = dep.split(".")
            is_audit = dep_parts[1:2] == ["audits"] and dep_parts[2:3] != []
            if is_audit and dep_parts[2].startswith("test") and ".".join(dep_parts[:3]) != own:
                bad.append(f"{name} imports {dep}")
    assert bad == []


def test_nothing_below_the_entry_points_imports_them() -> None:
    graph = _graph()
    entry = {m for m in graph if any(m == e or m.startswith(e + ".") for e in ENTRY_POINTS)}
    bad = [
        f"{name} imports {dep}"
        for name, deps in graph.items()
        if name not in entry
        for dep in deps & entry
    ]
    assert bad == []
