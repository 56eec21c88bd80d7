"""Shared fixtures: synthetic signals made here, a few real RAVDESS files, the shipped model."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
RAVDESS = REPO.parent / "shared" / "data" / "ravdess-speech-16k"


def speech_like(seconds: float = 2.0, sr: int = 16_000, *, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like test signal: a gliding harmonic tone under a syllable envelope,
    with a little noise, between 0.25 s of silence at each end. Shape ``(n,)``, float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t)) * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)
    y = 0.3 * voiced * envelope + 0.003 * rng.standard_normal(n)
    pad = np.zeros(int(0.25 * sr))
    return np.concatenate([pad, y, pad]).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    """Seeded randomness for every test that needs it."""
    return np.random.default_rng(1234)


@pytest.fixture
def speech() -> np.ndarray:
    """Two seconds of synthetic speech-like sound at 16 kHz."""
    return speech_like()


@pytest.fixture(scope="session")
def ravdess_files() -> list[Path]:
    """One real file per emotion from actor 01 (seven classes), from the shared data."""
    if not RAVDESS.is_dir():
        pytest.skip(f"RAVDESS is not at {RAVDESS}")
    files = [RAVDESS / "Actor_01" / f"03-01-{e:02d}-01-01-01-01.flac" for e in (1, 2, 3, 5, 6, 7, 8)]
    return [f for f in files if f.exists()]


@pytest.fixture(scope="session")
def classifier():
    """The shipped model, loaded once."""
    from ser_core import EmotionClassifier

    return EmotionClassifier.load()


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The model bundle the tests load: ``$SER_ARTIFACTS`` or the shipped ``ser_core/artifacts/``."""
    from ser_core.bundle import default_folder

    folder = default_folder()
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"no model bundle at {folder}; run train.py or set SER_ARTIFACTS")
    return folder


@pytest.fixture(scope="session")
def cli(bundle_dir):
    """Run ``python -m ser_core ARGS`` in a fresh process with the test bundle; never a traceback.

    ``cli("predict", "--json", path, timeout=60)`` returns the CompletedProcess
    (text stdout/stderr); ``--artifacts`` is added to predict/timeline unless given.
    """
    import subprocess
    import sys

    def run(*args: str, timeout: float = 120, artifacts: bool = True) -> subprocess.CompletedProcess:
        argv = [str(a) for a in args]
        if artifacts and argv and argv[0] in ("predict", "timeline") and "--artifacts" not in argv:
            argv[1:1] = ["--artifacts", str(bundle_dir)]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-m", "ser_core", *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    return run


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched_demo(classifier) -> Iterator[str]:
    """The Gradio demo served on 127.0.0.1 and a free port in a background thread; yields its URL."""
    from ser_core.serve import gradio_app as app

    demo = app.build_app(classifier)
    demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **app.launch_options()
    )
    try:
        yield demo.local_url
    finally:
        demo.close()
