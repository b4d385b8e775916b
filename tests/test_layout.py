"""The package's layers, as docs/architecture.md draws them, checked on every import.

- ``coordinator/core`` is the synchronous scheduling core: no trio, no I/O, and nothing
  of ``coordinator/`` outside itself.
- ``protocol`` is sans-I/O: no trio, no sockets, neither side's code.
- ``shared`` sits below everything: it imports no other folder of the package.
- ``worker`` imports ``shared`` and ``protocol``, never ``coordinator``.

Every import counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trio_graph_scheduler"
NAME = "trio_graph_scheduler"
IO_MODULES = {"trio", "trio_websocket", "outcome", "tricycle", "socket", "ssl", "asyncio"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` imports (or ``source``, read as if it were there), as
    absolute dotted names."""
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            # ``from . import x`` imports the module x.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _imports_of_folder(folder: str) -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in sorted((PACKAGE / folder).rglob("*.py"))}


def _offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {imported}"
        for module, imports in _imports_of_folder(folder).items()
        for imported in sorted(imports)
        if imported.startswith(forbidden)
    ]


def _top(name: str) -> str:
    return name.split(".")[0]


def test_core_imports_no_io_and_nothing_of_the_coordinator_outside_it() -> None:
    coordinator = f"{NAME}.coordinator."
    core = f"{NAME}.coordinator.core"
    offending = [
        f"{module} imports {imported}"
        for module, imports in _imports_of_folder("coordinator/core").items()
        for imported in sorted(imports)
        if _top(imported) in IO_MODULES
        or (imported.startswith(coordinator) and not imported.startswith(core))
        or imported.startswith((f"{NAME}.worker", f"{NAME}.protocol"))
    ]
    assert offending == []


def test_protocol_is_sans_io() -> None:
    offending = [
        f"{module} imports {imported}"
        for module, imports in _imports_of_folder("protocol").items()
        for imported in sorted(imports)
        if _top(imported) in IO_MODULES
        or imported.startswith((f"{NAME}.coordinator", f"{NAME}.worker"))
    ]
    assert offending == []


def test_shared_imports_nothing_above_it() -> None:
    above = tuple(f"{NAME}.{folder}" for folder in ("coordinator", "worker", "protocol"))
    assert _offending("shared", above) == []


def test_worker_never_imports_the_coordinator() -> None:
    assert _offending("worker", (f"{NAME}.coordinator",)) == []


def test_the_checker_sees_relative_imports_inside_functions() -> None:
    # The checks above are only as good as _imports: prove it finds a nested relative one.
    module = PACKAGE / "coordinator" / "core" / "graph.py"
    source = "def draw():\n    from ..observe import drawing\n"
    assert f"{NAME}.coordinator.observe.drawing" in _imports(module, source)


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        (f"{NAME}.protocol", "trio"),
        (f"{NAME}.coordinator.core.graph", "trio"),
        (f"{NAME}.worker.runner", f"{NAME}.coordinator"),
    ],
)
def test_importing_a_layer_loads_nothing_above_it(module: str, absent: str) -> None:
    # A fresh interpreter: this one has imported everything already.
    prefix = absent + "."
    code = (
        f"import sys, {module}; "
        f"print(sorted(m for m in sys.modules if m == {absent!r} or m.startswith({prefix!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
