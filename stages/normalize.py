"""Stage normalize: each recording scaled to `normalize.target_dbfs` (RMS or peak).

data/resampled -> data/normalized (same layout, plus each recording's gain),
data/reports/normalize.json (the range of gains applied). All-zero recordings never get
here: resample skips and reports them.
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("normalize", __doc__)  # --help answers before the heavy imports below

from pathlib import Path

from tqdm import tqdm

from respiro.audio.normalize import normalize
from respiro.audio.store import AudioStore, AudioStoreWriter
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import SkipReport, StageTimer, atomic_dir

IN, OUT, REPORT = Path("data/resampled"), Path("data/normalized"), Path("data/reports/normalize.json")


def main() -> None:
    timer = StageTimer("normalize")
    params = load_params().normalize
    source = AudioStore(IN)
    report = SkipReport("normalize")
    gains: list[float] = []
    rate = int(source.rows[0]["rate"]) if source.rows else 0
    with atomic_dir(OUT) as tmp, AudioStoreWriter(tmp, rate) as store:
        for row, samples in tqdm(source, total=len(source), desc="normalize", unit="rec", leave=False):
            scaled, gain_db = normalize(samples, params.method, params.target_dbfs)
            gains.append(gain_db)
            meta = {k: v for k, v in row.items() if k not in ("rate", "offset", "length")}
            store.append({**meta, "gain_db": f"{gain_db:.3f}"}, scaled)
    report.note("gain_db_range", [round(min(gains), 2), round(max(gains), 2)] if gains else [])
    report.write(REPORT)
    spread = f", gains {min(gains):+.1f} to {max(gains):+.1f} dB" if gains else ""
    timer.done(f"{len(store.rows)} recordings to {params.method} {params.target_dbfs:g} dBFS{spread}")


if __name__ == "__main__":
    run_stage("normalize", main, __doc__)
