"""The layering of ARCHITECTURE.md, checked on the source: who may import whom, no cycles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dnmf"

#: Each layer and the dnmf layers it may import (itself included), lowest first; ARCHITECTURE.md explains them.
ALLOWED = {
    "core.rules": {"core.rules"},
    "core": {"core", "core.rules", "exceptions"},
    "runtime": {"runtime", "core", "core.rules", "exceptions"},
    "view": {"view", "runtime", "core", "core.rules", "exceptions"},
    "data": {"data", "view", "runtime", "core", "core.rules", "exceptions"},
    "estimator": {"estimator", "data", "view", "runtime", "core", "core.rules", "exceptions"},
    "cli": {"cli", "estimator", "data", "view", "runtime", "core", "core.rules", "exceptions", "datasets", ""},
    "exceptions": set(),
    "datasets": set(),
    "plot": {"view", "data", "core", "core.rules"},
    "": {"estimator", "data", "core", "exceptions", "runtime", "view"},
    "__main__": {"cli"},
}
#: Third-party packages a layer must never import, even lazily.
FORBIDDEN = {"core.rules": ("dask", "distributed", "zarr", "sklearn"), "core": ("distributed", "zarr", "sklearn"),
             "runtime": ("sklearn",), "data": ("sklearn",)}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__")


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    if module.startswith("core.rules"):
        return "core.rules"
    head = module.split(".")[0]
    return head if head in ALLOWED else ""


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative to ``dnmf.`` for its own)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = submodule.startswith("dnmf.") and submodule[5:] in MODULES
                found.add(submodule if is_module else node.module)
    return found


def own(names: set[str]) -> set[str]:
    """The dnmf modules among ``names`` (``dnmf.core.products.aht`` counts as ``core.products``)."""
    result = set()
    for name in names:
        if name == "dnmf" or name.startswith("dnmf."):
            parts = name.split(".")[1:]
            while parts and ".".join(parts) not in MODULES:
                parts = parts[:-1]
            result.add(".".join(parts))
    return result


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layer_imports_only_layers_below_it(module):
    names = imports(MODULES[module], top_level_only=False)
    layer = layer_of(module)
    reached = {layer_of(target) for target in own(names)} - {layer}
    assert reached <= ALLOWED[layer], f"{module} ({layer or 'dnmf'}) imports {reached - ALLOWED[layer]}"
    banned = [name for name in names if name.split(".")[0] in FORBIDDEN.get(layer, ())]
    assert not banned, f"{module} imports {banned}"


def test_no_import_cycle():
    graph = {module: own(imports(path, top_level_only=True)) - {module} for module, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " → ".join([*trail, module, target]))
            if target not in state:
                visit(target, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_under_400_lines(module):
    assert len(MODULES[module].read_text().splitlines()) <= 400


def test_at_most_eight_modules_at_the_top():
    assert len([path for path in PACKAGE.glob("*.py")]) <= 8
