"""Stage download: the raw folder of `data.database` from `data.source`, and its summary.

params data, synthetic, the database's own group -> data/raw (the database's layout: recordings, annotations, split
files; for a local folder only in_place.json naming it, as it is read in place),
data/reports/raw.json (what was loaded: recordings, patients, devices, events per label/part).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("download", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import StageTimer, atomic_dir, write_json
from respiro.data.databases import database_of
from respiro.data.raw_folder import raw_root
from respiro.data.raw_summary import summarize_raw

RAW, METRICS = Path("data/raw"), Path("data/reports/raw.json")


def main() -> None:
    timer = StageTimer("download")
    params = load_params()
    database = database_of(params)
    with atomic_dir(RAW) as tmp:
        source = database.acquire(params.data, params.synthetic, tmp)
    summary = summarize_raw(database.build_catalog(raw_root(RAW)), source, database)
    write_json(METRICS, summary)
    left_out = summary["skipped_files"] + summary["unreadable_files"]
    timer.done(
        f"{source}: {summary['recordings']} recordings, {summary['patients']} patients, "
        f"{summary['cycles']} cycles, {summary['audio_seconds'] / 60:.1f} min of audio"
        + (f", {left_out} files left out" if left_out else "")
    )


if __name__ == "__main__":
    run_stage("download", main, __doc__)
