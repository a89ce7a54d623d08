"""What a database is to the pipeline: one class per database, the same items from each.

A database knows its folder layout and file formats, and hands out
- its recordings (`build_catalog`): wav file, patient, location, device, official split part,
  and what else it records (one `CatalogEntry` each, WAV headers read, nothing decoded);
- each recording's row in the resampled store (`recording_row`) and the columns of it that
  every event row of the manifest carries (`recording_columns`);
- each recording's annotated events (`read_annotation`): start and end in seconds and the
  database's own label (`source_label`), or why the whole recording is left out.
A synthetic corpus in a database's layout (so every test runs offline) is written by
respiro.data.synthetic (`write_synthetic` in respiro.data.acquire.source picks it by name),
apart from the reader, so that the stages that only read never depend on the generator.

The stages call this interface, never a format's details; a class scheme
(respiro.core.schemes) maps the database's labels onto the classes a model learns. Adding a
database is one module implementing `Database` plus its entry in `respiro.data.databases`.

Official parts are `train` and `test`, or `test_<part>` where a database publishes several
test parts (SPRSound: test_inter, test_intra); "" where a recording has none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import soundfile as sf


@dataclass(frozen=True)
class Event:
    """One annotated event (an ICBHI respiratory cycle, a SPRSound event), in seconds from the
    start of its recording; `entry` names it within its file for messages (`:12` for line 12,
    ` event 3`); `columns` are the database's own extra manifest columns (ICBHI: the
    crackles and wheezes flags)."""

    start: float
    end: float
    source_label: str
    entry: str
    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Annotation:
    """A recording's events, or `excluded`: why it is left out of event tasks (a SPRSound
    recording labelled Poor Quality), counted in the segment stage's report."""

    events: list[Event]
    excluded: str = ""
    merged: int = 0  # overlapping events of one type merged into one (SPRSound's known errata)


@dataclass(frozen=True)
class CatalogEntry:
    """A usable recording: what every database provides, and `extra`, what only this one does
    (ICBHI: recording mode, diagnosis; SPRSound: age, gender, record label)."""

    stem: str
    patient: str  # the database's own id: ICBHI's 101, KAUH's BP1
    location: str
    device: str  # as the file name or the database says
    device_corrected: str  # after the database's errata (the same where it has none)
    official_split: str  # "train", "test", "test_<part>", or "" where unknown
    wav: Path
    annotation: Path
    sample_rate: int
    frames: int
    channels: int
    subtype: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Catalog:
    entries: list[CatalogEntry]
    skipped: list[tuple[str, str]]  # (file, reason): files found that are not usable recordings
    unreadable: list[tuple[str, str]]  # (file, reason): WAV headers soundfile cannot read
    split_unknown: list[str] = field(default_factory=list)  # split-file names with no recording
    erratum_source: str = ""  # where a device erratum came from, or ""


@dataclass(frozen=True)
class WavHeader:
    sample_rate: int
    frames: int
    channels: int
    subtype: str


def read_header(wav: Path) -> WavHeader | str:
    """A WAV file's header, or the reason it cannot be read."""
    try:
        info = sf.info(str(wav))
    except (sf.LibsndfileError, RuntimeError) as err:
        return f"not a readable WAV file: {err}"
    return WavHeader(int(info.samplerate), int(info.frames), int(info.channels), info.subtype)


class Database(ABC):
    """One database's layout and formats (see the module's docstring)."""

    name: ClassVar[str]
    # Its own event labels, in the order reports list them.
    labels: ClassVar[tuple[str, ...]]
    # Its official parts, in the order reports list them.
    splits: ClassVar[tuple[str, ...]]
    # Columns of `recording_row` that every event row of the manifest carries; at least
    # patient, device_corrected and official_split (training and evaluation read them).
    recording_columns: ClassVar[tuple[str, ...]]
    # The suffix of its annotation files (`respiro predict` reads one beside a recording).
    annotation_suffix: ClassVar[str]

    @abstractmethod
    def build_catalog(self, root: Path, erratum_file: Path | None = None) -> Catalog:
        """Every recording under `root` (headers read, no audio decoded), and what was skipped."""

    @abstractmethod
    def count_recordings(self, root: Path) -> int:
        """How many recordings of this database `root` holds (file names only: fast)."""

    @abstractmethod
    def recording_row(self, entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
        """`entry`'s row in the resampled store; its `annotation` column is relative to
        `raw_dir`, and `stem` names the recording."""

    @abstractmethod
    def read_annotation(self, path: Path) -> Annotation:
        """The events of one annotation file; a malformed one raises a UserError naming the
        file and the entry."""

    layout_hint: ClassVar[str] = ""  # what a local folder of this database holds, for messages
