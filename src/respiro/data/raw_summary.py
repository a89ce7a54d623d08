"""The summary of a raw folder written to data/reports/raw.json by the download stage.

Counts a reader checks first: is this the data I meant (source, recordings, patients,
devices, rates), what will the model learn from (events per label of the database, per
official part), and what was left out (skipped and unreadable files, split names with no
recording, recordings whose record is left out of event tasks).
On the real ICBHI database these are the published figures (920 recordings, 6898 cycles, ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from respiro.data.databases.base import Catalog, Database

# Events of recordings that no official part names (or with no split file at all).
UNLISTED = "unlisted"


def _counts(counter: Counter) -> dict[str, int]:
    """A Counter as a JSON object with string keys in a stable order."""
    return {str(key): counter[key] for key in sorted(counter)}


def summarize_raw(catalog: Catalog, source: str, database: Database) -> dict[str, Any]:
    """Summarise `catalog` of `database` as a JSON-ready dict; `source` is materialize_raw's
    description (`kind(detail)`, e.g. `synthetic(seed=2017)`).

    Reads every annotation file: a malformed one raises a UserError (file and entry).
    `cycles_per_class` counts the database's own labels (ICBHI's four; SPRSound's seven).
    """
    sides = (*database.splits, UNLISTED)
    labels = database.labels
    cycles = Counter[str]()
    cycles_by_side = {side: Counter[str]() for side in sides}
    recordings_by_side = Counter[str]()
    sides_of_patient: dict[str, set[str]] = {}
    excluded = Counter[str]()
    seconds = 0.0
    for entry in catalog.entries:
        side = entry.official_split or UNLISTED
        annotation = database.read_annotation(entry.annotation)
        if annotation.excluded:
            excluded[annotation.excluded] += 1
        found = Counter(event.source_label for event in annotation.events)
        cycles.update(found)
        cycles_by_side[side].update(found)
        recordings_by_side[side] += 1
        sides_of_patient.setdefault(entry.patient, set()).add(side)
        seconds += entry.frames / entry.sample_rate
    test_sides = {s for s in database.splits if s != "train"}
    return {
        "database": database.name,
        "source": source,
        "synthetic": source.split("(", 1)[0] == "synthetic",
        "recordings": len(catalog.entries),
        "patients": len(sides_of_patient),
        "audio_seconds": round(seconds, 3),
        "recordings_per_device": _counts(Counter(e.device for e in catalog.entries)),
        "recordings_per_device_corrected": _counts(Counter(e.device_corrected for e in catalog.entries)),
        "recordings_per_sample_rate": _counts(Counter(e.sample_rate for e in catalog.entries)),
        "recordings_per_subtype": _counts(Counter(e.subtype for e in catalog.entries)),
        "device_erratum": catalog.erratum_source,
        "cycles": sum(cycles.values()),
        "cycles_per_class": {name: cycles[name] for name in labels},
        "recordings_per_split": {side: recordings_by_side[side] for side in sides},
        "cycles_per_split": {side: sum(cycles_by_side[side].values()) for side in sides},
        "cycles_per_split_class": {side: {name: cycles_by_side[side][name] for name in labels} for side in sides},
        # Patient-wise parts except for these (ICBHI: 156 and 218 on the real data; SPRSound:
        # every test_intra patient, by design).
        "patients_on_both_sides": sorted(p for p, s in sides_of_patient.items() if "train" in s and s & test_sides),
        "recordings_left_out_of_event_tasks": _counts(excluded),
        "skipped_files": len(catalog.skipped),
        "unreadable_files": len(catalog.unreadable),
        "split_file_names_unknown": len(catalog.split_unknown),
    }
