"""The resampler, chosen by measurement: torchaudio's windowed sinc against soxr (not a test).

For each source rate of the ICBHI database (44.1 kHz, 10 kHz) to the pipeline's 4 kHz,
on one thread (as each of the resample stage's workers runs):

  - speed: seconds of audio resampled per second of CPU, on a 21.5 s recording (the
    database's mean length) of noise resampled again and again, and on 40 recordings of
    15-28 s, each of its own length, as the resample stage sees them (torch's convolution
    prepares its kernel per input shape: the first is the kernel's own speed, the second
    what a stage gets); kernels built beforehand (the stage builds one per source rate and
    worker);
  - pass band: the gain in dB of pure tones below the new Nyquist frequency (2 kHz), and
    their delay in output samples, measured by a least-squares fit of a sine and cosine at
    the tone's frequency over the middle of the output (the ends hold the filter's edges);
  - aliasing: what is left of tones above 2 kHz (which a resampler must remove), as the
    output's RMS relative to the tone's, in dB (any frequency it folds to counts).

    pip install soxr      # LGPL-2.1-or-later; manylinux wheels for CPython 3.11
    python -m benchmarks.bench_resample
"""

from __future__ import annotations

import platform
import time

import numpy as np
import soxr
import torch
import torchaudio.transforms as T

TARGET = 4000
SECONDS = 21.5
PASS = (50, 100, 250, 500, 1000, 1500, 1800, 1900, 1950)  # Hz, below 2 kHz
ALIAS = {44100: (2050, 2200, 2500, 3000, 4000, 6000, 10000, 20000), 10000: (2050, 2200, 2500, 3000, 4000, 4900)}


def torchaudio_resampler(rate: int):
    kernel = T.Resample(rate, TARGET, dtype=torch.float32)  # the project's: 6 zero crossings, roll-off 0.99

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return kernel(torch.from_numpy(x)).numpy()

    return run


def soxr_resampler(rate: int, quality: str):
    return lambda x: soxr.resample(x, rate, TARGET, quality=quality)


METHODS = {
    "torchaudio sinc (project)": torchaudio_resampler,
    "soxr HQ (librosa's default)": lambda rate: soxr_resampler(rate, "HQ"),
    "soxr VHQ": lambda rate: soxr_resampler(rate, "VHQ"),
}


def tone(freq: float, rate: int, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def fit_tone(y: np.ndarray, freq: float) -> tuple[float, float]:
    """(gain in dB, delay in output samples) of a unit sine at `freq` Hz in `y` at 4 kHz."""
    n = np.arange(len(y))
    mid = slice(len(y) // 4, 3 * len(y) // 4)  # away from both ends' transients
    w = 2 * np.pi * freq / TARGET
    basis = np.stack([np.sin(w * n[mid]), np.cos(w * n[mid])], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, y[mid].astype(np.float64), rcond=None)
    gain = 20 * np.log10(np.hypot(a, b))
    delay = -np.arctan2(b, a) / w  # a sin(wn) + b cos(wn) = g sin(w (n - delay))
    return float(gain), float(delay)


def residual_db(y: np.ndarray) -> float:
    """RMS of the middle of `y` relative to a unit sine's (1/sqrt 2), in dB."""
    mid = y[len(y) // 4 : 3 * len(y) // 4].astype(np.float64)
    return float(20 * np.log10(max(np.sqrt(np.mean(mid**2)) * np.sqrt(2), 1e-12)))


def speed(run, rate: int, lengths: np.ndarray, repeat: int = 3) -> tuple[float, float]:
    """Audio seconds per CPU second on one recording of SECONDS, run again and again, and on
    recordings of `lengths` seconds, each once (as a stage sees them: every length differs)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(SECONDS * rate)).astype(np.float32) * 0.1
    run(x)  # warm
    same = SECONDS / min(_cpu(run, [x]) for _ in range(repeat))
    many = [rng.standard_normal(int(s * rate)).astype(np.float32) * 0.1 for s in lengths]
    return same, float(lengths.sum()) / _cpu(run, many)


def _cpu(run, signals) -> float:
    start = time.process_time()
    for x in signals:
        run(x)
    return time.process_time() - start


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, soxr {soxr.__version__}, Python {platform.python_version()}, 1 thread\n")
    lengths = np.random.default_rng(1).uniform(15, 28, 40)
    for rate in (44100, 10000):
        print(f"## {rate} Hz -> {TARGET} Hz\n")
        print(
            "| method | audio s per CPU s, one length | audio s per CPU s, 40 lengths | output length (21.5 s) | worst pass-band error 50-1800 Hz (dB) | gain at 1900 / 1950 Hz (dB) | delay (samples) | worst alias 2.2 kHz+ (dB) | alias at 2050 Hz (dB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, make in METHODS.items():
            run = make(rate)
            fits = {f: fit_tone(run(tone(f, rate)), f) for f in PASS}
            band = max(abs(fits[f][0]) for f in PASS if f <= 1800)
            delay = max(abs(fits[f][1]) for f in PASS if f <= 1800)
            aliases = {f: residual_db(run(tone(f, rate))) for f in ALIAS[rate]}
            worst = max(v for f, v in aliases.items() if f >= 2200)
            length = len(run(np.zeros(int(SECONDS * rate), np.float32)))
            same, many = speed(run, rate, lengths)
            print(
                f"| {name} | {same:,.0f} | {many:,.0f} | {length} | {band:.4f} | {fits[1900][0]:.2f} / {fits[1950][0]:.2f} | {delay:.3f} | {worst:.1f} | {aliases[2050]:.1f} |"
            )
        print()
    print(f"ceil(21.5 s x 4000) = {int(np.ceil(SECONDS * TARGET))}")


if __name__ == "__main__":
    main()
