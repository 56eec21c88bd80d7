"""The package as a user installs it: a wheel that carries its model and works from any folder,
and a lean install (no training package) that runs every command the demo, the REST API and
the command line need.

The wheel is built from a copy of the sources (``pip wheel --no-deps --no-build-isolation``,
offline, with this environment's setuptools; an environment whose setuptools is older than the
build needs lets pip fetch one) and installed with ``--no-deps`` into a fresh virtual
environment; that environment reaches the packages it depends on through a ``.pth`` line naming
this interpreter's site-packages, so nothing is downloaded. Every command then runs from a
temporary folder outside the repository, without ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, free_port, speech_like

from ser_core import bundle

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "ser_core")  # what a wheel is built from
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
START_TIMEOUT = 90.0  # seconds for a server to answer its first request on a busy machine


def _builds_offline() -> bool:
    """Whether this environment has the setuptools that pyproject.toml's build needs."""
    from packaging.requirements import Requirement

    needs = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, needs):
        try:
            if importlib.metadata.version(requirement.name) not in requirement.specifier:
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python or the library at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", bundle.ENV_VAR)}
    return {**env, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (a stale build/ folder cannot leak into it)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []  # else pip fetches setuptools
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-q", "--wheel-dir", str(root / "dist")]
        + [str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert out.returncode == 0, out.stderr
    (built,) = (root / "dist").glob("ser_core-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed and this interpreter's packages reachable."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    out = subprocess.run(  # before the .pth line: the new environment holds nothing else yet
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert out.returncode == 0, out.stderr
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    packages = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]  # never the checkout
    (purelib / "_ser_core_test_dependencies.pth").write_text("\n".join(packages) + "\n")
    return root


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A folder outside the repository holding one recording, where the installed commands run."""
    folder = tmp_path_factory.mktemp("elsewhere")
    sf.write(str(folder / "x.wav"), speech_like(2.0, 16_000, seed=7), 16_000)
    return folder


def _run(program: Path, *args: str, cwd: Path | None = None, timeout: float = 180, **env: str):
    out = subprocess.run(
        [str(program), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env(**env)
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _site_packages(venv: Path) -> Path:
    return Path(
        _run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )


# ---------------------------------------------------------------- the wheel


def test_the_wheel_carries_what_inference_reads_and_no_audio(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    listed = json.loads((bundle.SHIPPED_FOLDER / bundle.MANIFEST).read_text())["files"]
    shipped = {n.removeprefix("ser_core/artifacts/") for n in names if n.startswith("ser_core/artifacts/")}
    assert shipped == (set(listed) - set(bundle.NOT_INSTALLED)) | {bundle.MANIFEST}
    assert {bundle.MODEL_TFLITE, bundle.FEATURES_NPZ, bundle.LABELS_TXT, bundle.CONFIG_JSON} <= shipped
    assert not [n for n in names if n.lower().endswith(AUDIO_SUFFIXES)], "no recording belongs in the wheel"
    assert "ser_core/data/silero_vad_16k_sequence.onnx" in names
    assert [n for n in names if ".dist-info/" in n and n.endswith("LICENSE")], "the licence travels with the code"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT AND CC-BY-NC-SA-4.0" in metadata.splitlines()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [r for r in requires if any(p in r for p in ("tensorflow", "librosa", "scikit-learn", "gradio"))]


def test_the_installed_package_and_its_model_come_from_the_environment(venv, elsewhere, bundle_dir):
    script = (
        "import json, ser_core\n"
        "from ser_core import EmotionClassifier\n"
        "a, b = EmotionClassifier(), EmotionClassifier.load()\n"
        "p = a.predict('x.wav')\n"
        "print(json.dumps({'module': ser_core.__file__, 'default': str(a.bundle.path), 'load': str(b.bundle.path),"
        " 'probabilities': p.probabilities}))\n"
    )
    got = json.loads(_run(venv / "bin" / "python", "-c", script, cwd=elsewhere).stdout)
    site_packages = _site_packages(venv)
    for key in ("module", "default", "load"):
        assert Path(got[key]).is_relative_to(site_packages), (key, got[key])
    from ser_core import EmotionClassifier

    want = EmotionClassifier.load(bundle_dir).predict(elsewhere / "x.wav").probabilities
    assert got["probabilities"] == pytest.approx(want, abs=1e-6)


def test_ser_core_predict_judges_a_file_from_another_folder(venv, elsewhere, bundle_dir):
    from ser_core import EmotionClassifier

    text = _run(venv / "bin" / "ser-core", "predict", "x.wav", cwd=elsewhere)
    assert text.returncode == 0, text.stderr
    header, row = text.stdout.splitlines()
    assert header.split() == ["file", "emotion", "confidence", "intensity"] and row.startswith("x.wav")
    out = _run(venv / "bin" / "ser-core", "predict", "--json", "x.wav", cwd=elsewhere)
    (line,) = out.stdout.splitlines()
    got = json.loads(line)
    want = EmotionClassifier.load(bundle_dir).predict(elsewhere / "x.wav")
    assert got["emotion"] == want.emotion and got["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)


def test_an_argument_or_the_environment_still_selects_another_bundle(venv, elsewhere, bundle_dir, tmp_path):
    chosen = _run(
        venv / "bin" / "ser-core", "predict", "--json", "--artifacts", str(bundle_dir), "x.wav", cwd=elsewhere
    )
    assert chosen.returncode == 0 and "emotion" in json.loads(chosen.stdout)
    nowhere = tmp_path / "no-bundle"
    for extra, env in ((["--artifacts", str(nowhere)], {}), ([], {bundle.ENV_VAR: str(nowhere)})):
        out = _run(venv / "bin" / "ser-core", "predict", "--json", *extra, "x.wav", cwd=elsewhere, **env)
        assert out.returncode == 1 and f"No artifacts folder at {nowhere}" in out.stderr


@contextlib.contextmanager
def _serving(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """``argv`` (a ``serve`` command, given ``--port``) running until it answers ``/v1/health``:
    yields its address and its log; stopped with SIGTERM, as a service manager does."""
    port = free_port()
    log_path = cwd / f"serve-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*argv, "--port", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert server.poll() is None, log_path.read_text()
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{base}/v1/health", timeout=5) as r:
                        assert json.loads(r.read()) == {"status": "ok"}
                        break
                assert time.monotonic() < deadline, "the server did not answer in time"
                time.sleep(0.2)
            yield base, log_path
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def test_python_m_ser_core_serve_answers_from_the_installed_model(venv, elsewhere, bundle_dir):
    import httpx

    from ser_core import EmotionClassifier

    with _serving([str(venv / "bin" / "python"), "-m", "ser_core", "serve"], elsewhere, _clean_env()) as (base, _):
        with (elsewhere / "x.wav").open("rb") as f:
            got = httpx.post(f"{base}/v1/predict", files={"file": ("x.wav", f, "audio/wav")}, timeout=60).json()
    want = EmotionClassifier.load(bundle_dir).predict(elsewhere / "x.wav")
    assert got["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)


def test_export_from_the_installed_package(venv, elsewhere):
    tflite = _run(venv / "bin" / "ser-core", "export", "--format", "tflite", "--out", "tflite", cwd=elsewhere)
    assert tflite.returncode == 0 and (elsewhere / "tflite" / "model.tflite").is_file()
    onnx = _run(venv / "bin" / "ser-core", "export", "--format", "onnx", "--out", "onnx", cwd=elsewhere)
    assert onnx.returncode == 1 and not (elsewhere / "onnx").exists()
    (line,) = onnx.stderr.strip().splitlines()
    assert line.startswith("error: ONNX export needs 'model.keras'") and "clone of the repository" in line
    assert line.count(". ") == 0 and line.endswith(".")


# ---------------------------------------------------------------- the lean install

LEAN_MISSING = (  # what requirements.txt leaves out: no command of the lean install may import it
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "sklearn",
    "librosa",
    "numba",
    "scipy",
    "joblib",
    "matplotlib",
    "dask",
    "distributed",
)

BLOCKER = f"""
import importlib.abc, sys
MISSING = {LEAN_MISSING!r}

class Lean(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the lean install)", name=name)
        return None

sys.meta_path.insert(0, Lean())
"""

LEAN_DEMO = """
import numpy as np
from ser_core import EmotionClassifier
from ser_core.serve import gradio_app as app
clf = EmotionClassifier()
app.build_app(clf)
y = np.sin(np.arange(16_000 * 6) / 9.0).astype(np.float32)  # longer than a window: a timeline too
result = app.analyse(clf, (16_000, y))
print(result.prediction.emotion, result.timeline is not None)
"""


def _lean(*args: str, script: str | None = None, cwd: Path | None = None, timeout: float = 180):
    """Run the command line (or ``script``) from the checkout with the lean install's missing packages blocked."""
    code = BLOCKER + (script or "from ser_core.cli import main\nraise SystemExit(main(sys.argv[1:]))\n")
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(PYTHONPATH=str(REPO)),
    )
    assert "Traceback" not in out.stderr and "not in the lean install" not in out.stdout + out.stderr, out.stderr
    return out


def test_the_blocker_would_see_a_training_import():
    """Control: a command that needs a training package fails under the blocker."""
    out = subprocess.run(
        [sys.executable, "-c", BLOCKER + "import librosa"], capture_output=True, text=True, env=_clean_env()
    )
    assert out.returncode != 0 and "not in the lean install" in out.stderr


def test_lean_commands_import_no_training_package(tmp_path):
    long = tmp_path / "talk.wav"
    sf.write(str(long), np.concatenate([speech_like(2.0, 16_000, seed=s) for s in range(3)]), 16_000)
    for args in (
        ["predict", str(long)],
        ["predict", "--json", "--jobs", "2", *[str(long)] * 9],  # worker processes
        ["timeline", str(long)],
        ["timeline", "--segments", str(long)],
        ["export", "--format", "tflite", "--out", str(tmp_path / "export")],
        ["predict", "--summary", str(tmp_path / "summary.html"), str(long)],
    ):
        out = _lean(*args, cwd=tmp_path)
        assert out.returncode == 0, (args, out.stderr)
    png = _lean("predict", "--summary", str(tmp_path / "summary.png"), str(long), cwd=tmp_path)
    assert png.returncode == 2 and "pip install matplotlib" in png.stderr and png.stdout == ""
    onnx = _lean("export", "--format", "onnx", "--out", str(tmp_path / "onnx"), cwd=tmp_path)
    assert onnx.returncode == 1 and "requirements-train.txt" in onnx.stderr


def test_lean_demo_and_rest_api_import_no_training_package(tmp_path):
    pytest.importorskip("gradio")
    out = _lean(script=LEAN_DEMO, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    code = BLOCKER + "from ser_core.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    argv = [sys.executable, "-c", code, "serve"]
    with _serving(argv, tmp_path, _clean_env(PYTHONPATH=str(REPO))) as (_, log):
        pass
    said = log.read_text()
    assert "not in the lean install" not in said and "Traceback" not in said
