"""Band-limited resampling to the pipeline's rate (torchaudio's windowed-sinc resampler)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.transforms as T

from respiro.core.errors import AudioReadError
from respiro.audio.wavio import read_mono


class Resampler:
    """Resamples float32 signals from any rate to `target_rate`.

    One torchaudio `Resample` per source rate, built on first use: its sinc kernel depends
    only on the pair of rates, and the database has just three (44100, 10000, 4000 Hz).
    The kernel is a Hann-windowed sinc (6 zero crossings, roll-off 0.99 of the lower
    Nyquist), so content above the new Nyquist frequency is removed before decimation
    rather than aliased into the band the model sees.
    """

    def __init__(self, target_rate: int) -> None:
        self.target_rate = target_rate
        self._kernels: dict[int, T.Resample] = {}

    def __call__(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """`samples` (time,) at `rate` -> (ceil(time * target_rate / rate),) float32."""
        if rate == self.target_rate:
            return np.asarray(samples, dtype=np.float32)
        if rate not in self._kernels:
            self._kernels[rate] = T.Resample(rate, self.target_rate, dtype=torch.float32)
        with torch.inference_mode():
            out = self._kernels[rate](torch.from_numpy(np.asarray(samples, dtype=np.float32)))
        return out.numpy()


@functools.lru_cache(maxsize=None)
def _resampler(target_rate: int) -> Resampler:
    """One Resampler per process and target rate, so its kernels are built once per worker."""
    return Resampler(target_rate)


@dataclass(frozen=True)
class ResampledRecording:
    """One recording read and resampled, or why it cannot be used."""

    samples: np.ndarray | None  # (time,) float32 at the target rate; None when skipped
    source_rate: int  # 0 when the file could not be read
    seconds: float  # length of the audio read
    problem: str = ""  # why the recording is skipped; "" when it is usable


def read_resampled(wav: Path, target_rate: int) -> ResampledRecording:
    """Read `wav` as mono float32 and resample it to `target_rate`: the resample stage's work
    for one recording, run in its worker processes. An unreadable file, and one whose
    samples are all zero (its cycles carry labels but no sound: training on them would
    teach noise), come back with `problem` set instead of samples."""
    try:
        samples, rate = read_mono(wav)
    except AudioReadError as err:
        return ResampledRecording(None, 0, 0.0, str(err).removeprefix(f"{wav}: "))
    if not samples.any():
        return ResampledRecording(None, rate, len(samples) / rate, "all samples are zero (silent recording)")
    return ResampledRecording(_resampler(target_rate)(samples, rate), rate, len(samples) / rate)
