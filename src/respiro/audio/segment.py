"""Respiratory cycles: where each one lies in its recording, cut and fit to one length where used.

The segment stage stores a cycle table, not samples (data/cycles: for every cycle its
recording in the resampled store, its sample range and its recording's normalization gain):
a cycle's samples are a slice of the resampled recording times that gain (`CycleTable.cut`,
bit for bit the slice of the normalized recording), so storing them would keep a third copy
of the audio. The stft stage cuts them and `fit_cycles` makes the fixed length the network
takes, as the predict chain does, so `segment.duration` and `segment.pad` rerun only stft.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import numpy as np

from respiro.audio.normalize import apply_gain
from respiro.audio.store import AudioStore
from respiro.core.config import PadMode
from respiro.core.errors import DamagedArtifactError

# A cycles folder (data/cycles): TABLE, an .npz of four (N,) arrays in manifest order:
# `recording` (int64, the row of the resampled store), `start` and `end` (int64, the sample
# range, end exclusive) and `gain_db` (float64, the recording's gain); the stage's
# manifest.csv beside it, one row per cycle; `rate` (the store's) in the table too.
TABLE = "cycles.npz"


@dataclass(frozen=True)
class CycleSpan:
    """A cycle's samples within its recording, after clipping to the audio."""

    start: int
    end: int
    clipped: bool  # the annotation ran past the end of the audio


def cycle_span(start_s: float, end_s: float, rate: int, length: int) -> CycleSpan | None:
    """Sample range of an annotated cycle in a recording of `length` samples at `rate`.

    A cycle that runs past the end of the audio is clipped to it (`clipped` set); one with
    no samples left (zero length, or starting after the audio ends) gives None.
    """
    start = int(round(start_s * rate))
    end = int(round(end_s * rate))
    clipped = end > length
    end = min(end, length)
    if end <= start:
        return None
    return CycleSpan(start, end, clipped)


def cycle_samples(duration: float, rate: int) -> int:
    """Samples in a fixed-length cycle of `duration` seconds (segment.duration) at `rate`."""
    return int(round(duration * rate))


def fit_length(cycle: np.ndarray, length: int, pad: PadMode) -> np.ndarray:
    """Bring a cycle (time,) to exactly `length` samples.

    Longer cycles keep their first `length` samples (the start of a cycle is inspiration,
    where crackles sit). Shorter ones are padded: `repeat` tiles the cycle (no silent tail
    the network could learn cycle length from), `zero` appends zeros.
    """
    n = len(cycle)
    if n == 0:
        raise ValueError("cannot fit an empty cycle")
    if n >= length:
        return np.asarray(cycle[:length], dtype=np.float32)
    if pad == "repeat":
        return np.resize(np.asarray(cycle, dtype=np.float32), length)
    if pad == "zero":
        out = np.zeros(length, dtype=np.float32)
        out[:n] = cycle
        return out
    assert_never(pad)


def fit_cycles(cycles: Sequence[np.ndarray], length: int, pad: PadMode) -> np.ndarray:
    """Cycles of any lengths -> `(n, length)` float32, each by `fit_length`: the network's
    fixed-length input, made the same way by the stft stage and by the predict chain."""
    # Filled in place: a list of rows, then a stacked copy, faults in fresh pages per batch.
    out = np.empty((len(cycles), length), np.float32)
    for row, cycle in zip(out, cycles):
        row[:] = fit_length(cycle, length, pad)
    return out


@dataclass(frozen=True)
class CycleTable:
    """Where every cycle lies: `recording`, `start`, `end` (N,) int64 and `gain_db` (N,)
    float64, at the resampled store's `rate`."""

    rate: int
    recording: np.ndarray
    start: np.ndarray
    end: np.ndarray
    gain_db: np.ndarray

    def __len__(self) -> int:
        return len(self.recording)

    def write(self, folder: Path) -> None:
        np.savez(
            folder / TABLE,
            rate=np.int64(self.rate),
            recording=self.recording.astype("<i8"),
            start=self.start.astype("<i8"),
            end=self.end.astype("<i8"),
            gain_db=self.gain_db.astype("<f8"),
        )

    @classmethod
    def open(cls, folder: Path, store: AudioStore) -> CycleTable:
        """The table of a cycles folder, checked against the `store` its ranges point into."""
        path = folder / TABLE
        try:
            with np.load(path) as f:
                table = cls(int(f["rate"]), f["recording"], f["start"], f["end"], f["gain_db"])
        except (OSError, KeyError, ValueError) as err:
            raise DamagedArtifactError(f"{path}: not a cycle table ({err}); rerun the segment stage") from err
        lengths = np.array([int(r["length"]) for r in store.rows], dtype=np.int64)
        rates = {int(r["rate"]) for r in store.rows}
        n = len(table.recording)
        if (
            not len(table.start) == len(table.end) == len(table.gain_db) == n
            or rates - {table.rate}
            or ((table.recording < 0) | (table.recording >= len(lengths))).any()
            or (table.start < 0).any()
            or (table.end <= table.start).any()
            or (n and (table.end > lengths[table.recording]).any())
        ):
            raise DamagedArtifactError(
                f"{path}: its cycles do not lie in {store.folder}: damaged or from another run, rerun the segment stage"
            )
        return table

    def cut(self, store: AudioStore, first: int, count: int) -> list[np.ndarray]:
        """Cycles [first, first + count): each its recording's slice times its gain, unpadded."""
        rows = range(first, min(first + count, len(self)))
        return [
            apply_gain(store.samples(int(self.recording[i]))[self.start[i] : self.end[i]], float(self.gain_db[i]))
            for i in rows
        ]
