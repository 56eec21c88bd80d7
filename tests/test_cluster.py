"""predict/timeline --cluster: the same rows as local predict, exactly one per file, through worker
loss, a client crash with --resume, and an http:// folder. Clusters are local:N on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from conftest import RAVDESS, REPO, free_port, speech_like

pytest.importorskip("distributed")
pytest.importorskip("fsspec")

from ser_core.batch import cluster  # noqa: E402
from ser_core.batch.inputs import iter_url  # noqa: E402
from ser_core.batch.reports import read_report  # noqa: E402

SR = 16_000
WAIT_S = 120  # every wait below ends by then


def rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def by_path(results: list[dict]) -> dict[str, dict]:
    paths = [r["path"] for r in results]
    assert len(paths) == len(set(paths)), "a file has more than one row"
    return {r["path"]: r for r in results}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Twelve synthetic recordings in nested folders, one with a space in its name, and a text file named .wav."""
    root = tmp_path_factory.mktemp("clips")
    (root / "sub" / "deeper").mkdir(parents=True)
    for i in range(12):
        folder = [root, root / "sub", root / "sub" / "deeper"][i % 3]
        name = f"clip {i:02d}.wav" if i == 4 else f"clip{i:02d}.{'flac' if i % 2 else 'wav'}"
        rate = 44_100 if i % 4 == 0 else SR
        sf.write(str(folder / name), speech_like(1.0 + 0.1 * i, rate, f0=110 + 10 * i, seed=i), rate)
    (root / "sub" / "bad.wav").write_text("this is text, not audio")
    (root / "notes.txt").write_text("not listed")
    return root


@pytest.fixture(scope="module")
def local_rows(cli, clips) -> dict[str, dict]:
    """What local predict says about ``clips``: the reference."""
    proc = cli("predict", "--json", "--jobs", "1", clips)
    assert proc.returncode == 1  # bad.wav
    return by_path(rows(proc.stdout))


@pytest.fixture(scope="module")
def many(tmp_path_factory, clips) -> Path:
    """120 files (copies of the synthetic clips under other names): enough work to interrupt."""
    root = tmp_path_factory.mktemp("many")
    sources = sorted(p for p in clips.rglob("clip*"))
    for i in range(120):
        source = sources[i % len(sources)]
        (root / f"f{i:03d}{source.suffix}").write_bytes(source.read_bytes())
    return root


@pytest.fixture
def served(clips) -> Iterator[str]:
    """``clips`` served by http.server on 127.0.0.1 and an ephemeral port, in a thread; yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(clips)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------- options, no cluster


@pytest.mark.parametrize(
    ("address", "expected"), [("local:2", 2), ("local:1", 1), ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786")]
)
def test_parse_address(address, expected):
    assert cluster.parse_address(address) == expected


@pytest.mark.parametrize("address", ["local:", "local:0", "local:x", "local:-1", "local:1000"])
def test_parse_address_refuses_bad_local(address):
    with pytest.raises(cluster.ParameterError, match="must be local:N"):
        cluster.parse_address(address)


@pytest.mark.parametrize(
    ("files", "threads", "size"), [(1, 2, 1), (50, 2, 7), (1000, 2, 64), (10**6, 400, 64), (10, 100, 1)]
)
def test_batch_size_gives_every_thread_work_and_caps_tasks(files, threads, size):
    assert cluster.batch_size(files, threads) == size


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--cluster", "local:0", "x.wav"],
        ["predict", "--cluster", "local:2", "--batch-size", "0", "x.wav"],
        ["timeline", "a.wav", "b.wav"],
        ["timeline", "--report", "r.jsonl", "a.wav"],
        ["timeline", "--cluster", "local:1", "--csv", "a.wav"],
        ["timeline", "--cluster", "local:1", "--report", "r.csv", "a.wav"],
        ["timeline", "--cluster", "local:1", "--window", "100", "a.wav"],
    ],
    ids=["local-0", "batch-0", "several-without-cluster", "report-without-cluster", "csv", "csv-report", "window"],
)
def test_usage_errors_exit_2_before_any_cluster(cli, args):
    proc = cli(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].count("error") == 1


def test_library_and_cli_parser_do_not_import_dask():
    code = (
        "import sys, ser_core, ser_core.batch, ser_core.batch.cluster, ser_core.cli as m; m.build_parser(); "
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'dask', 'distributed', 'fsspec', 'aiohttp'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_file_url_folder_lists_like_a_local_folder(clips):
    from ser_core.batch.inputs import find_inputs

    local = [Path(p).relative_to(clips).as_posix() for p, _ in find_inputs([str(clips)])]
    listed = [urllib.parse.unquote(u).removeprefix(clips.as_uri() + "/") for u, _ in iter_url(clips.as_uri())]
    assert listed == local and len(local) == 13


def test_missing_and_unsupported_urls_are_one_line_each(cli, served):
    proc = cli("predict", "--json", served + "nowhere/", served + "missing.wav", "nosuchprotocol://x/y.wav")
    assert proc.returncode == 1
    errors = [r["error"] for r in rows(proc.stdout)]
    assert len(errors) == 3
    assert "does not exist" in errors[0] and "does not exist" in errors[1] and "nosuchprotocol" in errors[2]


# ---------------------------------------------------------------- on a local cluster


@pytest.mark.slow
def test_local_cluster_matches_local_predict_on_ravdess(cli):
    folder = RAVDESS / "Actor_01"
    if not folder.is_dir():
        pytest.skip(f"RAVDESS is not at {RAVDESS}")
    local = cli("predict", "--json", folder)
    remote = cli("predict", "--json", "--cluster", "local:2", folder, timeout=WAIT_S)
    assert remote.returncode == local.returncode == 0, remote.stderr
    expected = by_path(rows(local.stdout))
    assert len(expected) >= 50
    assert by_path(rows(remote.stdout)) == expected  # probabilities equal, not only close


@pytest.mark.slow
def test_non_audio_file_is_one_error_line_exit_1(cli, clips, local_rows):
    bad, good = clips / "sub" / "bad.wav", clips / "clip00.wav"
    proc = cli("predict", "--json", "--cluster", "local:1", bad, good, timeout=WAIT_S)
    assert proc.returncode == 1
    got = by_path(rows(proc.stdout))
    assert got == {str(bad): local_rows[str(bad)], str(good): local_rows[str(good)]}
    assert "could not be decoded" in got[str(bad)]["error"]


@pytest.mark.slow
def test_worker_killed_mid_task_every_file_once(cli, clips, local_rows, tmp_path, monkeypatch):
    flag = tmp_path / "a worker ended"
    monkeypatch.setenv(cluster.CRASH_ENV, str(flag))  # the first task to start ends its worker process
    proc = cli("predict", "--json", "--cluster", "local:2", "--batch-size", "2", clips, timeout=WAIT_S)
    assert flag.exists(), "no worker was lost"
    assert proc.returncode == 1  # bad.wav only
    assert by_path(rows(proc.stdout)) == local_rows


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1", "3"])
def test_file_that_ends_its_worker_is_isolated(cli, clips, local_rows, tmp_path, monkeypatch, size):
    """With no retries allowed, a lost batch is split into single files; a single file lost is one error row
    (the file that ended the worker, and any other that was waiting on that worker)."""
    flag = tmp_path / "a worker ended"
    monkeypatch.setenv(cluster.CRASH_ENV, str(flag))
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "0")
    proc = cli("predict", "--json", "--cluster", "local:2", "--batch-size", size, clips, timeout=WAIT_S)
    assert flag.exists() and proc.returncode == 1
    got = by_path(rows(proc.stdout))
    assert got.keys() == local_rows.keys()
    differ = [path for path, row in got.items() if row != local_rows[path]]
    if size == "1":
        assert differ and all("worker analysing this file was lost" in got[path]["error"] for path in differ)
    else:
        assert differ == []


def _lines_until(proc: subprocess.Popen, count: int, deadline: float) -> list[str]:
    """The first ``count`` lines of ``proc``'s stdout, read by a thread so the wait ends at ``deadline``."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    got = []
    while len(got) < count:
        got.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
    return got


@pytest.mark.slow
def test_client_killed_then_resume_completes_without_duplicates(cli, bundle_dir, many, tmp_path):
    report = tmp_path / "report.jsonl"
    argv = ["predict", "--json", "--artifacts", str(bundle_dir), "--report", str(report), "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser_core", *argv, "--cluster", "local:2", str(many)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        # a row is printed, then written to the report: once the second is printed, the first is in it
        _lines_until(proc, 2, time.monotonic() + WAIT_S)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster, at once
        proc.wait(timeout=WAIT_S)
    before = read_report(report)  # a row torn by the kill is left out, as --resume leaves it out
    assert 1 <= len(before) < 120

    resumed = cli(*argv, "--resume", "--cluster", "local:2", many, timeout=WAIT_S)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} of 120 inputs are already in" in resumed.stderr
    final = by_path(rows(report.read_text()))
    assert len(final) == 120
    assert final == by_path(rows(cli("predict", "--json", many).stdout))


@pytest.mark.slow
def test_http_folder_scored_like_the_local_folder(cli, clips, served, local_rows):
    proc = cli("predict", "--json", "--cluster", "local:2", served, timeout=WAIT_S)
    assert proc.returncode == 1  # bad.wav
    remote = {urllib.parse.unquote(r["path"].removeprefix(served)): r for r in rows(proc.stdout)}
    expected = {Path(p).relative_to(clips).as_posix(): r for p, r in local_rows.items()}
    assert remote.keys() == expected.keys()
    for name, row in remote.items():
        assert {**row, "path": None} == {**expected[name], "path": None}, name


@pytest.mark.slow
def test_timeline_on_cluster_matches_local_timeline(cli, clips, tmp_path):
    files = [clips / "clip00.wav", clips / "sub" / "clip01.flac", clips / "sub" / "bad.wav"]
    report = tmp_path / "timelines.jsonl"
    proc = cli("timeline", "--cluster", "local:2", "--report", report, *files, timeout=WAIT_S)
    assert proc.returncode == 1
    got = by_path(rows(proc.stdout))
    assert got == by_path(rows(report.read_text()))
    for f in files:
        (local,) = rows(cli("timeline", "--json", f).stdout)
        assert got[str(f)] == local


@pytest.mark.slow
def test_unreachable_scheduler_is_one_sentence(cli, clips):
    proc = cli("predict", "--cluster", f"tcp://127.0.0.1:{free_port()}", clips / "clip00.wav", timeout=WAIT_S)
    assert proc.returncode == 1
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "Could not reach a Dask scheduler" in line


@pytest.fixture
def scheduler_and_workers(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``dask scheduler`` and ``dask worker`` (2 processes) started as commands on 127.0.0.1, as on
    several machines; yields the scheduler's address and its process."""
    dask = str(Path(sys.executable).parent / "dask")
    address_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(address_file),
        ],
        **quiet,
    )
    workers = None
    try:
        deadline = time.monotonic() + WAIT_S
        while not address_file.exists() or not address_file.read_text().strip():
            assert time.monotonic() < deadline and scheduler.poll() is None, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        workers = subprocess.Popen(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
            **quiet,
        )
        yield address, scheduler
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.kill()
                process.wait(timeout=WAIT_S)


@pytest.mark.slow
def test_scheduler_address_and_a_lost_scheduler(cli, bundle_dir, many, tmp_path, scheduler_and_workers):
    address, scheduler = scheduler_and_workers
    report = tmp_path / "report.jsonl"
    argv = ["predict", "--json", "--artifacts", str(bundle_dir), "--report", str(report), "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ser_core", *argv, "--cluster", address, str(many)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
        try:
            _lines_until(proc, 1, time.monotonic() + WAIT_S)
            scheduler.kill()
            proc.wait(timeout=WAIT_S)
        finally:
            proc.kill()
    stderr = errors.read_text()
    assert proc.returncode == 1
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: The connection to the scheduler was lost before the run ended; "
        "start it again and continue with --report FILE --resume."
    )
    resumed = cli(*argv, "--resume", "--cluster", "local:2", many, timeout=WAIT_S)
    assert resumed.returncode == 0
    assert len(by_path(read_report(report))) == 120
