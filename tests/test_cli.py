"""The command line contract: one JSON object per input, errors as sentences, exit codes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

from ser_core import EMOTIONS

SR = 16_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Two good files in nested folders, a bad file, an empty folder, a missing path."""
    root = tmp_path_factory.mktemp("cli")
    (root / "good" / "deeper").mkdir(parents=True)
    sf.write(str(root / "good" / "a.wav"), speech_like(1.5, SR, seed=1), SR)
    sf.write(str(root / "good" / "deeper" / "b.flac"), speech_like(2.0, 44_100, seed=2), 44_100)
    (root / "good" / "notes.txt").write_text("not audio, and not listed")
    (root / "bad.mp3").write_text("this is text, not audio")
    (root / "quiet.wav").write_bytes(b"")
    sf.write(str(root / "silence.wav"), np.zeros(SR), SR)
    (root / "empty").mkdir()
    (root / "empty" / "readme.md").write_text("nothing to hear")
    return {
        "root": root,
        "good": root / "good",
        "a": root / "good" / "a.wav",
        "b": root / "good" / "deeper" / "b.flac",
        "bad": root / "bad.mp3",
        "silence": root / "silence.wav",
        "empty": root / "empty",
        "missing": root / "no such file.wav",
    }


def json_lines(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    return [json.loads(line) for line in lines]


def assert_line_contract(obj: dict) -> None:
    if "error" in obj:
        assert set(obj) == {"path", "error"}
        message = obj["error"]
        assert message and "\n" not in message and message.rstrip().endswith(".")
        assert message[0].isupper() or message[0] == "'"
    else:
        assert set(obj) == {"path", "emotion", "confidence", "probabilities", "intensity", "adapted"}
        assert obj["adapted"] in (None, "reference", "same-speaker")
        assert obj["emotion"] in EMOTIONS
        assert list(obj["probabilities"]) == list(EMOTIONS)
        assert all(math.isfinite(v) for v in obj["probabilities"].values())
        assert sum(obj["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert obj["confidence"] == max(obj["probabilities"].values())


def test_json_one_line_per_input_and_carries_on(cli, inputs):
    args = [inputs["missing"], inputs["good"], inputs["bad"], inputs["empty"], inputs["silence"]]
    proc = cli("predict", "--json", *args)
    assert proc.returncode == 1
    lines = json_lines(proc.stdout)
    for obj in lines:
        assert_line_contract(obj)
    assert [Path(o["path"]).name for o in lines] == [
        "no such file.wav",
        "a.wav",
        "b.flac",
        "bad.mp3",
        "empty",
        "silence.wav",
    ]
    by_name = {Path(o["path"]).name: o for o in lines}
    assert "does not exist" in by_name["no such file.wav"]["error"]
    assert "holds no audio files" in by_name["empty"]["error"]
    assert "could not be decoded" in by_name["bad.mp3"]["error"]
    assert "silent" in by_name["silence.wav"]["error"]
    assert "emotion" in by_name["a.wav"] and "emotion" in by_name["b.flac"]


def test_exit_0_when_all_classified(cli, inputs):
    proc = cli("predict", "--json", inputs["a"], inputs["b"])
    assert proc.returncode == 0
    assert [o["path"] for o in json_lines(proc.stdout)] == [str(inputs["a"]), str(inputs["b"])]


def test_cli_agrees_with_api(cli, inputs, bundle_dir):
    from ser_core import EmotionClassifier

    (obj,) = json_lines(cli("predict", "--json", inputs["b"]).stdout)
    api = EmotionClassifier.load(bundle_dir).predict(inputs["b"])
    assert obj["emotion"] == api.emotion
    assert obj["probabilities"] == pytest.approx(api.probabilities, abs=1e-9)


def test_table_without_json(cli, inputs):
    proc = cli("predict", inputs["a"], inputs["missing"])
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["file", "emotion", "confidence", "intensity"]
    assert len(lines) == 3
    row_a, row_missing = lines[1], lines[2]
    path, emotion, confidence, *intensity = row_a.split(maxsplit=3)
    assert path == str(inputs["a"]) and emotion in EMOTIONS and confidence.endswith("%")
    assert "error: " in row_missing and "does not exist" in row_missing
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[1])


def test_table_columns_stay_aligned_for_any_path_length(cli, inputs, tmp_path):
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "deeper still" / "recording.wav"
    deep.parent.mkdir(parents=True)
    shutil.copy(inputs["a"], deep)
    paths = [str(inputs["a"]), str(deep), str(inputs["b"])]
    proc = cli("predict", *paths)
    header, *rows = proc.stdout.splitlines()
    assert len(str(deep)) > 100 and len(rows) == 3
    for path, row in zip(paths, rows, strict=True):
        assert row.startswith(path)
        emotion = row[len(path) :].split()[0]
        assert emotion in EMOTIONS
        assert row.index(emotion, len(path)) == header.index("emotion"), (header, row)
        assert row.index("%", len(path)) + 1 == header.index("confidence") + len("confidence"), (header, row)


def test_intensity_says_what_its_percentage_is():
    from ser_core.cli import _format_row
    from ser_core.inference import Intensity

    row = {"path": "x.wav", "emotion": "angry", "confidence": 0.8, "intensity": {"level": "normal", "strength": 0.05}}
    assert _format_row(row, 5).endswith("  normal (5% chance of strong)")
    assert Intensity.from_strength(0.81).text == "strong (81% chance of strong)"
    assert Intensity.from_strength(0.5).text == "strong (50% chance of strong)"  # the threshold itself


def test_a_silent_file_is_told_about_the_file_not_the_microphone(cli, inputs):
    for args in (["predict"], ["predict", "--json"]):
        proc = cli(*args, inputs["silence"])
        said = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "silent" in said and "choose a recording" in said
        assert "microphone" not in said
    timeline = cli("timeline", inputs["silence"])  # every window without speech, then the overall line
    assert (
        timeline.stdout.splitlines()[-1]
        == "overall: No speech was found in the recording; choose one in which someone speaks clearly."
    )


def _first_lines(argv: list[str], n: int) -> tuple[list[str], int, str]:
    """Run the command line with stdout into a small pipe, read ``n`` lines and close it, as
    ``| head -n`` does: (the lines, the exit status, stderr). The pipe is one page, so the
    command is still writing when its reader leaves, whatever the machine's speed."""
    import fcntl
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ: the smallest pipe Linux allows
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser_core", *argv], stdout=write, stderr=subprocess.PIPE, text=True, env=env
    )
    os.close(write)
    with os.fdopen(read) as out:
        lines = [out.readline() for _ in range(n)]
    _, stderr = proc.communicate(timeout=120)
    return lines, proc.returncode, stderr


@pytest.fixture(scope="module")
def many(inputs, tmp_path_factory) -> Path:
    """80 good recordings: their rows fill more than one page of a pipe."""
    folder = tmp_path_factory.mktemp("many")
    for i in range(80):
        shutil.copy(inputs["a"], folder / f"recording-{i:03d}.wav")
    return folder


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").exists(), reason="needs Linux pipes")
@pytest.mark.parametrize("flags", [[], ["--json"], ["--jobs", "1"]], ids=["table", "json", "one-process"])
def test_predict_into_head_stops_quietly(many, bundle_dir, flags):
    lines, status, stderr = _first_lines(["predict", "--artifacts", str(bundle_dir), *flags, str(many)], 2)
    assert status == 0 and stderr == ""
    assert all(line.endswith("\n") for line in lines)
    assert "recording-000.wav" in lines[0 if flags == ["--json"] else 1]


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").exists(), reason="needs Linux pipes")
def test_predict_into_head_still_finishes_its_report(many, bundle_dir, tmp_path):
    report = tmp_path / "all.csv"
    _, status, stderr = _first_lines(["predict", "--artifacts", str(bundle_dir), "--report", str(report), str(many)], 2)
    assert status == 0 and stderr == ""
    assert len(report.read_text().splitlines()) == 1 + 80  # the header and every file


def test_many_files_with_worker_processes_keep_order(cli, inputs, tmp_path):
    for i in range(10):
        shutil.copy(inputs["a"] if i % 3 else inputs["bad"], tmp_path / f"f{i:02d}{'.wav' if i % 3 else '.mp3'}")
    serial = json_lines(cli("predict", "--json", "--jobs", "1", tmp_path).stdout)
    parallel = cli("predict", "--json", "--jobs", "2", tmp_path)
    assert parallel.returncode == 1
    assert json_lines(parallel.stdout) == serial
    assert len(serial) == 10 and sum("error" in o for o in serial) == 4


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_unusable_artifacts_one_line_no_hang(cli, inputs, tmp_path, jobs):
    files = [inputs["a"]] * 9  # enough to start the worker pool
    proc = cli("predict", "--json", "--jobs", jobs, "--artifacts", tmp_path / "nowhere", *files, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No artifacts folder" in errors[0]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["predict"],
        ["classify", "x.wav"],
        ["predict", "--jobs", "many", "x.wav"],
        ["timeline"],
        ["timeline", "--json", "--csv", "x.wav"],
        ["predict", "--no-such-flag", "x.wav"],
        ["predict", "--jobs", "0", "x.wav"],
        ["timeline", "--jobs", "0", "x.wav"],
        ["predict", "--jobs", "-2", "x.wav"],
    ],
    ids=[
        "nothing",
        "no-paths",
        "unknown-command",
        "bad-jobs",
        "timeline-no-file",
        "json-and-csv",
        "unknown-flag",
        "no-jobs",
        "timeline-no-jobs",
        "negative-jobs",
    ],
)
def test_usage_errors_exit_2(cli, args):
    proc = cli(*args, artifacts=False)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert proc.stdout == ""


def test_help_exits_0(cli):
    proc = cli("predict", "--help", artifacts=False)
    assert proc.returncode == 0 and "--json" in proc.stdout


@pytest.mark.parametrize("command", ["predict", "timeline", "serve", "export"])
def test_help_shows_only_defaults_that_say_something(cli, command):
    proc = cli(command, "--help", artifacts=False)
    text = " ".join(proc.stdout.split())  # help wraps lines anywhere
    assert proc.returncode == 0
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default:") >= 1  # the defaults worth showing stay
    if command == "predict":
        assert "model bundle folder (default: the shipped one)" in text and "(default: the shipped one) (" not in text


@pytest.mark.parametrize("script", ["demo.py", "train.py"])
def test_the_scripts_help_shows_only_defaults_that_say_something(script):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, str(repo / script), "--help"], capture_output=True, text=True, env=env)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "(default:" in text
    assert not [flag for flag in ("None", "False", "True") if f"(default: {flag})" in text]


def test_timeline_csv_and_json(cli, tmp_path):
    y = np.concatenate([speech_like(3.0, SR), np.zeros(5 * SR, np.float32), speech_like(2.0, SR)])
    path = tmp_path / "talk.wav"
    sf.write(str(path), y, SR)
    csv_proc = cli("timeline", "--csv", path)
    assert csv_proc.returncode == 0
    rows = csv_proc.stdout.splitlines()
    assert rows[0].split(",") == ["start", "end", "speech", "emotion", "confidence", "intensity", "strength", *EMOTIONS]
    assert {r.split(",")[2] for r in rows[1:]} == {"0", "1"}
    obj = json.loads(cli("timeline", "--json", path).stdout)
    assert obj["path"] == str(path) and obj["summary"]["emotion"] in EMOTIONS
    assert len(obj["windows"]) == len(rows) - 1
    text = cli("timeline", path).stdout
    assert "(no speech)" in text and text.splitlines()[-1].startswith("overall: ")


def test_timeline_text_ends_with_what_a_person_would_say(cli, tmp_path, bundle_dir):
    from ser_core import EmotionClassifier

    y = np.concatenate([speech_like(2.0, SR, f0=f0, seed=i) for i, f0 in enumerate((110, 220, 140))])
    path = tmp_path / "three.wav"
    sf.write(str(path), y, SR)
    clf = EmotionClassifier.load(bundle_dir)
    for flags, timeline in (([], clf.timeline(path)), (["--segments"], clf.utterances(path))):
        last = cli("timeline", *flags, path).stdout.splitlines()[-1]
        assert last == f"overall: {timeline.overall().describe()}"


@pytest.mark.parametrize("flag", ["--json", None])
def test_timeline_bad_file_is_one_error(cli, inputs, flag):
    proc = cli("timeline", *([flag] if flag else []), inputs["bad"])
    assert proc.returncode == 1
    if flag:
        obj = json.loads(proc.stdout)
        assert set(obj) == {"path", "error"} and "could not be decoded" in obj["error"]
    else:
        assert [line for line in proc.stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------- speaker adaptation


@pytest.fixture(scope="module")
def calibrated_bundle(bundle_dir):
    from ser_core import EmotionClassifier

    if not EmotionClassifier.load(bundle_dir).adapted:
        pytest.skip("the shipped bundle has no adapted models")
    return bundle_dir


def test_reference_calibrates_every_line(cli, inputs, calibrated_bundle):
    from ser_core import EmotionClassifier

    proc = cli("predict", "--json", "--reference", inputs["b"], inputs["a"], inputs["bad"])
    assert proc.returncode == 1  # bad.mp3 only
    good, bad = json_lines(proc.stdout)
    assert_line_contract(good)
    assert_line_contract(bad)
    assert good["adapted"] == "reference"
    clf = EmotionClassifier.load(calibrated_bundle)
    expected = clf.predict(inputs["a"], voice=clf.calibrate([inputs["b"]]))
    assert good["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


@pytest.mark.parametrize("reference", ["silence", "missing", "bad"])
def test_unusable_reference_is_a_usage_error(cli, inputs, calibrated_bundle, reference):
    proc = cli("predict", "--json", "--reference", inputs[reference], inputs["a"])
    assert proc.returncode == 2 and proc.stdout == ""
    line = proc.stderr.strip().splitlines()[-1]  # before it, only what a native decoder may print
    assert line.startswith("error: --reference: ") and line.endswith(".") and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def one_speaker(tmp_path_factory) -> Path:
    """Eighteen 3 s takes of one synthetic speaker: enough speech (16 clips, 30 s) to learn a voice from."""
    folder = tmp_path_factory.mktemp("speaker")
    for i in range(18):
        sf.write(str(folder / f"take{i:02d}.wav"), speech_like(3.0, SR, f0=120 + 8 * (i % 6), seed=40 + i), SR)
    return folder


def test_same_speaker_learns_the_voice_once_and_judges_every_file_with_it(
    cli, one_speaker, calibrated_bundle, tmp_path
):
    """predict --same-speaker (each file heard once) gives the rows of predict --voice with the voice
    that 'voice' learns from the same files, on one process or two."""
    lines = json_lines(cli("predict", "--json", "--same-speaker", "--jobs", "2", one_speaker).stdout)
    assert len(lines) == 18 and all(o["adapted"] == "same-speaker" for o in lines)
    assert json_lines(cli("predict", "--json", "--same-speaker", "--jobs", "1", one_speaker).stdout) == lines
    saved = tmp_path / "me.json"
    proc = cli("voice", one_speaker, "--out", saved, "--artifacts", calibrated_bundle)
    assert proc.returncode == 0 and "Adapted to your voice from 18 recordings" in proc.stdout
    assert json_lines(cli("predict", "--json", "--voice", saved, one_speaker).stdout) == lines
    plain = json_lines(cli("predict", "--json", one_speaker).stdout)
    assert [o["probabilities"] for o in plain] != [o["probabilities"] for o in lines]


def test_same_speaker_with_too_little_speech_says_so_and_does_not_adapt(cli, ravdess_files, calibrated_bundle):
    proc = cli("predict", "--json", "--same-speaker", *ravdess_files)
    assert proc.returncode == 0
    lines = json_lines(proc.stdout)
    assert len(lines) == len(ravdess_files) and all(o["adapted"] is None for o in lines)
    assert "hold too little speech to learn the speaker's voice" in proc.stderr
    plain = json_lines(cli("predict", "--json", *ravdess_files).stdout)
    assert [o["probabilities"] for o in plain] == [o["probabilities"] for o in lines]


def test_a_saved_voice_grows_and_reads_back(cli, inputs, one_speaker, calibrated_bundle, tmp_path):
    from ser_core import EmotionClassifier, Voice

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("voice", "--reference", inputs["b"], "--out", first, "--artifacts", calibrated_bundle).returncode == 0
    proc = cli("voice", one_speaker / "take00.wav", "--voice", first, "--out", second, "--artifacts", calibrated_bundle)
    assert proc.returncode == 0 and "calibration and 1 recording" in proc.stdout
    voice = Voice.from_json(second.read_text())
    assert voice.source == "reference" and voice.recordings == 1
    clf = EmotionClassifier.load(calibrated_bundle)
    (row,) = json_lines(cli("predict", "--json", "--voice", second, inputs["a"]).stdout)
    assert row["adapted"] == "reference"
    assert row["probabilities"] == pytest.approx(clf.predict(inputs["a"], voice=voice).probabilities, abs=1e-6)


@pytest.mark.parametrize(
    "content, words", [("{not json", "not valid JSON"), ('{"format": 2, "features": "x"}', "another model's features")]
)
def test_an_unusable_voice_file_is_a_usage_error(cli, inputs, calibrated_bundle, tmp_path, content, words):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for args in (("predict", "--voice", bad, inputs["a"]), ("timeline", "--voice", bad, inputs["a"])):
        proc = cli(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("error: --voice: ") and words in line
    proc = cli("voice", "--out", tmp_path / "x.json", "--artifacts", calibrated_bundle)
    assert proc.returncode == 2 and "Give recordings of the speaker" in proc.stderr


def test_timeline_with_a_reference(cli, inputs, calibrated_bundle):
    proc = cli("timeline", "--json", "--reference", inputs["b"], inputs["a"])
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["adapted"] == "reference"


FAULTS_SCRIPT = """
import resource, numpy as np
from ser_core.batch.runner import HEAP_BLOCK_BYTES, keep_freed_memory
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for n in range(20):  # fresh buffers of 1-2 MB, freed at once, as each file's are
        np.ones((2**17 + 4096 * n,))
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults())
keep_freed_memory()
np.ones((HEAP_BLOCK_BYTES // 8 - 2**16,))  # the heap grows once to the largest buffer
print(faults())
"""


def test_batch_runs_reuse_freed_memory():
    """After keep_freed_memory (set before the workers fork), a file's buffers come from memory
    already mapped: no fresh page faults, where glibc unmaps and maps them again otherwise."""
    import ctypes
    import os
    import subprocess
    import sys

    if not hasattr(ctypes.CDLL(None), "mallopt"):
        pytest.skip("the C library has no mallopt (not glibc)")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True, env=env, check=True)
    default, kept = (int(v) for v in out.stdout.split())
    assert default > 2000  # 20 buffers of >= 256 pages, each mapped afresh
    assert kept < default / 10
