"""Streaming .npy files: write a large array in row batches, from any process.

Memory-mapping a whole output keeps every page touched resident, so a stage's memory would
grow with the corpus (0.46 GB of spectrograms at ICBHI scale, twice that with hop 128).
Writing through plain file I/O in batches keeps it at one batch, while the file stays an
ordinary .npy that training memory-maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Self

import numpy as np


class StreamWriter:
    """A writer over one open file, used as a context manager: on success `close()` finishes
    (and checks) the output; on an error the file is only released, for the caller's atomic
    folder to discard."""

    _file: BinaryIO

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:  # the subclass, with its own append()/rows
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()


def _read_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an open .npy file, leaving it at the data."""
    major, _ = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(f)


def create_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype = np.dtype("<f4")) -> None:
    """The header of an .npy file of `shape` whose rows `write_npy_rows` writes later, in any
    order and from any process (the pool of a stage); the caller writes every row range once
    and finishes only when every write has returned. The file grows as rows arrive: writing
    into a file first stretched to its full size (a sparse file) was 2-3 times slower here."""
    dtype = np.dtype(dtype)
    with path.open("wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)


def _row_range(f: BinaryIO, path: Path, start: int, count: int) -> tuple[tuple[int, ...], np.dtype]:
    """Seek an open .npy file to row `start`, checking that rows [start, start + count) exist."""
    shape, fortran, dtype = _read_header(f)
    if fortran:
        raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
    if start < 0 or count < 0 or start + count > shape[0]:
        raise ValueError(f"{path}: rows {start}..{start + count} outside its {shape[0]} rows")
    f.seek(f.tell() + start * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
    return shape, dtype


def write_npy_rows(path: Path, start: int, rows: np.ndarray) -> None:
    """Write `rows` (n, *shape[1:]) at rows [start, start + n) of an .npy file made by `create_npy`."""
    with path.open("r+b") as f:
        shape, dtype = _row_range(f, path, start, len(rows))
        if rows.shape[1:] != shape[1:]:
            raise ValueError(f"{path}: rows of shape {rows.shape[1:]}, expected {shape[1:]}")
        f.write(memoryview(np.ascontiguousarray(rows, dtype=dtype)).cast("B"))  # type: ignore[arg-type]  # no copy through bytes
