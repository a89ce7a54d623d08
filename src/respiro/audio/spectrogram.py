"""Short-time Fourier spectrograms of cycles fit to one length."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from respiro.audio.arrays import write_npy_rows
from respiro.audio.segment import CycleFolder, fit_cycles

LOG_FLOOR = 1e-6  # power floor of the log scale: ~ -60 dB below a unit-level frame


class Spectrogram(torch.nn.Module):
    """Power spectrogram with a magnitude scale, for batches of equal-length signals.

    `(B, time)` -> `(B, n_fft // 2 + 1, 1 + time // hop_length)`; frames are centred
    (reflect padding), so frame t covers time t * hop_length. The window is a buffer built
    once, so the module moves with `.to(device)`.
    """

    def __init__(self, n_fft: int, hop_length: int, window: str = "hann", scale: str = "log", top_db: float = 80.0) -> None:
        super().__init__()
        make = {"hann": torch.hann_window, "hamming": torch.hamming_window}[window]
        self.register_buffer("window", make(n_fft, periodic=True), persistent=False)
        self.n_fft, self.hop_length, self.scale, self.top_db = n_fft, hop_length, scale, top_db

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            signals,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, F, T)
        if self.scale == "log":
            return torch.log(power + LOG_FLOOR)
        if self.scale == "db":
            db = 10 * torch.log10(power.clamp_min(1e-10))
            peak = db.amax(dim=(-2, -1), keepdim=True)
            return torch.maximum(db, peak - self.top_db)
        return power


@functools.lru_cache(maxsize=2)
def _transform(n_fft: int, hop_length: int, window: str, scale: str, top_db: float) -> Spectrogram:
    """One Spectrogram per process and settings: its window is built once per worker."""
    return Spectrogram(n_fft, hop_length, window, scale, top_db)


@functools.lru_cache(maxsize=2)
def _cycles(folder: Path) -> CycleFolder:
    """The cycles folder a worker reads, opened (offsets loaded) once per process."""
    return CycleFolder.open(folder)


@dataclass(frozen=True)
class SpectrogramBatch:
    """Cycles [first, first + count) of a cycles folder to fit to `length` samples
    (`fit_cycles`) and turn into the same rows of a spectrograms .npy made by `create_npy`:
    one task of the stft stage's workers."""

    cycles: Path
    out: Path
    first: int
    count: int
    length: int  # samples of a fixed-length cycle (segment.duration at the cycles' rate)
    pad: str  # segment.pad
    settings: tuple[int, int, str, str, float]  # n_fft, hop_length, window, scale, top_db


def write_spectrogram_batch(batch: SpectrogramBatch) -> int:
    """Fit, compute and write the batch's spectrograms `(count, L)` -> `(count, F, T)`;
    returns how many were written."""
    cycles = fit_cycles(_cycles(batch.cycles).read(batch.first, batch.count), batch.length, batch.pad)
    with torch.inference_mode():
        write_npy_rows(batch.out, batch.first, _transform(*batch.settings)(torch.from_numpy(cycles)).numpy())
    return batch.count
