"""Batch reports: CSV/JSON Lines written a line at a time, resume after a kill, summaries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import speech_like

from ser_core.batch import reports as batch
from ser_core.errors import ParameterError

LABELS = ("neutral", "calm", "happy", "angry", "fearful", "disgust", "surprised")


def _result(i: int) -> dict:
    probs = np.random.default_rng(i).dirichlet(np.ones(len(LABELS)))
    best = int(np.argmax(probs))
    return {
        "path": f"/data/f{i}.wav",
        "emotion": LABELS[best],
        "confidence": float(probs[best]),
        "probabilities": dict(zip(LABELS, map(float, probs), strict=True)),
    }


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv"])
def test_report_round_trip(tmp_path, name):
    rows = [_result(0), {"path": "/data/bad.wav", "error": "The audio is silent; record again."}, _result(1)]
    with batch.open_report(tmp_path / name, LABELS, resume=False) as report:
        for row in rows:
            report.write(row)
    back = batch.read_report(tmp_path / name)
    assert [r["path"] for r in back] == [r["path"] for r in rows]
    assert back[1] == rows[1]
    for got, want in ((back[0], rows[0]), (back[2], rows[2])):
        assert got["emotion"] == want["emotion"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)


@pytest.mark.parametrize("name", ["r.jsonl", "r.csv"])
def test_resume_drops_a_torn_row_and_appends(tmp_path, name):
    path = tmp_path / name
    with batch.open_report(path, LABELS, resume=False) as report:
        report.write(_result(0))
        report.write(_result(1))
    complete = path.read_bytes()
    with open(path, "ab") as f:  # a kill in the middle of the third row
        f.write(b'{"path": "/data/f2.wav", "emo' if name.endswith("jsonl") else b"/data/f2.wav,angry,0.5")
    assert batch.done_paths(path) == {batch.path_key("/data/f0.wav"), batch.path_key("/data/f1.wav")}
    with batch.open_report(path, LABELS, resume=True) as report:
        report.write(_result(2))
    assert path.read_bytes().startswith(complete)
    assert [r["path"] for r in batch.read_report(path)] == ["/data/f0.wav", "/data/f1.wav", "/data/f2.wav"]


def test_existing_report_is_not_overwritten_without_resume(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"path": "keep"}\n')
    with pytest.raises(ParameterError, match="--resume"):
        batch.open_report(path, LABELS, resume=False)
    assert path.read_text() == '{"path": "keep"}\n'


@pytest.mark.parametrize(
    ("content", "match"),
    [("not json at all\n", "not JSON"), ('{"emotion": "calm"}\n', "no 'path'")],
)
def test_resume_refuses_a_file_that_is_not_a_report(tmp_path, content, match):
    path = tmp_path / "r.jsonl"
    path.write_text(content)
    with pytest.raises(ParameterError, match=match):
        batch.open_report(path, LABELS, resume=True)
    assert path.read_text() == content


def test_csv_resume_refuses_other_labels(tmp_path):
    path = tmp_path / "r.csv"
    with batch.open_report(path, LABELS, resume=False) as report:
        report.write(_result(0))
    with pytest.raises(ParameterError, match="other labels"):
        batch.open_report(path, LABELS[:3], resume=True)


@pytest.mark.parametrize(("func", "name"), [(batch.report_format, "r.txt"), (batch.summary_format, "s.pdf")])
def test_unknown_extensions_are_refused(func, name):
    with pytest.raises(ParameterError, match="must end in"):
        func(name)


def test_summary_html_is_self_contained(tmp_path):
    rows = [_result(i) for i in range(12)] + [{"path": "x", "error": "bad"}]
    out = batch.write_summary(tmp_path / "s.html", rows, LABELS)
    html = out.read_text()
    assert "12 files classified, 1 failed" in html
    assert "Plotly.newPlot" in html and "plotly.js v" in html  # the library itself is embedded
    assert not re.findall(r"<script[^>]*\bsrc\s*=", html)  # no script fetched from anywhere
    assert not re.findall(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", html)


def test_summary_png(tmp_path):
    import matplotlib.image

    out = batch.write_summary(tmp_path / "s.png", [_result(i) for i in range(5)], LABELS)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(out).shape[:2]
    assert width > height > 100


# ---------------------------------------------------------------- through the CLI


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.wav", "b.wav", "sub/c.flac", "sub/d.wav"]):
        sf.write(root / name, speech_like(1.5, f0=120 + 30 * i, seed=i), 16_000)
    return root


def test_cli_report_resume_and_summary(folder, tmp_path, bundle_dir, capsys, monkeypatch):
    from ser_core.cli import main

    monkeypatch.setenv("SER_ARTIFACTS", str(bundle_dir))
    report = tmp_path / "out" / "report.jsonl"
    assert (
        main(
            ["predict", str(folder / "a.wav"), str(folder / "b.wav"), "--json", "--jobs", "1", "--report", str(report)]
        )
        == 0
    )
    first = report.read_bytes()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [json.loads(line) for line in first.decode().splitlines()] == printed
    with open(report, "ab") as f:
        f.write(b'{"path": "')  # killed while writing the next row

    summary = tmp_path / "out" / "summary.html"
    args = [
        "predict",
        str(folder),
        "--json",
        "--jobs",
        "1",
        "--report",
        str(report),
        "--resume",
        "--summary",
        str(summary),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    redone = [json.loads(line)["path"] for line in captured.out.splitlines()]
    assert sorted(Path(p).name for p in redone) == ["c.flac", "d.wav"]  # a and b were not redone
    assert "2 of 4 inputs are already" in captured.err
    assert report.read_bytes().startswith(first)
    rows = batch.read_report(report)
    assert sorted(Path(r["path"]).name for r in rows) == ["a.wav", "b.wav", "c.flac", "d.wav"]
    assert "4 files classified, 0 failed" in summary.read_text()

    assert main(args) == 0  # nothing left to do
    assert capsys.readouterr().out.strip() == ""
    assert len(batch.read_report(report)) == 4


def test_cli_progress_bar_only_when_asked(folder, bundle_dir, capsys, monkeypatch):
    from ser_core.cli import main

    monkeypatch.setenv("SER_ARTIFACTS", str(bundle_dir))
    assert main(["predict", str(folder), "--json", "--jobs", "1"]) == 0
    assert "file/s" not in capsys.readouterr().err  # stderr is not a terminal here
    assert main(["predict", str(folder), "--json", "--jobs", "1", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err
    assert len(captured.out.splitlines()) == 4  # stdout keeps one JSON object per file


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--resume"], "--report"), (["--report", "r.txt"], ".csv or .jsonl"), (["--summary", "s.pdf"], ".html or .png")],
)
def test_cli_report_usage_errors_exit_2(folder, extra, match, capsys):
    from ser_core.cli import main

    assert main(["predict", str(folder), *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_cli_existing_report_is_kept(folder, tmp_path, bundle_dir, capsys, monkeypatch):
    from ser_core.cli import main

    monkeypatch.setenv("SER_ARTIFACTS", str(bundle_dir))
    report = tmp_path / "r.csv"
    report.write_text("precious\n")
    assert main(["predict", str(folder), "--report", str(report)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert report.read_text() == "precious\n"


def test_a_report_in_use_by_another_run_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    with batch.open_report(path, LABELS, resume=False) as first:
        first.write(_result(0))
        with pytest.raises(ParameterError, match="another run"):
            batch.open_report(path, LABELS, resume=True)
        first.write(_result(1))
    with batch.open_report(path, LABELS, resume=True) as again:  # free once the first run ends
        assert again.done == {batch.path_key("/data/f0.wav"), batch.path_key("/data/f1.wav")}
