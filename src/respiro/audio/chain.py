"""The whole audio chain for one recording: resample -> normalize -> cut -> fit -> spectrogram.

The stages run these steps one at a time over the whole corpus, so that DVC caches each
step; a model in use needs them on one recording at a time. `AudioChain` composes the very
functions the stages call (Resampler, normalize, cycle_span, fit_cycles, the front-end) with
one set of params, the ones a checkpoint was trained with, so that a recording gives the
network the same input at inference as in training (checked bit for bit by
tests/test_predict.py against the stages' own spectrograms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from respiro.audio.normalize import normalize
from respiro.audio.resample import Resampler
from respiro.audio.segment import CycleSpan, cycle_samples, fit_cycles
from respiro.audio.spectrogram import front_end, front_end_shape
from respiro.core.config import NormalizeParams, ResampleParams, SegmentParams, StftParams, validate_group
from respiro.core.errors import ParamsError

# The params groups that shape a spectrogram, in pipeline order.
AUDIO_GROUPS = ("resample", "normalize", "segment", "stft")
STFT_BATCH = 256  # cycles per STFT call: memory stays at one batch (a spectrogram does not depend on its batch)


class AudioChain:
    """From a recording's samples at any rate to spectrograms `(n, F, T)`, for one params set."""

    def __init__(
        self, resample: ResampleParams, normalize: NormalizeParams, segment: SegmentParams, stft: StftParams
    ) -> None:
        self.resample, self.normalize, self.segment, self.stft = resample, normalize, segment, stft
        self._resampler = Resampler(resample.rate, resample.method)
        self._spectrogram = front_end(stft, resample.rate)

    @classmethod
    def from_params(cls, groups: Mapping[str, Any]) -> AudioChain:
        """The chain of a params mapping `{group: {key: value}}` (params.yaml's, or the copy a
        checkpoint holds), validated by the params schema: ParamsError names what is wrong."""
        if not isinstance(groups, Mapping):
            raise ParamsError(f"params must be a mapping of groups; got {type(groups).__name__}")
        for name in AUDIO_GROUPS:
            if name not in groups:
                raise ParamsError(f"missing params group {name!r}")
        checked = {name: validate_group(name, groups[name]) for name in AUDIO_GROUPS}
        return cls(**checked)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: getattr(self, name).model_dump() for name in AUDIO_GROUPS}

    @property
    def rate(self) -> int:
        return self.resample.rate

    @property
    def cycle_samples(self) -> int:
        """Samples in every fixed-length cycle (as the stft stage computes it)."""
        return cycle_samples(self.segment.duration, self.rate)

    @property
    def shape(self) -> tuple[int, int]:
        """`(F, T)` of one spectrogram."""
        return front_end_shape(self.stft, self.cycle_samples)

    def recording(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """A recording `(time,)` at `rate` -> resampled to the chain's rate and normalized,
        float32 `(about time * self.rate / rate,)`: what the normalize stage stores."""
        resampled = self._resampler(samples, rate)
        scaled, _ = normalize(resampled, self.normalize.method, self.normalize.target_dbfs)
        return scaled

    def cycles(self, recording: np.ndarray, spans: Iterable[CycleSpan]) -> np.ndarray:
        """The `spans` of a prepared recording, each fit to the cycle length as the stft stage
        fits them: `(n, L)` float32."""
        return fit_cycles([recording[s.start : s.end] for s in spans], self.cycle_samples, self.segment.pad)

    def spectrograms(self, cycles: np.ndarray) -> np.ndarray:
        """Cycles `(n, L)` -> spectrograms `(n, F, T)` float32, in batches, as the stft stage makes them."""
        out = [self._spectrogram(cycles[i : i + STFT_BATCH]) for i in range(0, len(cycles), STFT_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, *self.shape), np.float32)
