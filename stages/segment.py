"""Stage segment: recordings -> labelled respiratory cycles, as annotated (unpadded), each
scaled by its recording's normalization gain.

data/resampled + data/normalized (the gains) + the annotations in data/raw (or the local
folder it names) -> data/cycles (samples.npy: every cycle's
float32 samples back to back, offsets.npy: their boundaries, cycles.json: rate and counts,
manifest.csv: one row per cycle), data/reports/segment.json (clipped and skipped cycles).
The stft stage fits each cycle to `segment.duration`.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("segment", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

import numpy as np
from tqdm import tqdm

from respiro.audio.arrays import create_npy
from respiro.audio.normalize import read_gains
from respiro.audio.segment import SAMPLES, CycleBatch, cycle_span, write_cycle_batch, write_cycles_info
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import CLASS_NAMES, load_params
from respiro.core.errors import StageError
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir, write_csv
from respiro.core.pool import ordered_map, worker_count
from respiro.data.catalog import cycle_row
from respiro.data.icbhi import read_annotations
from respiro.data.raw_folder import raw_root

RAW, IN, GAINS, OUT = Path("data/raw"), Path("data/resampled"), Path("data/normalized"), Path("data/cycles")
REPORT = Path("data/reports/segment.json")
BATCH = 128  # cycles per worker task: about 5 MB of ICBHI cycles at 4 kHz


def main() -> None:
    timer = StageTimer("segment")
    loaded = load_params()
    workers = worker_count(loaded.audio.workers)
    store = AudioStore(IN)
    gains = read_gains(GAINS, [rec["stem"] for rec in store.rows])
    report = SkipReport("segment")
    raw = raw_root(RAW)
    rows: list[dict[str, str]] = []
    spans = []
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
            spans.append((i, span, gains[i]))
            rows.append(cycle_row(len(rows), rec, cycle, span.end - span.start, span.clipped, rate))
    if not rows:
        raise StageError(f"no cycles found in the annotations of {len(store)} recordings")
    rate = int(store.rows[0]["rate"])
    offsets = np.cumsum([0] + [span.end - span.start for _, span, _ in spans], dtype=np.int64)
    with atomic_dir(OUT) as tmp:
        # Each worker writes its cycles straight into their place: nothing goes back through a pipe.
        create_npy(tmp / SAMPLES, (int(offsets[-1]),))
        write_cycles_info(tmp, rate, offsets)
        batches = [
            CycleBatch(IN, tmp / SAMPLES, int(offsets[first]), tuple(spans[first : first + BATCH]))
            for first in range(0, len(spans), BATCH)
        ]
        with tqdm(total=len(spans), desc="segment", unit="cycle", leave=False) as bar:
            for count in ordered_map(write_cycle_batch, batches, workers):
                bar.update(count)
        write_csv(tmp / "manifest.csv", rows)
    counts = np.bincount([int(r["label"]) for r in rows], minlength=len(CLASS_NAMES))
    report.note("cycles", len(rows))
    report.note("cycles_clipped_to_audio", clipped)
    report.note("cycles_per_class", dict(zip(CLASS_NAMES, map(int, counts))))
    report.write(REPORT)
    mix = ", ".join(f"{name} {c}" for name, c in zip(CLASS_NAMES, counts))
    timer.done(
        f"{len(rows)} cycles ({mix}) from {len(store)} recordings, {clipped} clipped, {len(report)} skipped, {workers} workers"
    )


if __name__ == "__main__":
    run_stage("segment", main, __doc__)
