"""Band-limited resampling to the pipeline's rate: soxr or torchaudio's windowed sinc.

`resample.method` chooses (benchmarks/bench_resample.py measures both; RESULTS_audio.md):

- `soxr`: libsoxr's "HQ" recipe (librosa's default resampler): pass band flat to 0.1 dB
  up to 0.9 of the new Nyquist frequency, everything above it removed (>= 130 dB).
- `torchaudio`: torchaudio's Hann-windowed sinc (6 zero crossings, roll-off 0.99 of the
  lower Nyquist), the project's resampler before soxr: a short kernel whose transition
  band straddles the new Nyquist, so tones just above it alias back at -8 to -14 dB and the
  top of the pass band is cut (-2.4 dB at 1.8 kHz for 4 kHz).

torch and torchaudio are imported only for `torchaudio`: the resample stage with soxr
starts without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from respiro.audio.wavio import read_mono
from respiro.core.config import ResampleMethod
from respiro.core.errors import AudioReadError

Kernel = Callable[[np.ndarray], np.ndarray]  # float32 (time,) -> float32 (time',)


def _soxr_kernel(rate: int, target_rate: int) -> Kernel:
    import soxr

    # One call per recording: soxr's one-shot mode flushes the filter, so the output is
    # aligned with the input (no delay), as torchaudio's.
    return lambda x: soxr.resample(x, rate, target_rate, quality="HQ")


def _torchaudio_kernel(rate: int, target_rate: int) -> Kernel:
    import torch
    import torchaudio.transforms as T

    resample = T.Resample(rate, target_rate, dtype=torch.float32)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return resample(torch.from_numpy(x)).numpy()

    return run


KERNELS: dict[str, Callable[[int, int], Kernel]] = {"soxr": _soxr_kernel, "torchaudio": _torchaudio_kernel}


class Resampler:
    """Resamples float32 signals from any rate to `target_rate` with `method` (soxr or
    torchaudio).

    One kernel per source rate, built on first use: it depends only on the pair of rates,
    and the database has just three (44100, 10000, 4000 Hz).
    """

    def __init__(self, target_rate: int, method: ResampleMethod = "torchaudio") -> None:
        self.target_rate, self.method = target_rate, method
        self._kernels: dict[int, Kernel] = {}

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """`samples` (time,) at `rate` -> float32 (time * target_rate / rate,): torchaudio takes
        the ceiling of that length, soxr rounds it."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if rate == self.target_rate:
            return samples
        if rate not in self._kernels:
            self._kernels[rate] = KERNELS[self.method](rate, self.target_rate)
        return self._kernels[rate](samples)


@functools.cache
def _resampler(target_rate: int, method: ResampleMethod) -> Resampler:
    """One Resampler per process and settings, so its kernels are built once per worker."""
    return Resampler(target_rate, method)


@dataclass(frozen=True)
class ResampledRecording:
    """One recording read and resampled, or why it cannot be used."""

    samples: np.ndarray | None  # (time,) float32 at the target rate; None when skipped
    source_rate: int  # 0 when the file could not be read
    seconds: float  # length of the audio read
    problem: str = ""  # why the recording is skipped; "" when it is usable


def read_resampled(wav: Path, target_rate: int, method: ResampleMethod = "torchaudio") -> ResampledRecording:
    """Read `wav` as mono float32 and resample it to `target_rate` with `method`: the
    resample stage's work for one recording, run in its worker processes. An unreadable
    file, and one whose samples are all zero (its cycles carry labels but no sound: training
    on them would teach noise), come back with `problem` set instead of samples."""
    try:
        samples, rate = read_mono(wav)
    except AudioReadError as err:
        return ResampledRecording(None, 0, 0.0, str(err).removeprefix(f"{wav}: "))
    if not samples.any():
        return ResampledRecording(None, rate, len(samples) / rate, "all samples are zero (silent recording)")
    return ResampledRecording(_resampler(target_rate, method)(samples, rate), rate, len(samples) / rate)
