"""Stage segment: recordings -> the table of their labelled events (respiratory cycles), as annotated.

data/resampled (the recordings' lengths) + data/normalized (their gains) + the annotations
in data/raw (or the local folder it names), read by `data.database`'s module -> data/cycles
(cycles.npz: every event's recording, sample range and gain; manifest.csv: one row per event,
its database's label, its class in `classes.scheme` and its provenance),
data/reports/segment.json (clipped and skipped events, recordings left out of event tasks,
such as SPRSound's Poor Quality ones). The stft stage cuts each event from the resampled
store, scales it and fits it to `segment.duration`.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("segment", __doc__)  # --help answers before the heavy imports below

from collections import Counter
from pathlib import Path

import numpy as np

from respiro.audio.normalize import read_gains
from respiro.audio.segment import CycleTable, cycle_span
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir, write_csv
from respiro.data.catalog import Catalog
from respiro.data.databases import database_of
from respiro.data.raw_folder import raw_root

RAW, IN, GAINS, OUT = Path("data/raw"), Path("data/resampled"), Path("data/normalized"), Path("data/cycles")
REPORT = Path("data/reports/segment.json")


def main() -> None:
    timer = StageTimer("segment")
    params = load_params()
    database, scheme = database_of(params), params.classes.class_scheme()
    catalog = Catalog(database, scheme)
    store = AudioStore(IN)
    gains = read_gains(GAINS, [rec["stem"] for rec in store.rows])
    report = SkipReport("segment")
    raw = raw_root(RAW)
    rows: list[dict[str, str]] = []
    where: list[tuple[int, int, int, float]] = []  # recording, start, end, gain_db
    clipped = merged = 0
    left_out = Counter[str]()  # recordings left out of event tasks, by reason
    outside_scheme = 0
    for i, rec in enumerate(store.rows):
        annotation = database.read_annotation(database.annotation_ref(raw, rec))  # malformed: one line, file and entry
        merged += annotation.merged
        if annotation.excluded:
            left_out[annotation.excluded] += 1
            report.skip(rec["annotation"], f"left out of event tasks: {annotation.excluded}")
            continue
        if not annotation.events:
            report.skip(rec["annotation"], "annotation file has no cycles")
            continue
        rate, length = int(rec["rate"]), int(rec["length"])
        for event in annotation.events:
            label = database.class_of(scheme, event.source_label)
            if label is None:
                outside_scheme += 1
                continue
            span = cycle_span(event.start, event.end, rate, length)
            if span is None:
                report.skip(f"{rec['annotation']}{event.entry}", "cycle has no audio (zero length or after the end)")
                continue
            clipped += span.clipped
            where.append((i, span.start, span.end, gains[i]))
            rows.append(catalog.row(len(rows), rec, event, span.end - span.start, span.clipped, label))
    if not rows:
        raise StageError(f"no cycles found in the annotations of {len(store)} recordings")
    recording, start, end, gain_db = (np.array(column) for column in zip(*where))
    with atomic_dir(OUT) as tmp:
        CycleTable(int(store.rows[0]["rate"]), recording, start, end, gain_db).write(tmp)
        write_csv(tmp / "manifest.csv", rows)
    counts = np.bincount([int(r["label"]) for r in rows], minlength=len(scheme.classes))
    report.note("database", database.name)
    report.note("scheme", scheme.name)
    report.note("cycles", len(rows))
    report.note("cycles_clipped_to_audio", clipped)
    report.note("cycles_per_class", dict(zip(scheme.classes, map(int, counts))))
    report.note(
        "cycles_per_official_split_and_source_label",
        {
            side: dict(sorted(Counter(r["source_label"] for r in rows if r["official_split"] == side).items()))
            for side in sorted({r["official_split"] for r in rows})
        },
    )
    report.note("recordings_left_out_of_event_tasks", dict(sorted(left_out.items())))
    report.note("overlapping_same_type_events_merged", merged)
    report.note("events_outside_the_scheme", outside_scheme)
    report.write(REPORT)
    mix = ", ".join(f"{name} {c}" for name, c in zip(scheme.classes, counts))
    excluded = sum(left_out.values())
    timer.done(
        f"{len(rows)} cycles ({mix}) from {len(store)} recordings, {clipped} clipped, {len(report)} skipped"
        + (f", {excluded} recordings left out of event tasks ({', '.join(left_out)})" if excluded else "")
    )


if __name__ == "__main__":
    run_stage("segment", main, __doc__)
