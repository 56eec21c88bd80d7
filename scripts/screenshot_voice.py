"""Screenshot of the demo adapted to a voice: RAVDESS actor 12 uploads three recordings of six
sentences each (every emotion, with pauses), which teach the page their voice, then a fourth,
judged relative to it; headless Chromium photographs the page.

    PYTHONPATH=.:tests .venv/bin/python scripts/screenshot_voice.py docs/screens/voice-adapted.png
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

ACTOR = 12
RECORDINGS = (  # emotion-intensity-statement-repetition of each sentence, one recording a row
    ("01-01-01-01", "02-01-02-01", "03-01-01-02", "04-02-02-01", "05-01-01-01", "07-01-02-02"),
    ("02-02-01-01", "03-02-02-02", "06-01-01-01", "08-01-02-01", "01-01-02-02", "05-02-02-01"),
    ("04-01-01-02", "06-02-02-01", "07-02-01-01", "08-02-01-02", "02-01-01-02", "03-01-02-01"),
    ("01-01-01-02", "03-02-01-01", "05-02-01-02", "06-01-02-02", "08-01-01-01", "02-02-02-02"),
)
PAUSES = (0.6, 0.9, 0.5, 1.2, 0.7, 0.8)


def recording(path: Path, codes: tuple[str, ...]) -> None:
    """Six sentences of the actor, trimmed, with pauses between them, as one WAV."""
    parts = [np.zeros(int(0.4 * audio.SAMPLE_RATE), np.float32)]
    for code, pause in zip(codes, PAUSES, strict=True):
        y = audio.trim_silence(audio.load(RAVDESS / f"Actor_{ACTOR:02d}" / f"03-01-{code}-{ACTOR:02d}.flac"))
        parts += [y, np.zeros(int(pause * audio.SAMPLE_RATE), np.float32)]
    sf.write(str(path), np.concatenate(parts), audio.SAMPLE_RATE, subtype="PCM_16")


def main(target: str) -> None:
    clf = EmotionClassifier.load()
    if clf.adapted is None:
        sys.exit("this model bundle has no adapted model of this design; set SER_ARTIFACTS to one that has")
    with tempfile.TemporaryDirectory() as tmp, launched_demo(clf) as url:
        files = []
        for i, codes in enumerate(RECORDINGS):
            files.append(Path(tmp) / f"actor-{ACTOR}-{i + 1}.wav")
            recording(files[-1], codes)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url)
            for i, path in enumerate(files):
                if i:
                    page.locator("#audio-in button[aria-label='Clear']").click()
                    page.wait_for_selector("#verdict [data-emotion]", state="detached")
                page.locator("#audio-in button[aria-label='Upload file']").click()
                page.locator("#audio-in input[type=file]").set_input_files(str(path))
                page.wait_for_selector(f'#voice-status [data-recordings="{i + 1}"]')
                page.wait_for_selector("#utterance-table table")
            page.wait_for_selector("#verdict [data-adapted=true]")
            page.wait_for_selector("#utterances .js-plotly-plot")
            page.wait_for_timeout(1_000)  # Plotly's transition
            page.screenshot(path=target, full_page=True)
            print(page.locator("#voice-status").inner_text())
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
