"""Screenshot of the demo with utterance bands: six RAVDESS sentences of actor 12 (neutral, happy,
angry, fearful, surprised, calm) with pauses, uploaded to the page in headless Chromium.

    PYTHONPATH=.:tests .venv/bin/python scripts/screenshot_segments.py docs/screens/segments.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import RAVDESS, launched_demo
from playwright.sync_api import sync_playwright

from ser_core import EmotionClassifier, audio

SENTENCES = ("01-01-01", "03-02-01", "05-02-02", "06-02-01", "08-02-02", "02-02-01")  # emotion-intensity-statement
PAUSES = (0.6, 0.9, 0.5, 1.2, 0.7, 0.8)


def recording(path: Path) -> None:
    parts = [np.zeros(int(0.4 * audio.SAMPLE_RATE), np.float32)]
    for code, pause in zip(SENTENCES, PAUSES, strict=True):
        y = audio.trim_silence(audio.load(RAVDESS / "Actor_12" / f"03-01-{code}-01-12.flac"))
        parts += [y, np.zeros(int(pause * audio.SAMPLE_RATE), np.float32)]
    sf.write(str(path), np.concatenate(parts), audio.SAMPLE_RATE, subtype="PCM_16")


def main(target: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, launched_demo(EmotionClassifier.load()) as url:
        wav = Path(tmp) / "six-sentences.wav"
        recording(wav)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.locator("#audio-in button[aria-label='Upload file']").click()
            page.locator("#audio-in input[type=file]").set_input_files(str(wav))
            page.wait_for_selector("#utterances .js-plotly-plot")
            page.wait_for_selector("#utterance-table table")
            page.wait_for_timeout(1_000)  # Plotly's transition
            page.screenshot(path=target, full_page=True)
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
