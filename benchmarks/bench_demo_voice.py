"""What the demo's learning of a visitor's voice costs: a recording analysed as the page analyses it
(:func:`ser_core.serve.gradio_app.analyse`) without a visitor, with one still learning, and with one
already adapted; and adding one recording's features to the voice. Synthetic speech, so it runs
anywhere; needs a bundle with an adapted model of this design (``$SER_ARTIFACTS``).

    SER_ARTIFACTS=<bundle> .venv/bin/python benchmarks/bench_demo_voice.py
"""

from __future__ import annotations

import os
import sys

from bench import REPO, median_ms  # the speed benchmark's timer and path set-up

sys.path.insert(0, str(REPO / "tests"))
from conftest import speech_like  # noqa: E402

from ser_core import EmotionClassifier  # noqa: E402
from ser_core.serve import gradio_app as app  # noqa: E402

SR = 16_000
LENGTHS = (3.0, 8.0, 65.0)  # one clip; a timeline in memory; over a minute (heard as a stream)


def main() -> None:
    clf = EmotionClassifier.load(jobs=1)
    if clf.adapted is None:
        sys.exit("this bundle has no adapted model of this design; set SER_ARTIFACTS to one that has")
    adapted = app.VisitorVoice()
    for i in range(18):
        adapted.learn(clf, clf.hear(speech_like(3.0, SR, f0=110.0 + 5 * i, seed=i), SR))
    assert adapted.current() is not None
    print(f"load average {os.getloadavg()[0]:.2f}; one thread; medians")
    for seconds in LENGTHS:
        y = speech_like(seconds, SR, seed=99)
        repeat = 3 if seconds > 60 else 9
        alone = median_ms(lambda y=y: app.analyse(clf, (SR, y)), repeat=repeat)
        learning = median_ms(lambda y=y: app.analyse(clf, (SR, y), visitor=app.VisitorVoice()), repeat=repeat)
        judged = median_ms(
            lambda y=y: app.analyse(clf, (SR, y), visitor=app.VisitorVoice(adapted.voice)), repeat=repeat
        )
        heard = clf.hear(y, SR)
        learn = median_ms(lambda h=heard: app.VisitorVoice(adapted.voice).learn(clf, h), repeat=30)
        clips = len(heard.rows)
        print(
            f"{seconds:>5.1f} s recording: {alone:7.1f} ms without a voice, {learning:7.1f} ms learning "
            f"({learning - alone:+.1f}), {judged:7.1f} ms adapted ({judged - alone:+.1f}); "
            f"adding its {clips} clip{'s' if clips != 1 else ''} to a voice: {learn:.2f} ms"
        )


if __name__ == "__main__":
    main()
