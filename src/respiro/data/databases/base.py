"""What a database is to the pipeline: one module per database, the same items from each.

A database module declares, in one `Database` subclass:
- its name (`data.database`) and its own params group (`params_schema`, the top-level group
  of params.yaml named as the database, validated by that schema);
- its labels and their mapping into each class scheme it supports (`scheme_labels`);
- how its files reach data/raw for each `data.source` it supports (`write_synthetic`,
  `download`, `use_local`);
- its recordings (`build_catalog`): audio file, patient, location, device, official split
  part, and what else it records (one `CatalogEntry` each, headers read, nothing decoded);
- each recording's row in the resampled store (`recording_row`) and the columns of it that
  every event row of the manifest carries (`recording_columns`);
- each recording's annotated events (`read_annotation`): start and end in seconds and the
  database's own label (`source_label`), or why the whole recording is left out;
- how `respiro predict` recognises its annotation of a recording (`annotation_beside`,
  `recognises`).
The stages call this interface, never a format's details. Adding a database is one module
implementing `Database` plus its line in the registry (respiro.data.databases).

Official parts are `train` and `test`, or `test_<part>` where a database publishes several
test parts (SPRSound: test_inter, test_intra); "" where a recording has none. Patients are
id strings, the database's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import soundfile as sf

from respiro.core.config import DatabaseGroup, DataParams, Source, SyntheticParams, validate_group
from respiro.core.errors import DatabaseFormatError, ParamsError
from respiro.core.schemes import ClassScheme


@dataclass(frozen=True)
class AnnotationRef:
    """Where one recording's events are: an annotation `file` of its own (ICBHI's .txt,
    SPRSound's .json), or a table of many recordings' events with the `recording`'s key in
    it (the CSV database's events.csv). `recording` is "" where the file is the recording's own."""

    file: Path
    recording: str = ""


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
    wav: Path  # the audio file (WAV, or FLAC where a database allows it)
    annotation: AnnotationRef
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
    """One database's layout, formats and settings (see the module's docstring)."""

    name: ClassVar[str]
    # Its own params group (params.yaml's group named `name`).
    params_schema: ClassVar[type[DatabaseGroup]] = DatabaseGroup
    # Its own event labels, in the order reports list them (a database whose files say which,
    # such as a user's CSV, sets them on reading its catalog, as it does `splits`).
    labels: tuple[str, ...]
    # {scheme name: {own label: class of that scheme, or None to leave such events out}}.
    scheme_labels: Mapping[str, Mapping[str, str | None]]
    # Its official parts, in the order reports list them.
    splits: tuple[str, ...]
    # Columns of `recording_row` that every event row of the manifest carries; at least
    # patient, device_corrected and official_split (training and evaluation read them).
    recording_columns: ClassVar[tuple[str, ...]]
    # The data.source values it supports.
    sources: ClassVar[tuple[Source, ...]]
    layout_hint: ClassVar[str] = ""  # what a local folder of this database holds, for messages
    # Whether one annotation file holds many recordings' events (a table), or one recording's.
    annotation_holds_many: ClassVar[bool] = False

    def __init__(
        self, params: DatabaseGroup | None = None, label_mapping: Mapping[str, str | None] | None = None
    ) -> None:
        self.params = params if params is not None else self.params_schema()
        # classes.mapping: the user's word on some labels, before this database's own mapping.
        self.label_mapping = dict(label_mapping or {})

    @classmethod
    def from_params(
        cls, raw: Mapping[str, object] | None, label_mapping: Mapping[str, str | None] | None = None
    ) -> Database:
        """The database with its params group `raw` (params.yaml's) validated. As for every
        group, a key params.yaml leaves out is an error naming it, never a value chosen
        silently (the schema's defaults serve reading files outside a run: `cls()`)."""
        raw = raw if raw is not None else {}
        missing = [key for key in cls.params_schema.model_fields if key not in raw]
        if missing:
            raise ParamsError(f"missing key {cls.name}.{missing[0]}")
        group = validate_group(cls.name, raw, cls.params_schema)
        assert isinstance(group, cls.params_schema)
        return cls(group, label_mapping)

    # --- classes -------------------------------------------------------------------------

    def check_scheme(self, scheme: ClassScheme) -> None:
        """ParamsError unless this database's labels map onto `scheme` (its own mapping, or
        classes.mapping naming every label)."""
        if scheme.name not in self.scheme_labels and not set(self.labels) <= set(self.label_mapping):
            raise ParamsError(
                f"classes.scheme: {scheme.name} has no mapping for data.database {self.name} "
                f"(it maps onto {', '.join(self.scheme_labels)}; or map each of its labels, "
                f"{', '.join(self.labels)}, with classes.mapping)"
            )

    def class_of(self, scheme: ClassScheme, source_label: str) -> int | None:
        """The class index in `scheme` of an event labelled `source_label` (classes.mapping
        first), or None where it is left out. KeyError for a scheme or label not mapped."""
        if source_label in self.label_mapping:
            name = self.label_mapping[source_label]
        else:
            name = self.scheme_labels[scheme.name][source_label]
        return None if name is None else scheme.classes.index(name)

    # --- acquisition ---------------------------------------------------------------------

    def acquire(self, data: DataParams, synthetic: SyntheticParams, out_dir: Path, progress: bool = True) -> str:
        """Fill the empty folder `out_dir` from `data.source`; returns a short description for
        the metrics, `kind(detail)`: `synthetic(seed=2017)`, `local(<data.local_path>)`."""
        source, local_path = data.source, data.local_path
        if source not in self.sources:
            raise ParamsError(
                f"data.source: {self.name} comes from {' or '.join(self.sources)}, not {source}"
                + (
                    f"; bring it with data.source: local and data.local_path (docs/{self.name}.md)"
                    if "local" in self.sources
                    else ""
                )
            )
        if source == "synthetic":
            self.write_synthetic(out_dir, synthetic, progress)
            return f"synthetic(seed={synthetic.seed})"
        if source == "local":
            self.use_local(local_path, out_dir)
            return f"local({local_path})"
        return self.download(out_dir, progress)

    def write_synthetic(self, out_dir: Path, config: SyntheticParams, progress: bool) -> None:
        """A synthetic corpus of `config` in this database's layout (imported where used: the
        generator pulls in scipy, which reading a database never needs)."""
        raise NotImplementedError(f"{self.name} has no synthetic corpus")

    def use_local(self, local_path: str, out_dir: Path) -> None:
        """Take the user's copy at `local_path` (data.local_path): extracted into `out_dir`, or
        read in place with `out_dir` naming it (respiro.data.raw_folder)."""
        raise NotImplementedError(f"{self.name} cannot be read from a local folder")

    def download(self, out_dir: Path, progress: bool) -> str:
        """Download the official release into `out_dir`; returns `download(<where from>)`."""
        raise NotImplementedError(f"{self.name} has no download")

    # --- the raw folder ------------------------------------------------------------------

    @abstractmethod
    def build_catalog(self, root: Path) -> Catalog:
        """Every recording under `root` (headers read, no audio decoded), and what was skipped."""

    @abstractmethod
    def count_recordings(self, root: Path) -> int:
        """How many recordings of this database `root` holds (file names only: fast)."""

    @abstractmethod
    def recording_row(self, entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
        """`entry`'s row in the resampled store; its `annotation` column is relative to
        `raw_dir` (annotation_ref reads it back), and `stem` names the recording."""

    def annotation_ref(self, raw_dir: Path, row: Mapping[str, str]) -> AnnotationRef:
        """Where the events of a resampled store's `row` are (the inverse of recording_row)."""
        return AnnotationRef(raw_dir / row["annotation"])

    @abstractmethod
    def read_annotation(self, ref: AnnotationRef) -> Annotation:
        """The events of one recording; a malformed annotation raises a UserError naming the
        file and the entry."""

    # --- predict -------------------------------------------------------------------------

    @abstractmethod
    def recognises(self, file: Path) -> bool:
        """Whether `file` is an annotation file of this database (by its content, not only
        its suffix: ICBHI and other databases both write .txt)."""

    @abstractmethod
    def annotation_beside(self, audio: Path) -> AnnotationRef | None:
        """The annotation of the recording `audio` found where this database keeps it (its
        folder), or None."""

    def annotation_in(self, file: Path, audio: Path) -> AnnotationRef:
        """The events of `audio` in the annotation `file` the user named (`recognises(file)`)."""
        return AnnotationRef(file)


def not_an_annotation(file: Path, known: str) -> DatabaseFormatError:
    return DatabaseFormatError(f"{file}: not an annotation file of a known database ({known})")
