"""The Audio Spectrogram Transformer's front-end: a Kaldi log-mel filterbank, AST-normalised.

AST (Gong et al. 2021) and the ICBHI work built on it (Patch-Mix CL, SG-SCL, ...) feed the
network `torchaudio.compliance.kaldi.fbank` of 16 kHz audio (25 ms windows, 10 ms hops, 128
mel bins, a Hann window, no dither), shifted and scaled by AudioSet's statistics. The same
call is made here, so that pretrained weights see what they were trained on: torchaudio's
Kaldi port is the reference implementation of those features (transformers'
ASTFeatureExtractor calls it too), and tests/test_ast.py holds ours to the extractor's.

Each cycle is transformed on its own (Kaldi's fbank takes one signal), so a row does not
depend on the batch it is computed in, as for `Spectrogram`.
"""

from __future__ import annotations

import numpy as np

from respiro.core.config import Window

# AudioSet's fbank mean and standard deviation as AST's recipe uses them: (x - MEAN) / (2 STD).
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974
KALDI_WINDOWS = {"hann": "hanning", "hamming": "hamming"}


def fbank_frames(length: int, n_fft: int, hop_length: int) -> int:
    """Frames of a `length`-sample cycle: Kaldi's windows lie wholly inside the signal."""
    return 1 + (length - n_fft) // hop_length


class LogMelFbank:
    """`(B, time)` float32 -> `(B, n_mels, fbank_frames(time))` float32, AST-normalised.

    The window is `n_fft` samples long every `hop_length` samples, at `rate` Hz (Kaldi takes
    both in milliseconds; they are given so that it computes the same whole samples back).
    """

    def __init__(self, rate: int, n_fft: int, hop_length: int, n_mels: int, window: Window = "hann") -> None:
        self.rate, self.n_fft, self.hop_length, self.n_mels = rate, n_fft, hop_length, n_mels
        self.window = KALDI_WINDOWS[window]
        # Kaldi's own rounding: int(rate * ms * 0.001) must give back n_fft and hop_length.
        self.frame_length, self.frame_shift = (_milliseconds(n, rate) for n in (n_fft, hop_length))

    def __call__(self, signals: np.ndarray) -> np.ndarray:
        import torch
        from torchaudio.compliance.kaldi import fbank

        signals = np.asarray(signals, dtype=np.float32)
        frames = fbank_frames(signals.shape[1], self.n_fft, self.hop_length)
        out = np.empty((len(signals), self.n_mels, frames), dtype=np.float32)
        for i, signal in enumerate(signals):
            features = fbank(
                torch.from_numpy(signal)[None],
                sample_frequency=self.rate,
                frame_length=self.frame_length,
                frame_shift=self.frame_shift,
                num_mel_bins=self.n_mels,
                window_type=self.window,
                htk_compat=True,
                use_energy=False,
                dither=0.0,
            )  # (frames, n_mels)
            out[i] = ((features - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)).T.numpy()
        return out


def _milliseconds(samples: int, rate: int) -> float:
    """`samples` at `rate` in ms, nudged so that Kaldi's `int(rate * ms * 0.001)` is `samples`."""
    ms = samples * 1000.0 / rate
    for nudge in (0.0, 1e-9, 1e-7):
        if int(rate * (ms + nudge) * 0.001) == samples:
            return ms + nudge
    raise ValueError(f"{samples} samples at {rate} Hz cannot be given to Kaldi's fbank in milliseconds")
