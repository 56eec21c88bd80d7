"""The launched demo under load (issue 6): 20 visitors at once through gradio_client, a new
visitor arriving meanwhile and a live stream held open. Every answer is checked against the
one computed in-process for its own file. Timings are reported by benchmarks/load_demo.py,
never asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import load_demo  # noqa: E402

pytestmark = pytest.mark.slow

CLIENTS = 20
PER_CLIENT = 3
TIMEOUT = 50.0  # seconds; the load stops by itself after this


@pytest.fixture(scope="module")
def load(classifier, tmp_path_factory):
    """One load run on the in-process demo: (report, expected answers by file)."""
    tmp = tmp_path_factory.mktemp("load")
    expected = load_demo.expected_answers(classifier, load_demo.make_inputs(tmp))
    chunks = load_demo.live_chunks(tmp, seconds=8.0)
    live = (chunks, load_demo.live_expectations(classifier, chunks))
    with load_demo.serve_in_process(classifier) as url:
        report = load_demo.run_load(
            url,
            [Path(f) for f in expected],
            expected,
            clients=CLIENTS,
            per_client=PER_CLIENT,
            timeout=TIMEOUT,
            live=live,
        )
    print(load_demo.format_report(report, CLIENTS * PER_CLIENT))
    return report, expected


def test_every_request_is_answered_without_error(load):
    report, _ = load
    assert not report.connect_errors
    assert [a.error for a in report.answers if a.error] == []
    assert len(report.answered) == CLIENTS * PER_CLIENT


def test_every_answer_is_the_one_for_its_file(load):
    report, expected = load
    sent = {a.file for a in report.answers}
    assert len(sent) >= load_demo.MIN_DISTINCT  # enough different answers in flight for a mix-up to show
    wrong = [(a.client, Path(a.file).name) for a in report.answered if not a.correct]
    assert wrong == []


def test_a_new_visitor_is_served_during_the_load(load):
    report, expected = load
    visit = report.visit
    assert visit is not None and visit.error is None
    assert visit.arrived < report.ended  # came while other visitors still waited for answers
    assert visit.page_ok
    assert visit.answer is not None and visit.answer.error is None and visit.answer.correct


def test_a_live_stream_does_not_block_other_visitors(load):
    report, _ = load
    live = report.live
    assert live is not None and live.errors == []
    assert live.opened is not None and live.opened < report.started  # open before the load began...
    assert live.closed is not None and live.closed >= report.ended  # ...and until it ended
    assert live.verdicts >= 1 and live.wrong == 0
    assert len(report.answered) == CLIENTS * PER_CLIENT
