"""Short-time Fourier spectrograms of cycles fit to one length, in numpy; and the choice of
front-end (`stft.frontend`: these, or the AST's log-mel fbanks of audio/fbank.py).

numpy's FFT (pocketfft) rather than torch.stft: the stft stage then starts without torch
(seconds of imports per run, more than its work on a small corpus), and a row's spectrogram
is the same bytes whatever batch it is computed in (pocketfft transforms each frame on its
own; checked by tests/test_audio_parallel.py), so the stage's batches and predict's agree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import numpy as np

from respiro.audio.arrays import write_npy_rows
from respiro.audio.fbank import LogMelFbank, fbank_frames
from respiro.audio.segment import CycleTable, fit_cycles
from respiro.audio.store import AudioStore
from respiro.core.config import PadMode, Scale, StftParams, Window

LOG_FLOOR = 1e-6  # power floor of the log scale: ~ -60 dB below a unit-level frame
# Periodic windows (the DFT-even form, as torch.hann_window(periodic=True)): cos terms.
WINDOWS = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46)}


class Spectrogram:
    """Power spectrogram with a magnitude scale, for batches of equal-length signals.

    `(B, time)` float32 -> `(B, n_fft // 2 + 1, 1 + time // hop_length)` float32; frames are
    centred (reflect padding), so frame t covers time t * hop_length. The window is built
    once per instance.
    """

    def __init__(
        self, n_fft: int, hop_length: int, window: Window = "hann", scale: Scale = "log", top_db: float = 80.0
    ) -> None:
        a, b = WINDOWS[window]
        self.window = (a - b * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
        self.n_fft, self.hop_length, self.scale, self.top_db = n_fft, hop_length, scale, top_db

    def __call__(self, signals: np.ndarray) -> np.ndarray:
        half = self.n_fft // 2
        padded = np.pad(np.asarray(signals, dtype=np.float32), ((0, 0), (half, half)), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=1)[
            :, :: self.hop_length
        ]  # (B, T, n_fft)
        spec = np.fft.rfft(frames * self.window, axis=-1)  # (B, T, F) complex64
        power = (spec.real * spec.real + spec.imag * spec.imag).transpose(0, 2, 1)  # (B, F, T)
        if self.scale == "log":
            out = np.log(power + np.float32(LOG_FLOOR))
        elif self.scale == "db":
            db = np.float32(10) * np.log10(np.maximum(power, np.float32(1e-10)))
            out = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - np.float32(self.top_db))
        elif self.scale == "linear":
            out = power
        else:
            assert_never(self.scale)
        return np.ascontiguousarray(out, dtype=np.float32)


FrontEnd = Spectrogram | LogMelFbank  # cycles (B, L) -> network inputs (B, F, T) float32


def front_end(stft: StftParams, rate: int) -> FrontEnd:
    """The transform `stft.frontend` names, for cycles at `rate` Hz."""
    if stft.frontend == "fbank":
        return LogMelFbank(rate, stft.n_fft, stft.hop_length, stft.n_mels, stft.window)
    return Spectrogram(stft.n_fft, stft.hop_length, stft.window, stft.scale, stft.top_db)


def front_end_shape(stft: StftParams, length: int) -> tuple[int, int]:
    """`(F, T)` of the front-end's output for a cycle of `length` samples."""
    if stft.frontend == "fbank":
        return stft.n_mels, fbank_frames(length, stft.n_fft, stft.hop_length)
    return stft.n_fft // 2 + 1, 1 + length // stft.hop_length


def describe_front_end(stft: StftParams) -> str:
    """The front-end in words, for a stage's summary line."""
    if stft.frontend == "fbank":
        return f"AST-normalised log-mel fbanks (n_fft {stft.n_fft}, hop {stft.hop_length})"
    return f"{stft.scale} spectrograms (n_fft {stft.n_fft}, hop {stft.hop_length})"


@functools.lru_cache(maxsize=2)
def _transform(stft: StftParams, rate: int) -> FrontEnd:
    """One front-end per process and settings: its window is built once per worker."""
    return front_end(stft, rate)


@functools.lru_cache(maxsize=2)
def _cycles(store: Path, cycles: Path) -> tuple[AudioStore, CycleTable]:
    """The store a worker cuts from (index read, samples mapped) and the cycle table, opened
    once per process."""
    audio = AudioStore(store)
    return audio, CycleTable.open(cycles, audio)


@dataclass(frozen=True)
class SpectrogramBatch:
    """Cycles [first, first + count) of a cycle table, cut from their store (`CycleTable.cut`)
    and fit to `length` samples (`fit_cycles`), to turn into the same rows of a spectrograms
    .npy made by `create_npy`: one task of the stft stage's workers."""

    store: Path
    cycles: Path
    out: Path
    first: int
    count: int
    length: int  # samples of a fixed-length cycle (segment.duration at the store's rate)
    pad: PadMode  # segment.pad
    stft: StftParams  # the front-end's settings


def write_spectrogram_batch(batch: SpectrogramBatch) -> int:
    """Cut, fit, compute and write the batch's spectrograms `(count, L)` -> `(count, F, T)`;
    returns how many were written."""
    store, table = _cycles(batch.store, batch.cycles)
    cycles = fit_cycles(table.cut(store, batch.first, batch.count), batch.length, batch.pad)
    write_npy_rows(batch.out, batch.first, _transform(batch.stft, table.rate)(cycles))
    return batch.count
