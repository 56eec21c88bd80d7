"""Write the decoder fuzzer's seed corpus: short generated tones, never real recordings.

python tests/fuzz/make_seeds.py   # rewrites tests/fuzz/seeds/ (about 20 KB)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"


def make_seeds(folder: Path = SEEDS) -> list[Path]:
    """A 0.4 s harmonic tone at 8 kHz as WAV (16-bit and float), FLAC, MP3, Ogg Vorbis and Opus."""
    import soundfile as sf

    sys.path.insert(0, str(HERE.parent))
    from corpus import encode_pyav

    folder.mkdir(parents=True, exist_ok=True)
    sr = 8_000
    t = np.arange(int(0.4 * sr)) / sr
    y = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 660 * t)) * np.hanning(t.size)
    y = y.astype(np.float32)
    sf.write(str(folder / "tone16.wav"), y, sr, subtype="PCM_16")
    sf.write(str(folder / "tonef32.wav"), np.stack([y, -y], axis=1), sr, subtype="FLOAT")
    sf.write(str(folder / "tone.flac"), y, sr)
    sf.write(str(folder / "tone.mp3"), y, sr, format="MP3")
    sf.write(str(folder / "tone.ogg"), y, sr, format="OGG", subtype="VORBIS")
    encode_pyav(folder / "tone.opus", y, sr, container="ogg", codec="libopus", rate=8_000)
    return sorted(folder.iterdir())


if __name__ == "__main__":
    for path in make_seeds():
        print(f"{path.stat().st_size:7d}  {path}")
