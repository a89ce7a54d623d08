"""The audio stages' steps as one librosa script in one process: the benchmark's reference.

What a researcher would write without a pipeline, for the same steps as download -> stft:
read every recording of an ICBHI folder (librosa.load: soundfile, mono), resample it to
4 kHz (librosa's default soxr_hq resampler), scale it to -20 dBFS RMS, cut the annotated
cycles, bring each to 8 s (tiled when shorter, cropped when longer), and take the log power
STFT (n_fft 256, hop 256, Hann, centred with reflect padding). Writes cycles.npy and
spectrograms.npy to the output folder. The numbers differ from the pipeline's in the last
digits (another STFT); the work is the same.

Without librosa installed (or with --plain) it makes the calls librosa makes underneath:
soundfile.read and a channel mean, soxr.resample(quality="HQ"), numpy's rfft of the
reflect-padded frames of a periodic Hann window. That skips librosa's own checks and its
numba warm-up, so it is at least as fast: a reference no easier to beat. The summary line
says which one ran.

    pip install -r benchmarks/requirements.txt      # librosa; or only soxr for --plain
    python benchmarks/librosa_reference.py /path/to/icbhi_folder /tmp/librosa-out

Not part of the pipeline: benchmarks/bench_audio.py times it beside `dvc repro`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

try:
    import librosa
except ImportError:  # the plain version below needs only soundfile and soxr
    librosa = None

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


def load_plain(wav: Path) -> np.ndarray:
    """librosa.load(wav, sr=RATE, mono=True) without librosa: read, average the channels,
    soxr HQ."""
    import soundfile as sf
    import soxr

    y, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return soxr.resample(y.mean(axis=1, dtype=np.float32), rate, RATE, quality="HQ")


def stft_power_plain(batch: np.ndarray) -> np.ndarray:
    """|librosa.stft(batch, n_fft, hop, hann, center, reflect)|^2 without librosa: (n, F, T)."""
    padded = np.pad(batch, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]  # (n, T, n_fft)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    spec = np.fft.rfft(frames * window, axis=-1)  # (n, T, F) complex64
    return (spec.real**2 + spec.imag**2).transpose(0, 2, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an ICBHI folder (.wav and .txt pairs)")
    parser.add_argument("out", type=Path, help="folder for cycles.npy and spectrograms.npy")
    parser.add_argument("--plain", action="store_true", help="soundfile + soxr + numpy even where librosa is installed")
    args = parser.parse_args()
    use_librosa = librosa is not None and not args.plain
    start = time.perf_counter()
    cycles, spectrograms = [], []
    wavs = sorted(args.folder.glob("*.wav"))
    for wav in wavs:
        y = librosa.load(wav, sr=RATE, mono=True)[0] if use_librosa else load_plain(wav)
        y = y * np.float32(10 ** (TARGET_DBFS / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        batch = np.stack(cycles_of(wav.with_suffix(".txt"), y))
        if use_librosa:
            power = (
                np.abs(librosa.stft(batch, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect"))
                ** 2
            )
        else:
            power = stft_power_plain(batch)
        cycles.append(batch)
        spectrograms.append(np.log(power + 1e-6).astype(np.float32))
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "cycles.npy", np.concatenate(cycles))
    np.save(args.out / "spectrograms.npy", np.concatenate(spectrograms))
    count = sum(len(c) for c in cycles)
    which = "librosa" if use_librosa else "plain (soundfile + soxr + numpy)"
    print(
        f"librosa_reference: {count} cycles from {len(wavs)} recordings, {which}, in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
