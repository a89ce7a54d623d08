"""Safe extraction of a zip archive (the official ICBHI_final_database.zip, or a user's copy).

Everything that can be checked is checked before the first byte is written: that the file is
a zip, that no entry could land outside the output folder (absolute paths, drive letters,
`..`, symbolic links: "zip-slip"), and the CRC of every member. Extraction then goes to a
temporary folder that replaces the output folder only when complete.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from respiro.core.errors import ArchiveError
from respiro.core.outputs import atomic_dir

_DRIVE = re.compile(r"^[A-Za-z]:")


def _entry_parts(zip_path: Path, info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path components of an entry, or ArchiveError if it could escape the output folder."""
    name = info.filename
    # Backslashes count as separators: zips made on Windows sometimes use them.
    parts = tuple(p for p in re.split(r"[\\/]", name) if p not in ("", "."))
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ArchiveError(f"{zip_path}: entry {name!r} has an absolute path; refusing to extract anything")
    if ".." in parts:
        raise ArchiveError(
            f"{zip_path}: entry {name!r} points outside the archive's folder (..); refusing to extract anything"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"{zip_path}: entry {name!r} is a symbolic link; refusing to extract anything")
    return parts


def _common_top(members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> str | None:
    """The single folder every file sits in (`ICBHI_final_database/`), or None."""
    tops = {parts[0] for _, parts in members}
    if len(tops) == 1 and all(len(parts) > 1 for _, parts in members):
        return tops.pop()
    return None


def extract_zip(zip_path: Path, out_dir: Path) -> list[Path]:
    """Extract `zip_path` into `out_dir` (replaced as a whole); return the files written.

    A single top folder in the archive is flattened away, so `out_dir` holds its files
    directly. Raises ArchiveError, before writing anything, for a file that is not a zip,
    an unsafe entry (absolute path, drive letter, `..`, symbolic link) or a member whose
    data fails its CRC check.
    """
    zip_path, out_dir = Path(zip_path), Path(out_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{zip_path}: not a valid zip archive ({err}); download or copy it again") from None
    with archive:
        # Every entry is checked, folders too: an unsafe name means a hostile or broken archive.
        entries = [(info, _entry_parts(zip_path, info)) for info in archive.infolist()]
        members = [(info, parts) for info, parts in entries if parts and not info.is_dir()]
        if not members:
            raise ArchiveError(f"{zip_path}: the archive holds no files")
        try:
            corrupt = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
            raise ArchiveError(f"{zip_path}: damaged archive ({err}); download or copy it again") from None
        if corrupt is not None:
            raise ArchiveError(
                f"{zip_path}: member {corrupt!r} fails its CRC check (damaged archive); download or copy it again"
            )
        strip = 1 if _common_top(members) else 0
        written: list[Path] = []
        with atomic_dir(out_dir) as tmp:
            for info, parts in members:
                rel = Path(*parts[strip:])
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                written.append(out_dir / rel)
    return written
