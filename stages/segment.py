"""Stage segment: recordings -> the table of their labelled respiratory cycles, as annotated.

data/resampled (the recordings' lengths) + data/normalized (their gains) + the annotations
in data/raw (or the local folder it names) -> data/cycles (cycles.npz: every cycle's
recording, sample range and gain; manifest.csv: one row per cycle, its labels and
provenance), data/reports/segment.json (clipped and skipped cycles). The stft stage cuts
each cycle from the resampled store, scales it and fits it to `segment.duration`.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("segment", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

import numpy as np

from respiro.audio.normalize import read_gains
from respiro.audio.segment import CycleTable, cycle_span
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import CLASS_NAMES
from respiro.core.errors import StageError
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir, write_csv
from respiro.data.catalog import cycle_row
from respiro.data.icbhi import read_annotations
from respiro.data.raw_folder import raw_root

RAW, IN, GAINS, OUT = Path("data/raw"), Path("data/resampled"), Path("data/normalized"), Path("data/cycles")
REPORT = Path("data/reports/segment.json")


def main() -> None:
    timer = StageTimer("segment")
    store = AudioStore(IN)
    gains = read_gains(GAINS, [rec["stem"] for rec in store.rows])
    report = SkipReport("segment")
    raw = raw_root(RAW)
    rows: list[dict[str, str]] = []
    where: list[tuple[int, int, int, float]] = []  # recording, start, end, gain_db
    clipped = 0
    for i, rec in enumerate(store.rows):
        annotation = raw / rec["annotation"]
        cycles = read_annotations(annotation)  # a malformed line stops the stage, naming file:line
        if not cycles:
            report.skip(rec["annotation"], "annotation file has no cycles")
            continue
        rate, length = int(rec["rate"]), int(rec["length"])
        for cycle in cycles:
            span = cycle_span(cycle.start, cycle.end, rate, length)
            if span is None:
                report.skip(f"{rec['annotation']}:{cycle.line}", "cycle has no audio (zero length or after the end)")
                continue
            clipped += span.clipped
            where.append((i, span.start, span.end, gains[i]))
            rows.append(cycle_row(len(rows), rec, cycle, span.end - span.start, span.clipped, rate))
    if not rows:
        raise StageError(f"no cycles found in the annotations of {len(store)} recordings")
    recording, start, end, gain_db = (np.array(column) for column in zip(*where))
    with atomic_dir(OUT) as tmp:
        CycleTable(int(store.rows[0]["rate"]), recording, start, end, gain_db).write(tmp)
        write_csv(tmp / "manifest.csv", rows)
    counts = np.bincount([int(r["label"]) for r in rows], minlength=len(CLASS_NAMES))
    report.note("cycles", len(rows))
    report.note("cycles_clipped_to_audio", clipped)
    report.note("cycles_per_class", dict(zip(CLASS_NAMES, map(int, counts))))
    report.write(REPORT)
    mix = ", ".join(f"{name} {c}" for name, c in zip(CLASS_NAMES, counts))
    timer.done(f"{len(rows)} cycles ({mix}) from {len(store)} recordings, {clipped} clipped, {len(report)} skipped")


if __name__ == "__main__":
    run_stage("segment", main, __doc__)
