"""Stage resample: every raw recording -> mono float32 at `resample.rate` Hz.

data/raw (the database's folder, or the local folder it names) -> data/resampled (samples.f32 + recordings.csv),
data/reports/resample.json (what was skipped and why).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("resample", __doc__)  # --help answers before the heavy imports below

from functools import partial
from pathlib import Path

from tqdm import tqdm

from respiro.audio.resample import read_resampled
from respiro.audio.store import AudioStoreWriter
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir
from respiro.core.pool import ordered_map, worker_count
from respiro.data.databases import database_of
from respiro.data.raw_folder import raw_root

RAW, OUT, REPORT = Path("data/raw"), Path("data/resampled"), Path("data/reports/resample.json")


def main() -> None:
    timer = StageTimer("resample")
    params = load_params()
    raw = raw_root(RAW)
    database = database_of(params)
    catalog = database.build_catalog(raw)
    report = SkipReport("resample")
    for file, reason in catalog.skipped + catalog.unreadable:
        report.skip(file, reason)
    report.note("split_file_names_unknown_recordings", len(catalog.split_unknown))
    workers = worker_count(params.audio.workers)
    # Read and resampled in worker processes, written here in catalog order.
    recordings = ordered_map(
        partial(read_resampled, target_rate=params.resample.rate, method=params.resample.method),
        [e.wav for e in catalog.entries],
        workers,
    )
    seconds = 0.0
    with atomic_dir(OUT) as tmp, AudioStoreWriter(tmp, params.resample.rate) as store:
        for entry, recording in tqdm(
            zip(catalog.entries, recordings), total=len(catalog.entries), desc="resample", unit="rec", leave=False
        ):
            if recording.problem:
                report.skip(str(entry.wav.relative_to(raw)), recording.problem)
                continue
            seconds += recording.seconds
            store.append(database.recording_row(entry, raw, recording.source_rate), recording.samples)
        if not store.rows:
            raise StageError(f"no usable recordings in {raw} ({len(report)} skipped, see {REPORT})")
    report.write(REPORT)
    timer.done(
        f"{len(store.rows)} recordings, {seconds / 60:.1f} min of audio -> {params.resample.rate} Hz "
        f"({seconds / max(timer.seconds, 1e-9):.0f}x real time, {workers} workers), {len(report)} skipped"
    )


if __name__ == "__main__":
    run_stage("resample", main, __doc__)
