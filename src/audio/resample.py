"""Band-limited resampling to the pipeline's rate (torchaudio's windowed-sinc resampler)."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.transforms as T


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
