"""The audio stages' steps as one librosa script in one process: the benchmark's reference.

What a researcher would write without a pipeline, for the same steps as download -> stft:
read every recording of an ICBHI folder (librosa.load: soundfile, mono), resample it to
4 kHz (librosa's default soxr_hq resampler), scale it to -20 dBFS RMS, cut the annotated
cycles, bring each to 8 s (tiled when shorter, cropped when longer), and take the log power
STFT (n_fft 256, hop 256, Hann, centred with reflect padding). Writes cycles.npy and
spectrograms.npy to the output folder. The numbers differ from the pipeline's in the last
digits (another resampler); the work is the same.

    pip install -r benchmarks/requirements.txt
    python benchmarks/librosa_reference.py /path/to/icbhi_folder /tmp/librosa-out

Not part of the pipeline: benchmarks/bench_audio.py times it beside `dvc repro`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import librosa
import numpy as np

RATE, TARGET_DBFS, SECONDS, N_FFT, HOP = 4000, -20.0, 8.0, 256, 256


def cycles_of(annotation: Path, y: np.ndarray) -> list[np.ndarray]:
    """The recording's annotated cycles (`start end crackle wheeze` lines), each 8 s long."""
    length = int(round(SECONDS * RATE))
    out = []
    for line in annotation.read_text().split("\n"):
        if not line.strip():
            continue
        start, end = (int(round(float(v) * RATE)) for v in line.split()[:2])
        cycle = y[start : min(end, len(y))]
        if len(cycle):
            out.append(np.resize(cycle, length) if len(cycle) < length else cycle[:length])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an ICBHI folder (.wav and .txt pairs)")
    parser.add_argument("out", type=Path, help="folder for cycles.npy and spectrograms.npy")
    args = parser.parse_args()
    start = time.perf_counter()
    cycles, spectrograms = [], []
    wavs = sorted(args.folder.glob("*.wav"))
    for wav in wavs:
        y, _ = librosa.load(wav, sr=RATE, mono=True)
        y = y * np.float32(10 ** (TARGET_DBFS / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        batch = np.stack(cycles_of(wav.with_suffix(".txt"), y))
        power = np.abs(librosa.stft(batch, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect")) ** 2
        cycles.append(batch)
        spectrograms.append(np.log(power + 1e-6).astype(np.float32))
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "cycles.npy", np.concatenate(cycles))
    np.save(args.out / "spectrograms.npy", np.concatenate(spectrograms))
    count = sum(len(c) for c in cycles)
    print(f"librosa_reference: {count} cycles from {len(wavs)} recordings in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
