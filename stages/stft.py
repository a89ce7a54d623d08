"""Stage stft: cycles -> spectrograms, stored for memory-mapped loading by training.

data/cycles -> data/spectrograms (spectrograms.npy (N, F, T) float32 and a copy of
manifest.csv, so training depends on this one folder).
"""

import shutil
from pathlib import Path

import torch
from tqdm import tqdm

from src.audio.arrays import NpyWriter, iter_npy_rows, npy_shape
from src.audio.spectrogram import Spectrogram
from src.cli import run_stage
from src.outputs import StageTimer, atomic_dir
from src.params import load_params

IN, OUT = Path("data/cycles"), Path("data/spectrograms")
BATCH = 256  # cycles per STFT call: memory stays at one batch (~ 256 x 129 x 251 x 8 bytes at most)


def main() -> None:
    timer = StageTimer("stft")
    params = load_params().stft
    count, length = npy_shape(IN / "cycles.npy")
    transform = Spectrogram(params.n_fft, params.hop_length, params.window, params.scale, params.top_db)
    freqs, frames = params.n_fft // 2 + 1, 1 + length // params.hop_length
    with atomic_dir(OUT) as tmp:
        with NpyWriter(tmp / "spectrograms.npy", (count, freqs, frames)) as out, torch.inference_mode():
            batches = iter_npy_rows(IN / "cycles.npy", BATCH)
            for batch in tqdm(batches, total=-(-count // BATCH), desc="stft", unit="batch", leave=False):
                out.append(transform(torch.from_numpy(batch)).numpy())  # (B, L) -> (B, F, T)
        shutil.copyfile(IN / "manifest.csv", tmp / "manifest.csv")
    timer.done(f"{count} cycles -> {freqs} x {frames} {params.scale} spectrograms (n_fft {params.n_fft}, hop {params.hop_length})")


if __name__ == "__main__":
    run_stage("stft", main)
