"""The launched demo, called over HTTP the way a user's script would: gradio_client."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, launched_demo, speech_like

from ser_core import EMOTIONS
from ser_core.serve import gradio_app as app

UPLOAD_LIMIT_BYTES = 2**20  # small, so the test can cross it cheaply


@pytest.fixture(scope="module")
def server(classifier):
    """The demo on 127.0.0.1 and a free port, in a background thread, with a 1 MB upload limit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(app, "MAX_UPLOAD_BYTES", UPLOAD_LIMIT_BYTES)
        with launched_demo(classifier) as url:
            mp.undo()
            yield url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def wav(path: Path, seconds: float, sr: int = 44_100) -> str:
    sf.write(path, speech_like(seconds, sr), sr, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("seconds", [3.5, 7.0])
def test_predict_endpoint_returns_the_contract(client, classifier, tmp_path, seconds):
    from gradio_client import handle_file

    path = wav(tmp_path / "x.wav", seconds)
    out = client.predict(handle_file(path), api_name="/predict")
    assert set(out) == {"emotion", "confidence", "probabilities", "intensity", "adapted"} and out["adapted"] is None
    assert list(out["probabilities"]) == list(EMOTIONS)
    assert sum(out["probabilities"].values()) == pytest.approx(1.0)
    assert out["emotion"] == max(out["probabilities"], key=out["probabilities"].get)
    assert out["confidence"] == pytest.approx(out["probabilities"][out["emotion"]])
    local = app.api_predict(classifier, path)
    assert out["emotion"] == local["emotion"]
    assert out["probabilities"] == pytest.approx(local["probabilities"])


def test_only_predict_is_public(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/predict"] and not api["unnamed_endpoints"]


@pytest.mark.parametrize(
    "content, message", [(b"not audio at all" * 64, "could not be decoded"), (np.zeros(32_000, np.int16), "silent")]
)
def test_bad_upload_gets_the_sentence_not_a_traceback(client, tmp_path, content, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / "bad.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        sf.write(path, content, 16_000)
    with pytest.raises(AppError, match=message) as err:
        client.predict(handle_file(str(path)), api_name="/predict")
    assert "Traceback" not in str(err.value)
    out = client.predict(handle_file(wav(tmp_path / "ok.wav", 2.0)), api_name="/predict")  # still alive
    assert out["emotion"] in EMOTIONS


def test_upload_over_the_stated_limit_is_refused_by_the_server(server, client, tmp_path):
    from gradio_client import handle_file

    big = wav(tmp_path / "big.wav", 20.0)  # 20 s of 16-bit 44.1 kHz mono is about 1.7 MB
    assert Path(big).stat().st_size > UPLOAD_LIMIT_BYTES
    with pytest.raises(Exception, match="(?i)too large|exceeds|maximum"):
        client.predict(handle_file(big), api_name="/predict")
    page = httpx.get(f"{server}config", timeout=10).text
    assert f"up to {UPLOAD_LIMIT_BYTES / 2**20:g} MB" in page


def test_files_outside_the_upload_cache_are_not_served(server):
    for target in (REPO / "demo.py", Path("/etc/passwd")):
        r = httpx.get(f"{server}gradio_api/file={target}", timeout=10)
        assert r.status_code in (403, 404), target
        assert "import" not in r.text and "root:" not in r.text


def test_predict_endpoint_takes_a_reference_recording(client, classifier, tmp_path):
    from gradio_client import handle_file

    if not classifier.adapted:
        pytest.skip("the shipped bundle has no adapted models")
    path, reference = wav(tmp_path / "x.wav", 3.0), wav(tmp_path / "ref.wav", 6.0)
    out = client.predict(handle_file(path), handle_file(reference), api_name="/predict")
    assert out["adapted"] == "reference"
    local = app.api_predict(classifier, path, reference)
    assert out["probabilities"] == pytest.approx(local["probabilities"])
    assert out["probabilities"] != pytest.approx(app.api_predict(classifier, path)["probabilities"], abs=1e-4)
