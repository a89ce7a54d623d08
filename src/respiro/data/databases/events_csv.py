"""Your own recordings as a `Database` (`data.database: csv`): a folder of audio files in any
sub-folders, under any names (WAV or FLAC, any rate and channel count), plus one CSV of
annotated events in it (`csv.events_file`, events.csv). docs/own-data.md walks through it.

One row per event: `recording` (the audio file's path relative to the folder), `start` and
`end` (seconds), `label` (your own word for the event), `patient` (any id). Optional:
`split` (`train`, `test` or `test_<part>`: the official part; without the column the
patient-wise split applies), `device`, `location`. A label that is a class of
`classes.scheme` needs no mapping; `classes.mapping` maps the others (or leaves them out).

What the rows must hold, each refused with one line naming the file, the row (as a
spreadsheet numbers it: the header is row 1) and the column: the required columns; numbers
of seconds with end after start; a recording that is in the folder; an event that ends within
the recording (10 ms of slack for rounded times); no two events of one recording that
overlap (refused, not merged: which label would the overlap have?); one patient, part,
device and location per recording; no patient in train and in a test part (that leaks); and
a label the scheme knows. Audio files in the folder that no row names are counted in the
stage reports, not refused.
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field

from respiro.core.config import DatabaseGroup, SyntheticParams
from respiro.core.errors import DatabaseFormatError, MissingInputError
from respiro.core.outputs import write_csv
from respiro.core.schemes import ClassScheme
from respiro.data.databases.base import (
    Annotation,
    AnnotationRef,
    Catalog,
    CatalogEntry,
    Database,
    Event,
    read_header,
)
from respiro.data.raw_folder import write_in_place

REQUIRED = ("recording", "start", "end", "label", "patient")
OPTIONAL = ("split", "device", "location")
AUDIO_SUFFIXES = (".wav", ".flac")
END_SLACK = 0.01  # seconds an event may run past the audio (times rounded to 10 ms)


class CsvParams(DatabaseGroup):
    """params.yaml's `csv:` group (its comments say what each key does)."""

    events_file: Annotated[str, Field(min_length=1)] = "events.csv"


@dataclass(frozen=True)
class EventRow:
    row: int  # as a spreadsheet numbers it: the header is row 1
    recording: str  # the key: the path relative to the folder, without its suffix
    file: str  # the path as the CSV gives it
    start: float
    end: float
    label: str
    patient: str
    split: str
    device: str
    location: str


@dataclass(frozen=True)
class EventsTable:
    path: Path
    rows: tuple[EventRow, ...]

    def of(self, recording: str) -> list[EventRow]:
        return [r for r in self.rows if r.recording == recording]

    @property
    def recordings(self) -> dict[str, EventRow]:
        """Each recording's first row, in the order the CSV names them."""
        first: dict[str, EventRow] = {}
        for r in self.rows:
            first.setdefault(r.recording, r)
        return first

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.label for r in self.rows))

    @property
    def splits(self) -> tuple[str, ...]:
        """train, test, then the other test parts the rows name, sorted."""
        named = {r.split for r in self.rows if r.split}
        return ("train", "test", *sorted(named - {"train", "test"}))


def _seconds(path: Path, n: int, column: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise DatabaseFormatError(f"{path} row {n}, column {column}: expected seconds >= 0; got {value!r}")
    return seconds


def _row(path: Path, n: int, raw: Mapping[str, str | None]) -> EventRow:
    values = {k: (raw.get(k) or "").strip() for k in (*REQUIRED, *OPTIONAL)}
    for column in ("recording", "label", "patient"):
        if not values[column]:
            raise DatabaseFormatError(f"{path} row {n}, column {column}: empty")
    file = values["recording"].replace("\\", "/")
    parts = Path(file).parts
    if Path(file).is_absolute() or ".." in parts:
        raise DatabaseFormatError(
            f"{path} row {n}, column recording: {file!r} must be a path inside {path.parent} (relative, no ..)"
        )
    if Path(file).suffix.lower() not in AUDIO_SUFFIXES:
        raise DatabaseFormatError(
            f"{path} row {n}, column recording: {file!r} is not a {' or '.join(AUDIO_SUFFIXES)} file"
        )
    start = _seconds(path, n, "start", values["start"])
    end = _seconds(path, n, "end", values["end"])
    if end <= start:
        raise DatabaseFormatError(f"{path} row {n}, column end: {end:g} s is not after start {start:g} s")
    split = values["split"]
    if split and not (split in ("train", "test") or (split.startswith("test_") and len(split) > 5)):
        raise DatabaseFormatError(f"{path} row {n}, column split: expected train, test or test_<part>; got {split!r}")
    return EventRow(
        n,
        Path(file).with_suffix("").as_posix(),
        file,
        start,
        end,
        values["label"],
        values["patient"],
        split,
        values["device"],
        values["location"],
    )


def _check_recordings(path: Path, rows: list[EventRow]) -> None:
    """One patient, part, device and location per recording; one recording per key; no
    overlapping events; no patient in train and in a test part."""
    first: dict[str, EventRow] = {}
    for r in rows:
        seen = first.setdefault(r.recording, r)
        if seen.file != r.file:
            raise DatabaseFormatError(
                f"{path} row {r.row}, column recording: {r.file} and {seen.file} (row {seen.row}) differ only in "
                "their suffix; rename one"
            )
        for column in ("patient", "split", "device", "location"):
            if getattr(r, column) != getattr(seen, column):
                raise DatabaseFormatError(
                    f"{path} row {r.row}, column {column}: {getattr(r, column)!r}, but row {seen.row} gives "
                    f"{r.file} {getattr(seen, column)!r}; a recording has one {column}"
                )
    by_recording: dict[str, list[EventRow]] = {}
    for r in rows:
        by_recording.setdefault(r.recording, []).append(r)
    for events in by_recording.values():
        ordered = sorted(events, key=lambda e: (e.start, e.end))
        for a, b in zip(ordered, ordered[1:]):
            if b.start < a.end:
                raise DatabaseFormatError(
                    f"{path} rows {a.row} and {b.row}, column start: events of {a.file} overlap "
                    f"({a.start:g}-{a.end:g} s and {b.start:g}-{b.end:g} s); each event is its own span: "
                    "trim or merge them"
                )
    sides: dict[str, EventRow] = {}
    for r in (first[k] for k in first if first[k].split):
        other = sides.setdefault(r.patient, r)
        if (other.split == "train") != (r.split == "train"):
            train, test = (other, r) if other.split == "train" else (r, other)
            raise DatabaseFormatError(
                f"{path} rows {train.row} and {test.row}, column split: patient {r.patient!r} is in train "
                f"({train.file}) and {test.split} ({test.file}); a patient on both sides leaks into the "
                "scores: give each patient one side"
            )


@lru_cache(maxsize=8)
def _read_table(path: Path, _mtime_ns: int, _size: int) -> EventsTable:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise DatabaseFormatError(
                    f"{path}: empty; expected a header {','.join(REQUIRED)} and one row per event"
                )
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DatabaseFormatError(
                    f"{path}: no column {missing[0]!r} in its header ({', '.join(header)}); "
                    f"required: {', '.join(REQUIRED)}"
                )
            reader.fieldnames = header
            rows = [
                _row(path, n, raw)
                for n, raw in enumerate(reader, start=2)
                if any((v or "").strip() for v in raw.values())
            ]
    except UnicodeDecodeError as err:
        raise DatabaseFormatError(f"{path}: not a UTF-8 text file ({err})") from None
    except csv.Error as err:
        raise DatabaseFormatError(f"{path}: not a CSV file ({err})") from None
    if not rows:
        raise DatabaseFormatError(f"{path}: no events (a header and no rows)")
    _check_recordings(path, rows)
    return EventsTable(path, tuple(rows))


def read_events_table(path: Path) -> EventsTable:
    """The checked events of `path` (read once per version of the file)."""
    if not path.is_file():
        raise MissingInputError(f"{path}: no such events file")
    stat = path.stat()
    return _read_table(path.resolve(), stat.st_mtime_ns, stat.st_size)


class EventsCsv(Database):
    name = "csv"
    params_schema = CsvParams
    params: CsvParams
    labels: tuple[str, ...] = ()  # the CSV's own, known once it is read (build_catalog)
    scheme_labels: Mapping[str, Mapping[str, str | None]] = {}  # per label, by class_of
    splits: tuple[str, ...] = ("train", "test")  # and the CSV's own test parts, once it is read
    recording_columns = ("patient", "location", "device", "device_corrected", "source_rate", "official_split")
    sources = ("synthetic", "local")
    layout_hint = "a folder of audio files (any sub-folders) and events.csv: recording,start,end,label,patient"
    annotation_holds_many = True
    read: EventsTable | None = None  # the table last read, to name a label's row in errors

    # --- classes -------------------------------------------------------------------------

    def check_scheme(self, scheme: ClassScheme) -> None:
        """Every scheme: labels equal to its classes need no mapping (classes.mapping, checked
        against the scheme with the params, maps the others)."""

    def class_of(self, scheme: ClassScheme, source_label: str) -> int | None:
        if source_label in self.label_mapping:
            name = self.label_mapping[source_label]
            return None if name is None else scheme.classes.index(name)
        if source_label in scheme.classes:
            return scheme.classes.index(source_label)
        row = next((r for r in self.read.rows if r.label == source_label), None) if self.read else None
        where = f"{self.read.path} row {row.row}, column label: " if self.read and row else ""
        raise DatabaseFormatError(
            f"{where}label {source_label!r} is not a class of classes.scheme {scheme.name} "
            f"({', '.join(scheme.classes)}) and classes.mapping does not map it (docs/own-data.md)"
        )

    # --- the raw folder ------------------------------------------------------------------

    def _table(self, root: Path) -> EventsTable:
        return read_events_table(root / self.params.events_file)

    def build_catalog(self, root: Path) -> Catalog:
        table = self.read = self._table(root)
        self.labels, self.splits = table.labels, table.splits
        entries: list[CatalogEntry] = []
        unreadable: list[tuple[str, str]] = []
        for key, first in sorted(table.recordings.items()):
            audio = root / first.file
            if not audio.is_file():
                raise DatabaseFormatError(
                    f"{table.path} row {first.row}, column recording: {first.file} is not in {root}"
                )
            header = read_header(audio)
            if isinstance(header, str):
                unreadable.append((first.file, header))
                continue
            seconds = header.frames / header.sample_rate
            late = next((r for r in table.of(key) if r.end > seconds + END_SLACK), None)
            if late is not None:
                raise DatabaseFormatError(
                    f"{table.path} row {late.row}, column end: {late.end:g} s is past the end of {first.file} "
                    f"({seconds:.3f} s)"
                )
            device = first.device
            entries.append(
                CatalogEntry(
                    stem=key,
                    patient=first.patient,
                    location=first.location,
                    device=device,
                    device_corrected=device,
                    official_split=first.split,
                    wav=audio,
                    annotation=AnnotationRef(root / self.params.events_file, key),
                    sample_rate=header.sample_rate,
                    frames=header.frames,
                    channels=header.channels,
                    subtype=header.subtype,
                )
            )
        named = {r.file for r in table.rows}
        unnamed = [
            (rel, f"an audio file {self.params.events_file} never names")
            for rel in (p.relative_to(root).as_posix() for p in sorted(root.rglob("*")))
            if Path(rel).suffix.lower() in AUDIO_SUFFIXES
            and rel not in named
            and not any(part.startswith(".") for part in Path(rel).parts)
        ]
        return Catalog(entries=entries, skipped=unnamed, unreadable=unreadable)

    def count_recordings(self, root: Path) -> int:
        return len(self._table(root).recordings)

    def recording_row(self, entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
        return {
            "stem": entry.stem,
            "patient": entry.patient,
            "location": entry.location,
            "device": entry.device,
            "device_corrected": entry.device_corrected,
            "source_rate": source_rate,
            "subtype": entry.subtype,
            "official_split": entry.official_split,
            "annotation": entry.annotation.file.relative_to(raw_dir).as_posix(),
        }

    def annotation_ref(self, raw_dir: Path, row: Mapping[str, str]) -> AnnotationRef:
        return AnnotationRef(raw_dir / row["annotation"], row["stem"])

    def read_annotation(self, ref: AnnotationRef) -> Annotation:
        self.read = read_events_table(ref.file)
        events = self.read.of(ref.recording)
        if not events:
            raise DatabaseFormatError(f"{ref.file}: no events of recording {ref.recording}")
        return Annotation([Event(e.start, e.end, e.label, f" row {e.row}") for e in events])

    # --- predict -------------------------------------------------------------------------

    def recognises(self, file: Path) -> bool:
        """A .csv whose header has the required columns."""
        if file.suffix.lower() != ".csv" or not file.is_file():
            return False
        try:
            with file.open(newline="", encoding="utf-8-sig") as f:
                header = {h.strip() for h in next(csv.reader(f), [])}
        except (UnicodeDecodeError, csv.Error):
            return False
        return set(REQUIRED) <= header

    def annotation_beside(self, audio: Path) -> AnnotationRef | None:
        """The nearest events file in `audio`'s folder or one above it that names it."""
        for folder in audio.resolve().parents:
            events = folder / self.params.events_file
            if self.recognises(events):
                key = audio.resolve().relative_to(folder).with_suffix("").as_posix()
                if read_events_table(events).of(key):
                    return AnnotationRef(events.resolve(), key)
        return None

    def annotation_in(self, file: Path, audio: Path) -> AnnotationRef:
        try:
            key = audio.resolve().relative_to(file.resolve().parent).with_suffix("").as_posix()
        except ValueError:
            raise DatabaseFormatError(
                f"{file}: names recordings inside {file.resolve().parent}, and {audio} is not there"
            ) from None
        return AnnotationRef(file.resolve(), key)

    # --- acquisition ---------------------------------------------------------------------

    def use_local(self, local_path: str, out_dir: Path) -> None:
        """Your folder, read in place."""
        folder = Path(local_path)
        if not folder.is_dir():
            raise MissingInputError(f"data.local_path={local_path} is not a folder; point it at {self.layout_hint}")
        if not (folder / self.params.events_file).is_file():
            raise MissingInputError(
                f"data.local_path={local_path} holds no {self.params.events_file} (csv.events_file): "
                "one row per event, recording,start,end,label,patient (docs/own-data.md)"
            )
        self._table(folder)  # a malformed CSV stops here, before any audio work
        write_in_place(out_dir, local_path)

    def write_synthetic(self, out_dir: Path, config: SyntheticParams, progress: bool) -> None:
        """The synthetic ICBHI corpus laid out as a lab's folder: `<patient>/<recording>.wav`
        and events.csv with the four classes' names as labels and the official parts."""
        from respiro.data.databases.icbhi import Icbhi

        icbhi = Icbhi()
        with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
            icbhi.write_synthetic(Path(scratch), config, progress)
            rows: list[dict[str, str]] = []
            for entry in icbhi.build_catalog(Path(scratch)).entries:
                file = f"{entry.patient}/{entry.stem}{entry.wav.suffix}"
                (out_dir / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(entry.wav, out_dir / file)
                for event in icbhi.read_annotation(entry.annotation).events:
                    rows.append(
                        {
                            "recording": file,
                            "start": repr(event.start),
                            "end": repr(event.end),
                            "label": event.source_label,
                            "patient": entry.patient,
                            "split": entry.official_split,
                            "device": entry.device_corrected,
                            "location": entry.location,
                        }
                    )
        write_csv(out_dir / self.params.events_file, rows)
