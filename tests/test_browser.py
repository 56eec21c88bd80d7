"""The demo in a real browser: headless Debian Chromium driven by Playwright.

The microphone is Chromium's fake capture device playing a WAV made here, so "record, stop"
sends real browser-recorded audio through the page. Screenshots go to ``tmp_path`` and,
for the lead to look at, to ``$SER_SCREENS`` when set (desktop, phone, dark mode).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import launched_demo, speech_like

from ser_core import EMOTIONS

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("SER_CHROMIUM", "/usr/bin/chromium"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
VERDICT_TIMEOUT_MS = 60_000  # generous: the machine is shared; times are reported, not asserted


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory) -> Path:
    """Four seconds of speech-like sound, 48 kHz 16-bit, for Chromium's fake capture device."""
    path = tmp_path_factory.mktemp("mic") / "voice.wav"
    sf.write(path, speech_like(4.0, 48_000), 48_000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(classifier) -> str:
    with launched_demo(classifier) as url:
        yield url


@pytest.fixture(scope="module")
def browser(fake_microphone):
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_microphone}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def open_page(browser, server, *, viewport=DESKTOP, dark=False):
    context = browser.new_context(
        viewport=viewport, color_scheme="dark" if dark else "light", permissions=["microphone"]
    )
    page = context.new_page()
    page.set_default_timeout(VERDICT_TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#audio-in button.record-button")
    return context, page


def shoot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("SER_SCREENS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def wait_for_result(page) -> str:
    """Wait for a verdict and its bar chart; return the verdict's emotion."""
    page.wait_for_selector("#verdict [data-emotion]")
    page.wait_for_selector("#bars .js-plotly-plot")
    # the page starts with an all-0% chart: wait for the verdict's bars, not that one
    page.wait_for_function(
        "() => [...document.querySelectorAll('#bars text.bartext')].some(e => e.textContent.trim() !== '0%')"
    )
    return page.locator("#verdict [data-emotion]").get_attribute("data-emotion")


def assert_bars(page) -> None:
    def texts(selector: str) -> list[str]:
        return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")

    top_to_bottom = page.eval_on_selector_all(
        "#bars .ytick text",
        "els => els.map(e => [e.getBoundingClientRect().y, e.textContent]).sort((a, b) => a[0] - b[0]).map(p => p[1])",
    )
    assert [label.split()[-1] for label in top_to_bottom] == list(EMOTIONS)
    bar_texts = texts("#bars text.bartext")
    assert len(bar_texts) == len(EMOTIONS) and all(t.endswith("%") for t in bar_texts)


def upload(page, path: Path) -> None:
    page.locator("#audio-in button[aria-label='Upload file']").click()
    page.locator("#audio-in input[type=file]").set_input_files(str(path))


def test_record_stop_shows_verdict_and_chart(browser, server, tmp_path):
    context, page = open_page(browser, server)
    page.locator("#audio-in button.record-button").click()
    page.wait_for_timeout(3_000)
    page.locator("#audio-in button.stop-button").click()
    emotion = wait_for_result(page)
    assert emotion in EMOTIONS
    assert "confidence" in page.locator("#verdict").inner_text()
    assert_bars(page)
    shoot(page, tmp_path, "desktop-recorded")
    context.close()


def test_upload_shows_verdict_chart_and_timeline(browser, server, classifier, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, speech_like(3.0, 44_100), 44_100, subtype="PCM_16")  # 3.5 s with its padding
    loading = time.perf_counter()
    context, page = open_page(browser, server)
    started = time.perf_counter()
    upload(page, short)
    emotion = wait_for_result(page)
    done = time.perf_counter()
    print(
        f"\nbrowser, 3.5 s WAV: page load to verdict {done - loading:.2f} s, upload to verdict {done - started:.2f} s"
    )
    assert emotion == classifier.predict(short).emotion
    assert_bars(page)
    assert not page.locator("#timeline").is_visible()
    shoot(page, tmp_path, "desktop-upload")

    long = tmp_path / "long.wav"
    sf.write(long, speech_like(9.0, 44_100), 44_100, subtype="PCM_16")
    page.locator("#audio-in button[aria-label='Clear']").click()
    page.wait_for_selector("#verdict [data-emotion]", state="detached")
    upload(page, long)
    emotion = wait_for_result(page)
    assert emotion == classifier.predict(long).emotion  # the page shows the library's verdict
    page.wait_for_selector("#timeline .js-plotly-plot")
    assert page.locator("#timeline-csv").is_visible()
    shoot(page, tmp_path, "desktop-timeline")
    context.close()


def test_bad_upload_shows_the_sentence_and_the_page_keeps_working(browser, server, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n" * 50)
    context, page = open_page(browser, server)
    upload(page, bad)
    toast = page.get_by_text("could not be decoded")
    toast.wait_for()
    assert "Traceback" not in page.content()
    assert page.locator("#verdict [data-emotion]").count() == 0
    page.locator("#audio-in button[aria-label='Clear']").click()
    good = tmp_path / "good.wav"
    sf.write(good, speech_like(2.0, 48_000), 48_000)
    upload(page, good)
    assert wait_for_result(page) in EMOTIONS
    context.close()


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_phone_and_dark_mode_render(browser, server, tmp_path, dark):
    context, page = open_page(browser, server, viewport=PHONE if dark is False else DESKTOP, dark=dark)
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech_like(6.0, 44_100), 44_100)
    upload(page, clip)
    wait_for_result(page)
    page.wait_for_selector("#timeline .js-plotly-plot")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]  # no sideways scrolling
    if dark:
        assert page.evaluate(
            "document.body.classList.contains('dark') || document.documentElement.classList.contains('dark')"
        )
    page.locator("#help").get_by_text("What to say").click()
    page.get_by_text("Kids are talking by the door").first.wait_for()
    shoot(page, tmp_path, "dark" if dark else "phone")
    context.close()


def start_recording(page, component: str, attempts: int = 3) -> None:
    """Press record until the component shows it is recording: a tab rendered on first visit may
    take the first click before its handlers are attached (at most ``attempts`` presses)."""
    for _ in range(attempts):
        page.locator(f"{component} button.record-button").click()
        try:
            page.wait_for_selector(f"{component} button.stop-button", timeout=5_000)
            return
        except Exception:  # playwright's TimeoutError: not recording yet
            continue
    raise AssertionError(f"{component} did not start recording after {attempts} presses")


def start_live(page, attempts: int = 3) -> None:
    """Start the live stream until its first timeline point shows. In fresh CI clones Chromium's
    fake microphone has now and then started recording without any chunk reaching the server;
    a visitor presses record again, and so does this (at most ``attempts`` times, bounded waits)."""
    for attempt in range(attempts):
        start_recording(page, "#live-in")
        try:
            page.wait_for_selector("#live-timeline .js-plotly-plot", timeout=VERDICT_TIMEOUT_MS // attempts)
            return
        except Exception:  # playwright's TimeoutError: no point yet
            print(
                f"\nbrowser: no live point after attempt {attempt + 1}: {page.locator('#live-verdict').inner_text()!r}"
            )
            page.locator("#live-in button.stop-button").click()
            page.wait_for_selector("#live-in button.record-button")
    raise AssertionError(f"the live timeline showed no point after {attempts} recordings")


def test_live_timeline_grows_while_speaking(browser, server, tmp_path):
    context, page = open_page(browser, server)
    page.get_by_role("tab", name="Live").click()
    start_live(page)
    counts, started = [], time.perf_counter()
    for _ in range(30):  # sampled once a second; on a loaded machine updates may pause for a few seconds
        page.wait_for_timeout(1_000)
        counts.append(
            page.evaluate(
                "() => { const p = document.querySelector('#live-timeline .js-plotly-plot');"
                " return p && p.data ? p.data[0].x.length : 0; }"
            )
        )
        if len(counts) >= 6 and counts[-1] >= counts[0] + 2:
            break
    print(f"\nbrowser: live timeline points once a second over {time.perf_counter() - started:.1f} s: {counts}")
    assert counts[-1] >= counts[0] + 2  # new points keep arriving while the microphone streams
    html = page.locator("#live-verdict").inner_html()
    assert "data-emotion" in html or "No speech" in html
    shoot(page, tmp_path, "live")
    page.locator("#live-in button.stop-button").click()
    page.wait_for_timeout(1_000)  # let the last chunk upload finish before the tab closes
    context.close()


def clear(page) -> None:
    page.locator("#audio-in button[aria-label='Clear']").click()
    page.wait_for_selector("#verdict [data-emotion]", state="detached")


def test_the_page_learns_the_voice_as_it_is_used(browser, server, classifier, tmp_path):
    """Uploads and a microphone recording teach the visitor's voice: the status line counts them and
    says how much more it needs; the recording that completes it is judged by the model alone and
    says the next ones are adapted; the next ones are the library's adapted verdicts, and the card,
    bars, timeline and live tab say so. Another visitor's page knows nothing of it; the reset forgets it."""
    if classifier.adapted is None:
        pytest.skip("the bundle has no adapted model of this design")
    from ser_core.serve import gradio_app as app

    takes = []
    for i in range(4):
        takes.append(tmp_path / f"take-{i}.wav")
        sf.write(takes[-1], speech_like(11.0, 44_100, f0=115.0 + 10 * i, seed=i), 44_100, subtype="PCM_16")
    switch = next(k for k in range(1, 5) if classifier.adapt(takes[:k]).source is not None) - 1
    assert switch < len(takes) - 1  # the last take is judged relative to the voice
    context, page = open_page(browser, server)
    page.wait_for_selector('#voice-status [data-adapted=false][data-recordings="0"]')
    assert "Learning your voice (nothing yet)" in page.locator("#voice-status").inner_text()
    for k, take in enumerate(takes):
        if k:
            clear(page)
        upload(page, take)
        emotion = wait_for_result(page)
        page.wait_for_selector(f'#voice-status [data-recordings="{k + 1}"]')
        card = page.locator("#verdict [data-emotion]")
        if k < switch:
            assert page.locator("#voice-status [data-adapted=false]").count() == 1
            assert "s more of speech" in page.locator("#voice-status").inner_text()
            assert card.get_attribute("data-adapted") == "false" and emotion == classifier.predict(take).emotion
        elif k == switch:
            page.wait_for_selector("#voice-status [data-adapted=true][data-source=same-speaker]")
            assert card.get_attribute("data-adapted") == "false" and emotion == classifier.predict(take).emotion
            assert "your next recordings are judged relative to it" in page.locator("#verdict").inner_text()
            shoot(page, tmp_path, "desktop-voice-switched-on")
        else:
            voice = classifier.adapt(takes[: k + 1])
            assert card.get_attribute("data-adapted") == "true"
            assert emotion == classifier.predict(take, voice=voice).emotion  # the library's adapted verdict
            assert voice.describe() in page.locator("#verdict").inner_text()
            page.wait_for_selector("#timeline .js-plotly-plot")
            for panel in ("#bars", "#timeline"):
                assert app.ADAPTED_LABEL.strip() in page.locator(panel).inner_text()
    shoot(page, tmp_path, "desktop-voice-adapted")

    clear(page)
    page.locator("#audio-in button[aria-label='Record audio']").click()  # the microphone teaches it too
    page.locator("#audio-in button.record-button").click()
    page.wait_for_timeout(3_000)
    page.locator("#audio-in button.stop-button").click()
    wait_for_result(page)
    page.wait_for_selector(f'#voice-status [data-recordings="{len(takes) + 1}"]')
    assert page.locator("#verdict [data-emotion]").get_attribute("data-adapted") == "true"

    page.get_by_role("tab", name="Live").click()
    start_live(page)
    page.wait_for_selector("#live-verdict .ser-verdict[data-adapted=true]")
    assert "Adapted to your voice from" in page.locator("#live-verdict").inner_text()
    page.locator("#live-in button.stop-button").click()
    page.wait_for_selector("#live-in button.record-button")

    other_context, other = open_page(browser, server)  # another visitor, meanwhile
    other.wait_for_selector('#voice-status [data-adapted=false][data-recordings="0"]')
    upload(other, takes[-1])
    assert wait_for_result(other) == classifier.predict(takes[-1]).emotion
    assert other.locator("#verdict [data-emotion]").get_attribute("data-adapted") == "false"
    other.wait_for_selector('#voice-status [data-adapted=false][data-recordings="1"]')
    other_context.close()

    page.get_by_role("tab", name="Record or upload").click()
    page.locator("#voice-forget").click()
    page.wait_for_selector('#voice-status [data-adapted=false][data-recordings="0"]')
    assert "Learning your voice (nothing yet)" in page.locator("#voice-status").inner_text()
    context.close()


def test_calibrate_to_my_voice_then_forget(browser, server, classifier, ravdess_files, tmp_path):
    """The calibration step adds a neutral reading to the voice the page is learning: verdicts are
    the library's adapted ones at once and say so; the reset forgets everything."""
    if classifier.adapted is None:
        pytest.skip("the bundle has no adapted model of this design")
    neutral, angry = ravdess_files[0], ravdess_files[3]
    context, page = open_page(browser, server)
    upload(page, angry)
    assert wait_for_result(page) == classifier.predict(angry).emotion
    page.wait_for_selector('#voice-status [data-adapted=false][data-recordings="1"]')
    shoot(page, tmp_path, "desktop-before-calibration")

    page.locator("#calibrate").get_by_text("Calibrate to my voice").click()
    page.locator("#calibrate-in button[aria-label='Upload file']").click()
    page.locator("#calibrate-in input[type=file]").set_input_files(str(neutral))
    page.wait_for_selector("#voice-status [data-adapted=true][data-source=reference]")
    assert "s of calibration and 1 recording" in page.locator("#voice-status").inner_text()
    clear(page)
    upload(page, angry)
    emotion = wait_for_result(page)
    voice = classifier.adapt([angry, angry], voice=classifier.calibrate([neutral]))
    assert emotion == classifier.predict(angry, voice=voice).emotion
    assert page.locator("#verdict [data-emotion]").get_attribute("data-adapted") == "true"
    assert "Adapted to your voice from" in page.locator("#verdict").inner_text()
    shoot(page, tmp_path, "desktop-after-calibration")

    page.locator("#voice-forget").click()
    page.wait_for_selector('#voice-status [data-adapted=false][data-recordings="0"]')
    clear(page)
    upload(page, angry)
    assert wait_for_result(page) == classifier.predict(angry).emotion
    assert page.locator("#verdict [data-emotion]").get_attribute("data-adapted") == "false"
    context.close()
