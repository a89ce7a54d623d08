"""Stage download: the raw folder of `data.database` from `data.source`, and its summary.

params data, synthetic -> data/raw (the database's layout: recordings, annotations, split
files; for a local folder only in_place.json naming it, as it is read in place),
data/reports/raw.json (what was loaded: recordings, patients, devices, events per label/part).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("download", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import MissingInputError
from respiro.core.outputs import StageTimer, atomic_dir, write_json
from respiro.data.acquire.source import materialize_raw
from respiro.data.databases import get_database
from respiro.data.raw_folder import raw_root
from respiro.data.raw_summary import summarize_raw

RAW, METRICS = Path("data/raw"), Path("data/reports/raw.json")


def main() -> None:
    timer = StageTimer("download")
    params = load_params()
    erratum = Path(params.data.erratum_file) if params.data.erratum_file else None
    if erratum is not None and not erratum.is_file():
        # Checked first: finding out after a 2 GB download would waste it.
        raise MissingInputError(f"data.erratum_file={erratum} does not exist")
    with atomic_dir(RAW) as tmp:
        source = materialize_raw(params, tmp)
    database = get_database(params.data.database)
    summary = summarize_raw(database.build_catalog(raw_root(RAW), erratum_file=erratum), source, database)
    write_json(METRICS, summary)
    left_out = summary["skipped_files"] + summary["unreadable_files"]
    timer.done(
        f"{source}: {summary['recordings']} recordings, {summary['patients']} patients, "
        f"{summary['cycles']} cycles, {summary['audio_seconds'] / 60:.1f} min of audio"
        + (f", {left_out} files left out" if left_out else "")
    )


if __name__ == "__main__":
    run_stage("download", main, __doc__)
