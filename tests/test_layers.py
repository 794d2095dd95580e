"""The package imports one way: no cycle between modules or packages, and the layers of DESIGN.md.

Every module's imports of cadence are read with ``ast``, at module level and inside functions
alike (an import inside a function still ties two modules together; hiding it there only moves
the failure to run time). Optional extras (mlflow, wandb, optuna, ...) are not cadence modules
and are not read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cadence

PACKAGE = Path(cadence.__file__).resolve().parent

#: The layers, bottom to top (DESIGN.md, section 2): a module imports only from its own layer or
#: below. Each name is a module or a package directly under ``cadence/``; ``cadence`` is the
#: package's own ``__init__`` (the public API).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({
        "io", "tree", "overriding", "extras", "object_registration", "checksums", "file_lock",
        "output_paths", "remote",
    }),
    frozenset({"logs", "distributed", "plotting", "summary"}),
    frozenset({"metrics", "losses", "optimizers", "activations"}),
    frozenset({"data", "backend", "utils"}),
    frozenset({"callbacks", "integrations"}),
    frozenset({"trainer"}),
    frozenset({
        "model", "sequential", "saving", "weights", "keras_model", "layers", "model_summary",
        "steps",
    }),
    frozenset({"cli", "demo", "keras", "cadence"}),
)


def _modules() -> dict[str, Path]:
    """Return every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """Return the module ``name`` imports (the longest existing prefix: a name from a module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Return the cadence modules ``name`` imports, anywhere in it, with the first line of each."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        for target in targets:
            if target == "cadence" or target.startswith("cadence."):
                module = _resolve(target, modules)
                if module is not None and module != name:
                    found[module] = min(found.get(module, node.lineno), node.lineno)
    return found


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _unit(module: str) -> str:
    """Return the layer unit of a module: the name directly under ``cadence``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cadence"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the shortest cycle through each node that is in one (as a path back to its start)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small.
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for group in groups:  # The shortest cycle through each member names every module involved.
        for member in group:
            cycle = _path_back(member, set(group), edges)
            smallest = min(range(len(cycle) - 1), key=lambda i: cycle[i])
            rotated = cycle[smallest:-1] + cycle[:smallest] + [cycle[smallest]]
            if tuple(rotated) not in seen:
                seen.add(tuple(rotated))
                cycles.append(rotated)
    return cycles


def _path_back(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """Return the shortest path from ``start`` back to itself within ``group``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(edges.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a cycle with no path back to itself")


def _describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_cycle_between_modules():
    graph = _graph()
    cycles = _cycles({name: set(targets) for name, targets in graph.items()})
    assert not cycles, f"Import cycles between modules:\n{_describe(cycles)}"


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        for target in targets:
            if _unit(name) != _unit(target):
                edges.setdefault(_unit(name), set()).add(_unit(target))
    cycles = _cycles(edges)
    assert not cycles, f"Import cycles between packages:\n{_describe(cycles)}"


def test_every_module_has_a_layer():
    placed = set().union(*LAYERS)
    missing = sorted({_unit(name) for name in _modules()} - placed)
    assert not missing, f"Give these modules a layer in LAYERS (and in DESIGN.md): {missing}"


def test_modules_import_only_from_their_own_layer_or_below():
    layer = {unit: level for level, units in enumerate(LAYERS) for unit in units}
    upward = [
        f"{name} (layer {layer[_unit(name)]}) imports {target} (layer {layer[_unit(target)]}) "
        f"at line {line}"
        for name, targets in sorted(_graph().items())
        for target, line in sorted(targets.items())
        if _unit(name) in layer and _unit(target) in layer and layer[_unit(target)] > layer[_unit(name)]
    ]
    assert not upward, "Imports against the layers:\n" + "\n".join(upward)


def test_the_cycle_finder_names_a_cycle_and_ignores_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_imports_inside_functions_and_relative_imports_are_read(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\nfrom cadence import io\n\ndef f():\n    from cadence.trainer import loops\n"
        "    from .callback import Callback\n"
    )
    modules = {
        "cadence.io": Path(), "cadence.trainer": Path(), "cadence.trainer.loops": Path(),
        "cadence.callbacks": Path(), "cadence.callbacks.callback": Path(), "cadence.callbacks.mod": source,
    }
    assert _imports("cadence.callbacks.mod", source, modules) == {
        "cadence.io": 2, "cadence.trainer.loops": 5, "cadence.callbacks.callback": 6,
    }


@pytest.mark.parametrize("module", ["cadence.callbacks.callback", "cadence.callbacks.callback_list",
                                    "cadence.trainer.state", "cadence.logs"])
def test_the_run_state_and_callback_core_import_nothing_above_them(module):
    layer = {unit: level for level, units in enumerate(LAYERS) for unit in units}
    targets = _graph()[module]
    above = [t for t in targets if layer[_unit(t)] > layer[_unit(module)]]
    assert above == []
    assert not any(_unit(t) in {"model", "trainer"} for t in targets if _unit(module) == "callbacks")


def test_the_readme_diagram_lists_every_file_in_its_layer():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("The layers, top to bottom")
    block = readme[readme.index("```\n", start) + 4:]
    block = block[: block.index("```")]
    listed: dict[str, int] = {}
    level = None
    for line in block.splitlines():
        if line[:1].isdigit():
            level = int(line.split()[0])
        else:
            listed.update({name: level for name in line.split()})
    files = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    layer = {unit: level for level, units in enumerate(LAYERS) for unit in units}

    def unit(path: str) -> str:
        return "cadence" if path == "__init__.py" else path.split("/")[0].removesuffix(".py")

    missing = [path for path in files if path not in listed]
    misplaced = [path for path in files if path in listed and listed[path] != layer[unit(path)]]
    assert not missing and not misplaced, (missing, misplaced)
