"""The manifest's rows: one per annotated event (the segment stage's manifest.csv, which every
later stage reads), whatever the database.

A row holds the event's recording (its `recording_columns`: patient, device, official part,
...), its times, the database's own label (`source_label`), and its class in the active
scheme (`label`, the index, and `label_name`). The recordings themselves are listed by the
database (respiro.data.databases).
"""

from __future__ import annotations

from respiro.core.schemes import ClassScheme
from respiro.data.databases.base import Database, Event


def cycle_row(
    index: int,
    recording: dict[str, str],
    event: Event,
    samples: int,
    clipped: bool,
    rate: int,
    database: Database,
    scheme: ClassScheme,
    label: int,
) -> dict[str, str]:
    """Event `index`'s manifest row: its `recording` row's carried columns, the annotation's
    times and labels, the `samples` it has at `rate` after clipping to the audio (`clipped`),
    and its class `label` in `scheme`."""
    row: dict[str, object] = {
        "index": index,
        "recording": recording["stem"],
        **{k: recording[k] for k in database.recording_columns},
        "start": f"{event.start:g}",
        "end": f"{event.end:g}",
        "seconds": f"{samples / rate:.4f}",
        "clipped": int(clipped),
        **dict(event.columns),
        "label": label,
        "label_name": scheme.classes[label],
        "source_label": event.source_label,
        "database": database.name,
    }
    return {k: str(v) for k, v in row.items()}
