"""The import graph: the core never imports a plugin folder, and no module imports in a cycle.

Module-level imports only (those inside functions or ``if TYPE_CHECKING:`` run later or
never, so they cannot form an import-time cycle); every module of the core and of the
shipped plugin folders, named as the installed package names them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FOLDERS = ("brains", "engines", "experiments", "transceivers")
PLUGIN_PACKAGE = "neuroloop.plugins"
GENERATED = ("_pb2.py", "_pb2_grpc.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] in PLUGIN_FOLDERS:
        parts.insert(0, PLUGIN_PACKAGE)
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for folder in ("neuroloop", "nrp_core", *PLUGIN_FOLDERS):
        for path in sorted((REPO / folder).rglob("*.py")):
            if not path.name.endswith(GENERATED):
                found[module_name(path)] = path
    return found


def is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports at module level (``from a import b``
    counts ``a.b`` when that is a module)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if is_type_checking(node):
            continue
        for inner in ast.walk(node) if isinstance(node, ast.If | ast.Try) else (node,):
            if isinstance(inner, ast.Import):
                found |= {alias.name for alias in inner.names}
            elif isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                found.add(inner.module)
                found |= {f"{inner.module}.{alias.name}" for alias in inner.names}
    return found & known


def test_the_core_imports_no_plugin_folder() -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith(PLUGIN_PACKAGE) or not name.startswith("neuroloop"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            for target in targets:
                top = target.split(".")[0]
                if top in PLUGIN_FOLDERS or target.startswith(PLUGIN_PACKAGE):
                    offenders.append(f"{path.relative_to(REPO)}: {target}")
    assert not offenders, offenders


def test_nothing_imports_a_plugin_folder_by_its_checkout_name() -> None:
    """``engines`` and friends install as ``neuroloop.plugins.engines``: a bare ``engines``
    import works only in the checkout."""
    offenders = []
    for path in [*REPO.glob("*/**/*.py")]:
        if ".venv" in path.parts or "build" in path.parts or "fixtures" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in PLUGIN_FOLDERS
            ]
    assert not offenders, offenders


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets, each as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def test_find_cycles_finds_a_known_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    known = modules()
    graph = {name: imports(path, set(known)) - {name} for name, path in known.items()}
    assert len(graph) > 50 and any(graph.values())  # the graph was really read
    cycles = find_cycles(graph)
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


def test_the_gymnasium_view_imports_no_tensorflow() -> None:
    code = "import neuroloop.gym, sys; assert 'tensorflow' not in sys.modules, 'tensorflow'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
