"""A folder of many recordings as two files: samples and an index.

`samples.f32` holds every recording's float32 samples back to back (little-endian, native
numpy layout) and `recordings.csv` one row per recording with its `offset` and `length` in
samples, plus what is known of it (patient, device, rates, ...). Two files instead of
hundreds keep DVC's bookkeeping small; the raw layout lets the writer stream recordings one
at a time (bounded memory) and readers memory-map them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from respiro.audio.arrays import StreamWriter
from respiro.core.errors import DamagedArtifactError
from respiro.core.outputs import read_csv, write_csv

SAMPLES_FILE = "samples.f32"
INDEX_FILE = "recordings.csv"
DTYPE = np.dtype("<f4")


class AudioStoreWriter(StreamWriter):
    """Appends recordings to a store folder; `close()` writes the index."""

    def __init__(self, folder: Path, rate: int) -> None:
        self.folder = folder
        self.rate = rate
        self.rows: list[dict[str, str]] = []
        self._offset = 0
        self._file = (folder / SAMPLES_FILE).open("wb")

    def append(self, row: dict[str, object], samples: np.ndarray) -> None:
        """Add one recording: `row` (its metadata) and `samples` (time,) at the store's rate."""
        data = np.ascontiguousarray(samples, dtype=DTYPE)
        self._file.write(data.tobytes())
        self.rows.append(
            {
                **{k: str(v) for k, v in row.items()},
                "rate": str(self.rate),
                "offset": str(self._offset),
                "length": str(len(data)),
            }
        )
        self._offset += len(data)

    def close(self) -> None:
        self._file.close()
        write_csv(self.folder / INDEX_FILE, self.rows)


class AudioStore:
    """Read access to a store folder: `rows` and `samples(i)` (a memory-mapped view)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows = read_csv(folder / INDEX_FILE)
        total = sum(int(r["length"]) for r in self.rows)
        path = folder / SAMPLES_FILE
        expected = total * DTYPE.itemsize
        if path.stat().st_size != expected:
            raise DamagedArtifactError(
                f"{path}: {path.stat().st_size} bytes, index says {expected}: store is damaged, rerun its stage"
            )
        self._data = np.memmap(path, dtype=DTYPE, mode="r") if total else np.zeros(0, DTYPE)

    def __len__(self) -> int:
        return len(self.rows)

    def samples(self, i: int) -> np.ndarray:
        row = self.rows[i]
        start = int(row["offset"])
        return self._data[start : start + int(row["length"])]

    def __iter__(self) -> Iterator[tuple[dict[str, str], np.ndarray]]:
        for i, row in enumerate(self.rows):
            yield row, self.samples(i)
