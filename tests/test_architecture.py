"""The layout rules of docs/architecture.md, checked: imports point one way (no cycle among our
modules, counting only imports that run at import time) and no module grows past about 400
lines (the redaction scanner excepted)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sessions_app", "command_center", "config")
MAX_LINES = 420
LONG_ON_PURPOSE = {"sessions_app/redaction.py"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _import_time_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Our modules that `module` imports when it is imported: top-level statements only
    (imports under `if TYPE_CHECKING:` and inside functions do not run then)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` depends on that module; `from pkg import name` on pkg.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        targets.update(name for name in names if name in known and name != module)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _import_time_imports(path, name, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_our_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    # Positive control: the graph is real (services import the lifecycle and the selectors).
    assert "sessions_app.lifecycle" in graph["sessions_app.services.actions"]
    assert "sessions_app.selectors" in graph["sessions_app.services.common"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_domain_never_imports_the_live_ui() -> None:
    graph = _graph()
    leaks = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("sessions_app")
        for target in targets
        if target.startswith("command_center")
    }
    assert leaks == set()
    # Positive control: the live UI does import the domain.
    assert any(t.startswith("sessions_app") for t in graph["command_center.consumers"])


@pytest.mark.parametrize(
    "path",
    sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in LONG_ON_PURPOSE
    ),
)
def test_no_module_grows_past_about_400_lines(path: str) -> None:
    lines = len((ROOT / path).read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it by concern"
