"""Running many files from Python: ser_core.batch.run gives the command line's rows, in order, on
local processes, for verdicts and timelines, with or without a voice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

from ser_core import EmotionClassifier
from ser_core.batch import BatchOptions, find_inputs, run
from ser_core.errors import ParameterError

SR = 16_000


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Ten short synthetic recordings in a folder tree, and a text file the search skips."""
    root = tmp_path_factory.mktemp("batch")
    for i in range(10):
        sub = root / ("a" if i < 5 else "b")
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"clip{i}.wav", speech_like(2.0 + 0.1 * i, SR, f0=110 + 15 * i, seed=i), SR)
    (root / "notes.txt").write_text("not audio")
    return root


def test_run_scores_a_folder_like_the_command_line(folder, cli):
    rows = list(run([folder], BatchOptions(jobs=2)))
    proc = cli("predict", "--json", "--jobs", "2", folder)
    assert rows == [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [f"clip{i}.wav" for i in range(10)]


def test_one_process_and_two_give_the_same_rows(folder):
    assert list(run([folder], BatchOptions(jobs=1))) == list(run([folder], BatchOptions(jobs=2)))


def test_rows_are_the_classifiers_verdicts(folder, classifier):
    (row,) = run([folder / "a" / "clip0.wav"], BatchOptions(jobs=1))
    expected = classifier.predict(folder / "a" / "clip0.wav").to_dict()
    assert row == {"path": str(folder / "a" / "clip0.wav"), **expected, "adapted": None}


def test_timelines_and_voices(folder, classifier):
    path = str(folder / "b" / "clip9.wav")
    (row,) = run([path], BatchOptions(jobs=1, timeline=(1.0, 0.5)))
    assert row == {"path": path, **classifier.timeline(path, window=1.0, hop=0.5).to_dict(), "adapted": None}
    if not classifier.adapted:
        pytest.skip("the shipped bundle has no adapted models")
    voice = classifier.calibrate(speech_like(4.0, SR, seed=99), SR)
    (row,) = run([path], BatchOptions(jobs=1, voice=voice))
    assert row["adapted"] == "reference"
    assert row["probabilities"] == classifier.predict(path, voice=voice).probabilities


def test_bad_inputs_get_one_row_each_and_found_inputs_are_taken_as_they_are(folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    rows = list(run([tmp_path / "missing.wav", empty, broken], BatchOptions(jobs=1)))
    assert [("error" in r) for r in rows] == [True, True, True]
    assert "does not exist" in rows[0]["error"] and "holds no audio files" in rows[1]["error"]
    found = list(find_inputs([folder / "a"]))
    assert [r["path"] for r in run(found, BatchOptions(jobs=1))] == [p for p, _ in found]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"jobs": 0}, "jobs must be at least 1"),
        ({"batch_size": 0}, "at least 1 file"),
        ({"timeline": (100.0, 1.0)}, "window must be between"),
        ({"timeline": (3.5, 0.01)}, "hop must be at least"),
    ],
)
def test_options_are_checked_when_made(options, match):
    with pytest.raises(ParameterError, match=match):
        BatchOptions(**options)


def test_bad_artifacts_raise_once_before_any_row(folder, tmp_path):
    from ser_core.errors import ArtifactError

    with pytest.raises(ArtifactError, match="No artifacts folder"):
        run([folder], BatchOptions(artifacts=str(tmp_path / "nowhere"), jobs=2))


def test_a_batch_needs_no_cli(folder):
    """The whole path from Python: no argparse namespace, no printing."""
    rows = list(run([str(folder / "a")], BatchOptions(jobs=1)))
    assert len(rows) == 5 and all(set(r) >= {"path", "emotion", "probabilities", "adapted"} for r in rows)
    assert np.isclose(sum(rows[0]["probabilities"].values()), 1.0)
    assert isinstance(EmotionClassifier.load(), EmotionClassifier)
