"""SPRSound (the SJTU paediatric respiratory sound database, IEEE BioCAS 2022) as a `Database`.

The 2022 release's layout: `train2022_wav/` and `train2022_json/` (the train part),
`test2022_wav/` with `test2022_json/inter_test_json/` (test_inter: patients not in train) and
`test2022_json/intra_test_json/` (test_intra: other recordings of train patients). One WAV and
one JSON per recording, named `patient_age_gender_location_number` (location p1-p4), e.g.
`40890405_3.3_0_p3_3655`. The JSON holds a record label (Normal, CAS, DAS, CAS & DAS, Poor
Quality) and events with start and end in milliseconds and one of seven types.

Quirks of the real files, each met here (and tested by name in tests/test_sprsound.py):
- the record label's key is `record_annotation` in the files, `recording_annotation` in the
  repository's README example: either is read;
- start and end are strings of digits in the files, numbers in the README: both are read;
- events are often out of time order: they are sorted by start;
- the maintainers found overlapping events of one type (198, fixed in later releases): an
  event overlapping an earlier one of the same type is merged into it, and counted;
- Poor Quality recordings have no usable events: they are left out of event tasks, counted.
Anything else malformed stops the stage with one line naming the file and the entry.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from respiro.core.config import SyntheticParams
from respiro.core.errors import DatabaseFormatError, MissingInputError
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

# Its seven event types, as its JSON files spell them.
TYPES: tuple[str, ...] = (
    "Normal",
    "Rhonchi",
    "Wheeze",
    "Stridor",
    "Coarse Crackle",
    "Fine Crackle",
    "Wheeze+Crackle",
)
# Onto the paper's four classes, for cross-database runs.
TO_FOUR: dict[str, str | None] = {
    "Normal": "Normal",
    "Fine Crackle": "Crackle",
    "Coarse Crackle": "Crackle",
    "Wheeze": "Wheeze",
    "Rhonchi": "Wheeze",
    "Stridor": "Wheeze",
    "Wheeze+Crackle": "Both",
}

# Official part of each annotation folder (relative to the release's root) and its WAV folder.
PARTS: dict[str, tuple[str, str]] = {
    "train": ("train2022_json", "train2022_wav"),
    "test_inter": ("test2022_json/inter_test_json", "test2022_wav"),
    "test_intra": ("test2022_json/intra_test_json", "test2022_wav"),
}
RECORD_LABELS = ("Normal", "CAS", "DAS", "CAS & DAS", "Poor Quality")
POOR_QUALITY = "Poor Quality"
RECORD_KEYS = ("record_annotation", "recording_annotation")  # the files' key, the README's
DEVICE = "Yunting-II"  # every recording: the Yunting model II electronic stethoscope
_NAME = re.compile(r"^(?P<patient>\d+)_(?P<age>\d+(?:\.\d+)?)_(?P<gender>[01])_(?P<location>p[1-4])_(?P<number>\d+)$")


def _milliseconds(path: Path, n: int, key: str, value: Any) -> float:
    """An event's start or end: a number or a string of digits (the real files' form), in ms."""
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    raise DatabaseFormatError(f"{path}: event {n}: {key} must be milliseconds (digits or a number >= 0); got {value!r}")


def read_events(path: Path) -> tuple[str, list[Event], int]:
    """(record label, events sorted by start with overlapping same-type events merged, how many
    were merged) of one SPRSound JSON file; DatabaseFormatError naming file and entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatabaseFormatError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise DatabaseFormatError(f"{path}: expected a JSON object with record_annotation and event_annotation")
    key = next((k for k in RECORD_KEYS if k in data), None)
    if key is None:
        raise DatabaseFormatError(f"{path}: no record_annotation (nor recording_annotation) key")
    record = data[key]
    if record not in RECORD_LABELS:
        raise DatabaseFormatError(f"{path}: {key} must be one of {', '.join(RECORD_LABELS)}; got {record!r}")
    raw_events = data.get("event_annotation")
    if not isinstance(raw_events, list):
        raise DatabaseFormatError(f"{path}: event_annotation must be a list of events; got {raw_events!r}")
    events: list[Event] = []
    for n, raw in enumerate(raw_events, start=1):
        if not isinstance(raw, dict) or not {"start", "end", "type"} <= raw.keys():
            raise DatabaseFormatError(f"{path}: event {n}: expected start, end and type; got {raw!r}")
        start = _milliseconds(path, n, "start", raw["start"])
        end = _milliseconds(path, n, "end", raw["end"])
        if end < start:
            raise DatabaseFormatError(f"{path}: event {n}: end {end:g} ms is before start {start:g} ms")
        if raw["type"] not in TYPES:
            raise DatabaseFormatError(
                f"{path}: event {n}: unknown type {raw['type']!r}; SPRSound's are {', '.join(TYPES)}"
            )
        events.append(Event(start / 1000, end / 1000, raw["type"], f" event {n}"))
    events.sort(key=lambda e: (e.start, e.end))  # the files list them out of time order
    merged: list[Event] = []
    count = 0
    for event in events:
        earlier = next((m for m in reversed(merged) if m.source_label == event.source_label), None)
        if earlier is not None and event.start < earlier.end:
            count += 1
            merged[merged.index(earlier)] = Event(
                earlier.start, max(earlier.end, event.end), earlier.source_label, earlier.entry
            )
            continue
        merged.append(event)
    return record, merged, count


def parse_name(stem: str) -> dict[str, str] | None:
    match = _NAME.match(stem)
    return None if match is None else match.groupdict()


class Sprsound(Database):
    name = "sprsound"
    labels = TYPES
    scheme_labels = {
        "four": TO_FOUR,
        "event_binary": {t: "Normal" if t == "Normal" else "Adventitious" for t in TYPES},
        "event_types": {t: t for t in TYPES},
    }
    splits = tuple(PARTS)
    sources = ("synthetic", "local")
    recording_columns = (
        "patient",
        "location",
        "age",
        "gender",
        "device",
        "device_corrected",
        "source_rate",
        "official_split",
        "record_label",
    )
    layout_hint = "the SPRSound 2022 release's folders " + ", ".join(
        sorted({f for pair in PARTS.values() for f in pair})
    )

    def _pairs(self, root: Path) -> tuple[list[tuple[str, Path, Path, dict[str, str]]], list[tuple[str, str]]]:
        """(part, wav, json, name fields) per recording, and the files skipped with why."""
        if not root.is_dir():
            raise MissingInputError(f"{root}: raw data folder does not exist")
        found: list[tuple[str, Path, Path, dict[str, str]]] = []
        skipped: list[tuple[str, str]] = []
        paired: set[Path] = set()
        for part, (json_dir, wav_dir) in PARTS.items():
            for annotation in sorted((root / json_dir).glob("*.json")):
                wav = root / wav_dir / f"{annotation.stem}.wav"
                fields = parse_name(annotation.stem)
                if fields is None:
                    skipped.append(
                        (str(annotation.relative_to(root)), "file name is not patient_age_gender_location_number")
                    )
                    continue
                if not wav.is_file():
                    skipped.append((str(annotation.relative_to(root)), "annotation without its .wav"))
                    continue
                paired.add(wav)
                found.append((part, wav, annotation, fields))
        for wav_dir in sorted({w for _, w in PARTS.values()}):
            for wav in sorted((root / wav_dir).glob("*.wav")):
                if wav not in paired:
                    raise DatabaseFormatError(
                        f"{wav}: a WAV without its JSON in "
                        f"{' or '.join(j for j, w in PARTS.values() if w == wav_dir)}: add it, or remove the WAV"
                    )
        return found, skipped

    def build_catalog(self, root: Path) -> Catalog:
        found, skipped = self._pairs(root)
        entries: list[CatalogEntry] = []
        unreadable: list[tuple[str, str]] = []
        for part, wav, annotation, fields in found:
            header = read_header(wav)
            if isinstance(header, str):
                unreadable.append((str(wav.relative_to(root)), header))
                continue
            record, _, _ = read_events(annotation)
            entries.append(
                CatalogEntry(
                    stem=wav.stem,
                    patient=fields["patient"],
                    location=fields["location"],
                    device=DEVICE,
                    device_corrected=DEVICE,
                    official_split=part,
                    wav=wav,
                    annotation=AnnotationRef(annotation),
                    sample_rate=header.sample_rate,
                    frames=header.frames,
                    channels=header.channels,
                    subtype=header.subtype,
                    extra={"age": fields["age"], "gender": fields["gender"], "record_label": record},
                )
            )
        return Catalog(entries=entries, skipped=skipped, unreadable=unreadable)

    def count_recordings(self, root: Path) -> int:
        return len(self._pairs(root)[0])

    def recording_row(self, entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
        return {
            "stem": entry.stem,
            "patient": entry.patient,
            "location": entry.location,
            "age": entry.extra["age"],
            "gender": entry.extra["gender"],
            "device": entry.device,
            "device_corrected": entry.device_corrected,
            "source_rate": source_rate,
            "subtype": entry.subtype,
            "official_split": entry.official_split,
            "record_label": entry.extra["record_label"],
            "annotation": entry.annotation.file.relative_to(raw_dir).as_posix(),
        }

    def read_annotation(self, ref: AnnotationRef) -> Annotation:
        record, events, merged = read_events(ref.file)
        if record == POOR_QUALITY:
            return Annotation([], excluded="record labelled Poor Quality", merged=merged)
        return Annotation(events, merged=merged)

    def recognises(self, file: Path) -> bool:
        """A .json object with a record label (either key) and a list of events."""
        if file.suffix.lower() != ".json" or not file.is_file():
            return False
        try:
            data = json.loads(file.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(data, dict) and any(k in data for k in RECORD_KEYS) and "event_annotation" in data

    def annotation_beside(self, audio: Path) -> AnnotationRef | None:
        found = audio.with_suffix(".json")
        return AnnotationRef(found) if self.recognises(found) else None

    def write_synthetic(self, out_dir: Path, config: SyntheticParams, progress: bool) -> None:
        from respiro.data.synthetic.sprsound_layout import write_synthetic_sprsound

        write_synthetic_sprsound(out_dir, config, progress)

    def use_local(self, local_path: str, out_dir: Path) -> None:
        """The release's folder, read in place in its own layout."""
        setting = f"data.local_path={local_path}"
        path = Path(local_path)
        if not path.is_dir():
            raise MissingInputError(f"{setting} is not a folder; point it at {self.layout_hint}")
        if not self.count_recordings(path):
            raise MissingInputError(f"{setting} holds no {self.name} recordings; it should hold {self.layout_hint}")
        write_in_place(out_dir, local_path)
