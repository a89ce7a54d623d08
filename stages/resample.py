"""Stage resample: every raw recording -> mono float32 at `resample.rate` Hz.

data/raw (ICBHI folder) -> data/resampled (samples.f32 + recordings.csv),
metrics/reports/resample.json (what was skipped and why).
"""

from pathlib import Path

from tqdm import tqdm

from src.audio.resample import Resampler
from src.audio.store import AudioStoreWriter
from src.audio.wavio import AudioReadError, read_mono
from src.catalog import build_catalog
from src.cli import StageError, run_stage
from src.outputs import SkipReport, StageTimer, atomic_dir
from src.params import load_params

RAW, OUT, REPORT = Path("data/raw"), Path("data/resampled"), Path("metrics/reports/resample.json")


def main() -> None:
    timer = StageTimer("resample")
    params = load_params()
    erratum = Path(params.data.erratum_file) if params.data.erratum_file else None
    catalog = build_catalog(RAW, erratum_file=erratum)
    report = SkipReport("resample")
    for file, reason in catalog.scan.skipped + catalog.unreadable:
        report.skip(file, reason)
    report.note("split_file_names_unknown_recordings", len(catalog.split_unknown))
    resampler = Resampler(params.resample.rate)
    seconds = 0.0
    with atomic_dir(OUT) as tmp, AudioStoreWriter(tmp, params.resample.rate) as store:
        for entry in tqdm(catalog.entries, desc="resample", unit="rec", leave=False):
            try:
                samples, rate = read_mono(entry.wav)
            except AudioReadError as err:
                report.skip(str(entry.wav.relative_to(RAW)), str(err).split(": ", 1)[1])
                continue
            if not samples.any():
                # Its cycles carry labels but no sound: training on them would teach noise.
                report.skip(str(entry.wav.relative_to(RAW)), "all samples are zero (silent recording)")
                continue
            seconds += len(samples) / rate
            store.append(
                {
                    "stem": entry.name.stem,
                    "patient": entry.name.patient,
                    "location": entry.name.location,
                    "mode": entry.name.mode,
                    "device": entry.name.device,
                    "device_corrected": entry.device_corrected,
                    "source_rate": rate,
                    "subtype": entry.subtype,
                    "official_split": entry.official_split,
                    "diagnosis": entry.diagnosis,
                    "annotation": entry.annotation.relative_to(RAW).as_posix(),
                },
                resampler(samples, rate),
            )
        if not store.rows:
            raise StageError(f"no usable recordings in {RAW} ({len(report)} skipped, see {REPORT})")
    report.write(REPORT)
    timer.done(
        f"{len(store.rows)} recordings, {seconds / 60:.1f} min of audio -> {params.resample.rate} Hz "
        f"({seconds / max(timer.seconds, 1e-9):.0f}x real time), {len(report)} skipped"
    )


if __name__ == "__main__":
    run_stage("resample", main)
