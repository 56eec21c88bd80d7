"""The corpus scanners: RAVDESS and EmoDB by their file names, nEMO by its labels file; speakers
unique across corpora, classes mapped to ours, one clear sentence for a wrong folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ser_core import EMOTIONS
from ser_core.errors import ParameterError
from ser_core.training.corpora import scan_emodb, scan_nemo, scan_ravdess


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def nemo(tmp_path: Path) -> Path:
    rows = [
        ("audio/KS0_anger_1.flac", "KS0", "male", "anger", "Zdanie pierwsze.", "1.9"),
        ("audio/EB0_neutral_1.flac", "EB0", "female", "neutral", "Zdanie drugie.", "2.1"),
        ("audio/EB0_sadness_1.flac", "EB0", "female", "sadness", "Zdanie pierwsze.", "2.0"),
        ("audio/EB0_surprise_2.flac", "EB0", "female", "surprise", "Zdanie pierwsze.", "1.2"),
    ]
    lines = ["file,speaker,gender,emotion,text,seconds"] + [",".join(r) for r in rows]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for row in rows:
        touch(tmp_path / row[0])
    return tmp_path


def test_nemo_by_its_labels_file(nemo):
    files = scan_nemo(nemo, EMOTIONS)
    assert [(f.path.name, f.emotion, f.actor, f.corpus) for f in files] == [
        ("EB0_neutral_1.flac", "neutral", 200, "nemo"),
        ("EB0_surprise_2.flac", "surprised", 200, "nemo"),
        ("KS0_anger_1.flac", "angry", 201, "nemo"),
    ]  # sadness is not one of ours; speakers numbered in sorted order from 200
    assert files[1].statement == files[2].statement != files[0].statement  # the same sentence, twice
    assert [f.emotion for f in scan_nemo(nemo, ("angry", "calm"))] == ["angry"]


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda root: (root / "labels.csv").unlink(), "labels.csv does not exist"),
        (lambda root: (root / "labels.csv").write_text("file,speaker\n"), "lacks the columns"),
        (lambda root: (root / "audio" / "KS0_anger_1.flac").unlink(), "lists audio/KS0_anger_1.flac"),
    ],
    ids=["no-labels", "wrong-columns", "missing-file"],
)
def test_a_damaged_nemo_copy_is_one_sentence(nemo, damage, match):
    damage(nemo)
    with pytest.raises(ParameterError, match=match):
        scan_nemo(nemo, EMOTIONS)


def test_speakers_are_unique_across_the_three_corpora(tmp_path, nemo):
    touch(tmp_path / "ravdess" / "Actor_03" / "03-01-05-02-01-01-03.flac")
    touch(tmp_path / "ravdess" / "Actor_03" / "03-01-04-01-01-01-03.flac")  # sad: not ours
    touch(tmp_path / "emodb" / "03a01Wa.flac")
    ravdess = scan_ravdess(tmp_path / "ravdess", EMOTIONS)
    emodb = scan_emodb(tmp_path / "emodb", EMOTIONS)
    assert [(f.actor, f.emotion, f.intensity) for f in ravdess] == [(3, "angry", 2)]
    assert [(f.actor, f.emotion, f.corpus) for f in emodb] == [(103, "angry", "emodb")]
    actors = [{f.actor for f in c} for c in (ravdess, emodb, scan_nemo(nemo, EMOTIONS))]
    assert not (actors[0] & actors[1] or actors[0] & actors[2] or actors[1] & actors[2])
