"""The summary of a raw ICBHI folder written to data/reports/raw.json by the download stage.

Counts a reader checks first: is this the data I meant (source, recordings, patients,
devices, rates), what will the model learn from (cycles per class, per official split side),
and what was left out (skipped and unreadable files, split names with no recording).
On the real database these are the published figures (920 recordings, 6898 cycles, ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from respiro.core.config import CLASS_NAMES
from respiro.data.catalog import Catalog
from respiro.data.icbhi import SPLITS, read_annotations

# Cycles of recordings that the split file does not name (or with no split file at all).
UNLISTED = "unlisted"


def _counts(counter: Counter) -> dict[str, int]:
    """A Counter as a JSON object with string keys in a stable order."""
    return {str(key): counter[key] for key in sorted(counter)}


def _per_class(labels: Counter) -> dict[str, int]:
    """Cycles per class name, every class present (0 where none) for a fixed schema."""
    return {name: labels[i] for i, name in enumerate(CLASS_NAMES)}


def summarize_raw(catalog: Catalog, source: str) -> dict[str, Any]:
    """Summarise `catalog` as a JSON-ready dict; `source` is materialize_raw's description
    (`kind(detail)`, e.g. `synthetic(seed=2017)`).

    Reads every annotation file: a malformed one raises IcbhiFormatError (file:line).
    """
    sides = (*SPLITS, UNLISTED)
    cycles = Counter[int]()
    cycles_by_side = {side: Counter[int]() for side in sides}
    recordings_by_side = Counter[str]()
    sides_of_patient: dict[int, set[str]] = {}
    seconds = 0.0
    for entry in catalog.entries:
        side = entry.official_split or UNLISTED
        labels = Counter(cycle.label for cycle in read_annotations(entry.annotation))
        cycles.update(labels)
        cycles_by_side[side].update(labels)
        recordings_by_side[side] += 1
        sides_of_patient.setdefault(entry.name.patient, set()).add(side)
        seconds += entry.frames / entry.sample_rate
    return {
        "source": source,
        "synthetic": source.split("(", 1)[0] == "synthetic",
        "recordings": len(catalog.entries),
        "patients": len(sides_of_patient),
        "audio_seconds": round(seconds, 3),
        "recordings_per_device": _counts(Counter(e.name.device for e in catalog.entries)),
        "recordings_per_device_corrected": _counts(Counter(e.device_corrected for e in catalog.entries)),
        "recordings_per_sample_rate": _counts(Counter(e.sample_rate for e in catalog.entries)),
        "recordings_per_subtype": _counts(Counter(e.subtype for e in catalog.entries)),
        "device_erratum": catalog.erratum_source,
        "cycles": sum(cycles.values()),
        "cycles_per_class": _per_class(cycles),
        "recordings_per_split": {side: recordings_by_side[side] for side in sides},
        "cycles_per_split": {side: sum(cycles_by_side[side].values()) for side in sides},
        "cycles_per_split_class": {side: _per_class(cycles_by_side[side]) for side in sides},
        # The official split is patient-wise except for these (156 and 218 on the real data).
        "patients_on_both_sides": sorted(p for p, s in sides_of_patient.items() if set(SPLITS) <= s),
        "skipped_files": len(catalog.scan.skipped),
        "unreadable_files": len(catalog.unreadable),
        "split_file_names_unknown": len(catalog.split_unknown),
    }
