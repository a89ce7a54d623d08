"""Stage normalize: each recording's gain to `normalize.target_dbfs` (RMS or peak).

data/resampled -> data/normalized (gains.csv: each recording's gain in dB; the segment stage
scales the cycles it cuts by it, so no scaled copy of the audio is stored),
data/reports/normalize.json (the range of gains). All-zero recordings never get here:
resample skips and reports them.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("normalize", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

from tqdm import tqdm

from respiro.audio.normalize import gain_db_for, write_gains
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir

IN, OUT, REPORT = Path("data/resampled"), Path("data/normalized"), Path("data/reports/normalize.json")


def main() -> None:
    timer = StageTimer("normalize")
    params = load_params().normalize
    source = AudioStore(IN)
    report = SkipReport("normalize")
    gains = [
        gain_db_for(samples, params.method, params.target_dbfs)
        for _, samples in tqdm(source, total=len(source), desc="normalize", unit="rec", leave=False)
    ]
    with atomic_dir(OUT) as tmp:
        write_gains(tmp, [row["stem"] for row in source.rows], gains)
    report.note("gain_db_range", [round(min(gains), 2), round(max(gains), 2)] if gains else [])
    report.write(REPORT)
    spread = f", gains {min(gains):+.1f} to {max(gains):+.1f} dB" if gains else ""
    timer.done(f"{len(gains)} recordings to {params.method} {params.target_dbfs:g} dBFS{spread}")


if __name__ == "__main__":
    run_stage("normalize", main, __doc__)
