"""Fuzz the decoder: mutated WAV/FLAC/MP3/Ogg/Opus bytes must decode cleanly or raise AudioError.

Run alone (``python tests/fuzz/fuzz_decoder.py 300``) or through ``test_fuzz.py``, which
runs it in a subprocess so a crash or a hang in a C decoder fails the test instead of
killing pytest. Hypothesis is derandomised: every run tries the same inputs.
"""

from __future__ import annotations

import collections
import json
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from ser_core import audio  # noqa: E402
from ser_core.errors import AudioError  # noqa: E402

SEEDS = sorted((HERE / "seeds").iterdir())
INTERESTING = [0, 1, 2, 255, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 768_001, 3_999]
MAX_SECONDS = 60.0
outcomes: collections.Counter[str] = collections.Counter()


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A seed file with 1-6 mutations: bit flips, header fields, cuts, repeats, insertions."""
    seed = draw(st.sampled_from(SEEDS))
    data = bytearray(seed.read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "byte", "field", "truncate", "delete", "repeat", "insert"]))
        n = len(data)
        if n == 0:
            break
        header = draw(st.booleans())  # half of the edits land in the first 64 bytes, where headers are
        pos = draw(st.integers(0, min(n, 64) - 1 if header else n - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif op == "field":
            data[pos : pos + 4] = struct.pack("<I", draw(st.sampled_from(INTERESTING)))
        elif op == "truncate":
            del data[pos:]
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 512))]
        elif op == "repeat":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 2048))] * draw(st.integers(1, 8))
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    return seed.suffix, bytes(data)


def check(suffix: str, data: bytes) -> None:
    """The property: a finite mono float32 signal, or one AudioError sentence."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzzed{suffix}"
        path.write_bytes(data)
        try:
            y = audio.load(path, max_seconds=MAX_SECONDS)
        except AudioError as e:
            message = str(e)
            assert message and "\n" not in message and message.endswith("."), message
            outcomes[f"error: {' '.join(message.split()[1:4])}"] += 1
            return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.all(np.isfinite(y))
    assert y.size <= MAX_SECONDS * audio.SAMPLE_RATE + 2 * audio.DECODE_BLOCK_SECONDS * audio.SAMPLE_RATE
    try:
        clip = audio.to_clip(audio.check_speech(y))
    except AudioError:
        outcomes["decoded, no speech"] += 1
        return
    assert clip.shape == (audio.N_SAMPLES,) and np.all(np.isfinite(clip))
    outcomes["decoded"] += 1


def run(max_examples: int) -> dict[str, int]:
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=mutated())
    def fuzz(case: tuple[str, bytes]) -> None:
        check(*case)

    fuzz()
    return dict(outcomes)


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
