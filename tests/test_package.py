"""The package as a whole: its public surface, its layers and the shape of its import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ser_core

PACKAGE = Path(ser_core.__file__).resolve().parent

# Each layer, and the layers it may import (besides itself). The signal is at the bottom; the
# command line at the top; nothing imports the command line.
LAYERS = {
    "signal": set(),  # errors, emotions, audio, bundle, features
    "inference": {"signal"},
    "batch": {"signal", "inference"},
    "training": {"signal", "inference"},
    "serve": {"signal", "inference", "batch"},
    "cli": {"signal", "inference", "batch", "training", "serve"},
}
SIGNAL = {"errors", "emotions", "audio", "bundle", "features"}


def module_name(path: Path) -> str:
    """``ser_core.inference.classifier`` for ``ser_core/inference/classifier.py``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    """The layer a module of the package belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "cli"):
        return "cli"  # the package itself re-exports the public API; __main__ runs the command line
    return "signal" if parts[1] in SIGNAL else parts[1]


def imports_of(module: str) -> set[str]:
    """The package modules ``module`` imports (relative and absolute), at any depth of its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.update(n for n in [target, *names] if n in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    return {t for t in found if t != module and not module.startswith(t + ".")}  # a package's own parents run anyway


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

    for name in MODULES:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        assert all(hasattr(module, n) for n in getattr(module, "__all__", ())), name


def test_every_layer_imports_only_the_layers_below_it():
    wrong = []
    for module in MODULES:
        mine = layer_of(module)
        for other in imports_of(module):
            theirs = layer_of(other)
            if theirs != mine and theirs not in LAYERS[mine]:
                wrong.append(f"{module} ({mine}) imports {other} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_layering_rules_of_the_architecture():
    """audio and features never import inference; inference never imports batch, serve or
    training; nothing imports the command line."""
    for module in MODULES:
        targets = imports_of(module)
        if module.startswith(("ser_core.audio", "ser_core.features")):
            assert not {t for t in targets if t.startswith("ser_core.inference")}, module
        if module.startswith("ser_core.inference"):
            assert not {t for t in targets if t.startswith(("ser_core.batch", "ser_core.serve", "ser_core.training"))}
        if module not in ("ser_core.__main__",):
            assert "ser_core.cli" not in targets, module


def test_the_check_would_see_a_layer_broken():
    """Control: the graph sees an import of a higher layer, relative or absolute, at any depth."""
    assert "ser_core.inference.classifier" in imports_of("ser_core.batch.job")
    assert layer_of("ser_core.serve.rest") == "serve" and "serve" not in LAYERS["inference"]
    assert "ser_core.training.networks" in imports_of("ser_core.training.build")


def test_no_import_circles():
    graph = {m: imports_of(m) for m in MODULES}
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

    sets = {f"ser_core.features.{module}" for module, _, _ in FEATURE_SETS.values()}
    for module in sets:
        deps = imports_of(module)
        assert "ser_core.features.spectral" in deps and not deps & (sets | {"ser_core.features"}), (module, deps)


IMPORT_SCRIPT = """
import os
before = dict(os.environ)
import ser_core, ser_core.batch, ser_core.serve, ser_core.cli
print(sorted(set(os.environ.items()) ^ set(before.items())))
"""


def test_importing_changes_no_environment_variable():
    out = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


BLAS_SCRIPT = """
import numpy as np  # NumPy first, as a program of the user's may do: its BLAS starts with every core
from threadpoolctl import threadpool_info
import ser_core

def blas_threads():
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

clf = ser_core.EmotionClassifier.load(jobs=1)
seen = []
extract = clf.extractor
clf.extractor = lambda clips: (seen.append(blas_threads()), extract(clips))[1]
before = blas_threads()
clf.predict(np.sin(np.arange(32_000) / 9.0).astype(np.float32), 16_000)
print(before, seen, blas_threads())
"""


def test_blas_runs_one_thread_inside_a_verdict_whatever_the_import_order(tmp_path):
    """A program that imports NumPy before ser_core keeps its BLAS threads, except inside a verdict."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # what a 2-core machine gives by default, whatever this one has
    out = subprocess.run([sys.executable, "-c", BLAS_SCRIPT], capture_output=True, text=True, env=env, check=True)
    before, seen, after = out.stdout.strip().split(" ", 1)[0], *out.stdout.strip().split(" ", 1)[1].rsplit(" ", 1)
    assert int(before) == 2 and int(after) == 2  # the user's setting, before and after
    assert seen == "[1]"  # the one clip's features were computed on one BLAS thread
