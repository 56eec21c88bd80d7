"""The package as a whole: its public surface and the shape of its import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import ser_core

PACKAGE = Path(ser_core.__file__).resolve().parent


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from ser_core import *", namespace)
    missing = [name for name in ser_core.__all__ if name not in namespace]
    assert not missing
    assert all(namespace[name] is getattr(ser_core, name) for name in ser_core.__all__)
    assert ser_core.EMOTIONS == ("neutral", "calm", "happy", "angry", "fearful", "disgust", "surprised")
    assert ser_core.SAMPLE_RATE == 16_000 and ser_core.MIN_SPEECH_SECONDS == 0.3


def test_every_module_lists_only_names_it_defines():
    import importlib

    for path in sorted(PACKAGE.glob("*.py")):
        module = importlib.import_module(f"ser_core.{path.stem}") if path.stem != "__init__" else ser_core
        assert all(hasattr(module, name) for name in getattr(module, "__all__", ())), path.name


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports, at any depth of its code (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found - {"__init__"}


def test_no_import_circles():
    graph = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    state: dict[str, str] = {}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert state.get(module) != "open", f"import circle: {' -> '.join((*trail, module))}"
        if state.get(module) == "done":
            return
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            visit(other, (*trail, module))
        state[module] = "done"

    for module in sorted(graph):
        visit(module, ())


def test_feature_sets_depend_on_the_core_and_not_on_each_other():
    from ser_core.features import FEATURE_SETS

    sets = {module for module, _, _ in FEATURE_SETS.values()}
    for module in sets:
        deps = imports_of(PACKAGE / f"{module}.py")
        assert "spectral" in deps and not deps & (sets | {"features"}), (module, deps)
