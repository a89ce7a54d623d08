"""The manifest's rows: one per annotated event (the segment stage's manifest.csv, which every
later stage reads), whatever the database.

A row holds the event's recording (its `recording_columns`: patient, device, official part,
...), its times, the database's own label (`source_label`), and its class in the active
scheme (`label`, the index, and `label_name`). The recordings themselves are listed by the
database (respiro.data.databases).
"""

from __future__ import annotations

from dataclasses import dataclass

from respiro.core.schemes import ClassScheme
from respiro.data.databases.base import Database, Event


@dataclass(frozen=True)
class Catalog:
    """The manifest rows of `database`'s events, classed in `scheme`."""

    database: Database
    scheme: ClassScheme

    def row(
        self, index: int, recording: dict[str, str], event: Event, samples: int, clipped: bool, label: int
    ) -> dict[str, str]:
        """Event `index`'s manifest row: its `recording` row's carried columns, the
        annotation's times and labels, the `samples` it has at the recording's rate after
        clipping to the audio (`clipped`), and its class `label` in the scheme."""
        row: dict[str, object] = {
            "index": index,
            "recording": recording["stem"],
            **{k: recording[k] for k in self.database.recording_columns},
            "start": f"{event.start:g}",
            "end": f"{event.end:g}",
            "seconds": f"{samples / int(recording['rate']):.4f}",
            "clipped": int(clipped),
            **dict(event.columns),
            "label": label,
            "label_name": self.scheme.classes[label],
            "source_label": event.source_label,
            "database": self.database.name,
        }
        return {k: str(v) for k, v in row.items()}
