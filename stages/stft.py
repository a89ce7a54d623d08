"""Stage stft: cycles, each cut from its recording, scaled by its gain and fit to
`segment.duration`, -> spectrograms, stored for memory-mapped loading by training.

data/cycles (the cycle table) + data/resampled (the recordings) -> data/spectrograms
(spectrograms.npy (N, F, T) float32 and a copy of manifest.csv, so training depends on this
one folder).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("stft", __doc__)  # --help answers before the heavy imports below

import shutil
from pathlib import Path

from tqdm import tqdm

from respiro.audio.arrays import create_npy
from respiro.audio.segment import CycleTable, cycle_samples
from respiro.audio.spectrogram import (
    SpectrogramBatch,
    describe_front_end,
    front_end_shape,
    write_spectrogram_batch,
)
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import StageTimer, atomic_dir
from respiro.core.pool import ordered_map, worker_count

STORE, IN, OUT = Path("data/resampled"), Path("data/cycles"), Path("data/spectrograms")
# Cycles per STFT call and worker task. Every worker holds its batch and torch's buffers for
# it (about 180 MB at 64, 410 MB at 256, measured at hop 256); a spectrogram does not depend
# on the batch it is computed in, so this sets memory, never the bytes.
BATCH = 64


def main() -> None:
    timer = StageTimer("stft")
    loaded = load_params()
    params, workers = loaded.stft, worker_count(loaded.audio.workers)
    cycles, segment = CycleTable.open(IN, AudioStore(STORE)), loaded.segment
    count, length = len(cycles), cycle_samples(segment.duration, cycles.rate)
    freqs, frames = front_end_shape(params, length)
    with atomic_dir(OUT) as tmp:
        # Each worker cuts its batch of cycles, fits them and writes their spectrograms' rows.
        create_npy(tmp / "spectrograms.npy", (count, freqs, frames))
        batches = [
            SpectrogramBatch(
                STORE, IN, tmp / "spectrograms.npy", first, min(BATCH, count - first), length, segment.pad, params
            )
            for first in range(0, count, BATCH)
        ]
        for _ in tqdm(
            ordered_map(write_spectrogram_batch, batches, workers),
            total=len(batches),
            desc="stft",
            unit="batch",
            leave=False,
        ):
            pass
        shutil.copyfile(IN / "manifest.csv", tmp / "manifest.csv")
    timer.done(f"{count} cycles -> {freqs} x {frames} {describe_front_end(params)}, {workers} workers")


if __name__ == "__main__":
    run_stage("stft", main, __doc__)
