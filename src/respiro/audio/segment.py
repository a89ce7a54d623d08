"""Respiratory cycles: cut from recordings, stored unpadded, fit to one length where used.

The segment stage stores each cycle as it is in its recording, scaled by the recording's
normalization gain (a cycles folder: every cycle's samples back to back, plus their
boundaries); the fixed length the network takes is
made later by `fit_cycles`, in the stft stage and in the predict chain alike, so that the
stored cycles are about a third of the padded ones and `segment.duration` and `segment.pad`
rerun only the stft stage.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from respiro.audio.arrays import npy_shape, read_npy_rows, write_npy_rows
from respiro.audio.normalize import apply_gain
from respiro.audio.store import AudioStore
from respiro.core.config import PadMode
from respiro.core.errors import DamagedArtifactError

# A cycles folder (data/cycles): SAMPLES (S,) float32, every cycle back to back; OFFSETS
# (N + 1,) int64, cycle i is samples[offsets[i]:offsets[i + 1]]; INFO the sample rate and
# the counts; the stage's manifest.csv beside them, one row per cycle in the same order.
SAMPLES, OFFSETS, INFO = "samples.npy", "offsets.npy", "cycles.json"


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
    out = np.zeros(length, dtype=np.float32)  # zero
    out[:n] = cycle
    return out


def fit_cycles(cycles: Sequence[np.ndarray], length: int, pad: PadMode) -> np.ndarray:
    """Cycles of any lengths -> `(n, length)` float32, each by `fit_length`: the network's
    fixed-length input, made the same way by the stft stage and by the predict chain."""
    # Filled in place: a list of rows, then a stacked copy, faults in fresh pages per batch.
    out = np.empty((len(cycles), length), np.float32)
    for row, cycle in zip(out, cycles):
        row[:] = fit_length(cycle, length, pad)
    return out


def write_cycles_info(folder: Path, rate: int, offsets: np.ndarray) -> None:
    """The boundaries and the rate of a cycles folder whose samples are being written."""
    np.save(folder / OFFSETS, np.asarray(offsets, dtype="<i8"))
    counts = {"rate": rate, "cycles": len(offsets) - 1, "samples": int(offsets[-1])}
    (folder / INFO).write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class CycleFolder:
    """Read access to a cycles folder: `rate`, `offsets`, and `read(first, count)`."""

    folder: Path
    rate: int
    offsets: np.ndarray  # (N + 1,) int64

    @classmethod
    def open(cls, folder: Path) -> CycleFolder:
        info = json.loads((folder / INFO).read_text())
        offsets = np.load(folder / OFFSETS)
        (samples,) = npy_shape(folder / SAMPLES)
        if len(offsets) != info["cycles"] + 1 or offsets[-1] != samples or (np.diff(offsets) <= 0).any():
            raise DamagedArtifactError(
                f"{folder}: cycle offsets do not match {SAMPLES}: damaged, rerun the segment stage"
            )
        return cls(folder, int(info["rate"]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def read(self, first: int, count: int) -> list[np.ndarray]:
        """Cycles [first, first + count) as they were cut, unpadded (views of one read)."""
        bounds = self.offsets[first : first + count + 1]
        samples = read_npy_rows(self.folder / SAMPLES, int(bounds[0]), int(bounds[-1] - bounds[0]))
        return split_cycles(samples, bounds)


def split_cycles(samples: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """`samples` holding cycles back to back from `offsets[0]` on -> one view per cycle."""
    base = offsets - offsets[0]
    return [samples[a:b] for a, b in zip(base[:-1], base[1:])]


@functools.lru_cache(maxsize=2)
def _store(folder: Path) -> AudioStore:
    """The store a worker cuts from, opened (index read, samples mapped) once per process."""
    return AudioStore(folder)


@dataclass(frozen=True)
class CycleBatch:
    """Consecutive cycles to cut from a store folder, each scaled by its recording's gain,
    into a cycles folder's samples .npy (made by `create_npy`), starting at sample `offset`:
    one task of the segment stage."""

    store: Path
    out: Path
    offset: int
    spans: tuple[tuple[int, CycleSpan, float], ...]  # (recording's index in the store, its span, its gain in dB)


def write_cycle_batch(batch: CycleBatch) -> int:
    """Cut, scale and write the batch's cycles, unpadded and back to back; returns how many."""
    store = _store(batch.store)
    pieces = [apply_gain(store.samples(i)[span.start : span.end], gain_db) for i, span, gain_db in batch.spans]
    write_npy_rows(batch.out, batch.offset, np.concatenate(pieces) if pieces else np.zeros(0, np.float32))
    return len(pieces)
