"""Writing stage outputs so that nothing half-written ever looks complete.

Every stage builds its outputs under a temporary name beside the final path and renames them
into place only when the work is done (a rename within one folder is atomic on POSIX). A
stage killed midway leaves at most a `.tmp-` folder or file, which the next run removes.

Also here: the skip report each stage keeps (what it left out and why, never silently) and
the one-line summary each stage prints.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from respiro.core.errors import OutputPathError

TMP_MARK = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _clear_stale(path: Path, *, folders: bool) -> None:
    """Remove temporaries left beside `path` by an earlier, killed run: only names this module
    makes (`.NAME.tmp-XXXX`), and folders only where the output itself is a folder."""
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}{TMP_MARK}*"):
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
            elif folders and stale.is_dir():
                shutil.rmtree(stale)


# Below this much free space, a write that failed is taken for a full disk: some writers
# (libsndfile's "System error.") do not pass ENOSPC on.
NEARLY_FULL_BYTES = 1 << 20


def _full_disk_error(err: BaseException, path: Path) -> OSError | None:
    """ENOSPC naming the output `path` for a write of it that failed because its disk is full."""
    full = isinstance(err, OSError) and err.errno == errno.ENOSPC
    if not full and isinstance(err, Exception):
        try:
            full = shutil.disk_usage(path.parent).free < NEARLY_FULL_BYTES
        except OSError:
            return None
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) if full else None


def check_output_file(path: Path | str, suffixes: tuple[str, ...] = (), inputs: Iterable[Path | str] = ()) -> Path:
    """`path` as a file a command may write, or OutputPathError saying why not.

    Refused: a path naming a folder (the current one included) or anything else that is not a
    regular file, a name without one of `suffixes` (so `--out recording.wav` is caught), and
    any of the command's `inputs`. An existing regular file of the expected kind is
    overwritten, as `cp` or `>` would.
    """
    path = Path(path)
    if path.exists() and (path.is_dir() or not path.is_file()):
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise OutputPathError(f"{path} is {kind}; give the path of a file to write (nothing was changed)")
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{path}: the output must end in {' or '.join(suffixes)} (nothing was changed)")
    if path.exists():
        for source in inputs:
            if Path(source).exists() and os.path.samefile(source, path):
                raise OutputPathError(f"{path} is one of the inputs; give another output path (nothing was changed)")
    return path


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `path` when the block succeeds.

    Only for the pipeline's own output folders (paths fixed in code and declared as DVC
    outputs, which DVC itself deletes before a stage runs): the old folder is removed. On an
    exception the temporary folder is removed and `path` is left as it was. The folder gets
    the permissions the umask gives (mkdtemp's are private).
    """
    path = Path(path)
    if path.resolve() in (Path.cwd(), *Path.cwd().parents):
        raise OutputPathError(f"{path} is the current folder or above it; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path, folders=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent))
    try:
        yield tmp
    except BaseException as err:
        full = _full_disk_error(err, path)
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None:
            raise full from err
        raise
    os.chmod(tmp, 0o777 & ~_umask())
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: Path | str, suffixes: tuple[str, ...] = (), inputs: Iterable[Path | str] = ()) -> Iterator[Path]:
    """Yield a temporary file beside `path` that is renamed onto it when the block succeeds.

    `path` is checked first (check_output_file): a folder, a non-regular file, an input or a
    name without one of `suffixes` is refused before any work. A rename replaces at most one
    regular file; nothing is ever removed recursively. The file gets the permissions the
    umask gives (mkstemp's are private).
    """
    path = check_output_file(path, suffixes, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path, folders=False)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        check_output_file(path, suffixes, inputs)  # nothing became a folder meanwhile
    except BaseException as err:
        full = _full_disk_error(err, path)
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from err
        raise
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_json(path: Path | str, obj: Any) -> None:
    """JSON as every stage writes it: sorted keys, fixed indentation, trailing newline, so
    the same content always gives the same bytes (and the same md5 in dvc.lock)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: Path | str, rows: list[dict[str, str]], fieldnames: list[str] | None = None) -> None:
    """Write dict rows as CSV, atomically, with LF line endings whatever the platform."""
    fieldnames = fieldnames or (list(rows[0]) if rows else [])
    with atomic_file(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path | str) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


class SkipReport:
    """What a stage left out, file by file, with the reason; written to the report file.

    A stage adds one entry per skipped item and writes the report with its outputs, so the
    counts are kept with the pipeline (and diffed by `dvc metrics diff` / git).
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.entries: list[dict[str, str]] = []
        self.notes: dict[str, Any] = {}

    def skip(self, file: str, reason: str) -> None:
        self.entries.append({"file": str(file), "reason": reason})

    def note(self, key: str, value: Any) -> None:
        """A count or fact worth keeping that is not a skip (e.g. cycles clipped)."""
        self.notes[key] = value

    def __len__(self) -> int:
        return len(self.entries)

    def as_dict(self) -> dict[str, Any]:
        by_reason = Counter(e["reason"] for e in self.entries)
        return {
            "stage": self.stage,
            "skipped": len(self.entries),
            "skipped_by_reason": dict(sorted(by_reason.items())),
            "skipped_files": self.entries,
            **self.notes,
        }

    def write(self, path: Path | str) -> None:
        write_json(path, self.as_dict())
        for entry in self.entries[:10]:
            print(f"{self.stage}: skipped {entry['file']}: {entry['reason']}", file=sys.stderr)
        if len(self.entries) > 10:
            print(f"{self.stage}: ... and {len(self.entries) - 10} more, see {path}", file=sys.stderr)


class StageTimer:
    """Measures a stage and prints its one summary line: `stage: what it did (N s)`."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def done(self, summary: str) -> None:
        print(f"{self.stage}: {summary} in {self.seconds:.1f} s", flush=True)
