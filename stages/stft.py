"""Stage stft: cycles -> spectrograms, stored for memory-mapped loading by training.

data/cycles -> data/spectrograms (spectrograms.npy (N, F, T) float32 and a copy of
manifest.csv, so training depends on this one folder).
"""

import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from src.audio.spectrogram import Spectrogram
from src.cli import run_stage
from src.outputs import StageTimer, atomic_dir
from src.params import load_params

IN, OUT = Path("data/cycles"), Path("data/spectrograms")
BATCH = 256  # cycles per STFT call: bounded memory (~ 256 x 129 x 251 x 8 bytes at most)


def main() -> None:
    timer = StageTimer("stft")
    params = load_params().stft
    cycles = np.load(IN / "cycles.npy", mmap_mode="r")  # (N, L)
    transform = Spectrogram(params.n_fft, params.hop_length, params.window, params.scale, params.top_db)
    freqs, frames = params.n_fft // 2 + 1, 1 + cycles.shape[1] // params.hop_length
    with atomic_dir(OUT) as tmp:
        out = np.lib.format.open_memmap(tmp / "spectrograms.npy", mode="w+", dtype=np.float32, shape=(len(cycles), freqs, frames))
        with torch.inference_mode():
            for start in tqdm(range(0, len(cycles), BATCH), desc="stft", unit="batch", leave=False):
                batch = torch.from_numpy(np.array(cycles[start : start + BATCH]))
                out[start : start + len(batch)] = transform(batch).numpy()
        out.flush()
        del out
        shutil.copyfile(IN / "manifest.csv", tmp / "manifest.csv")
    timer.done(f"{len(cycles)} cycles -> {freqs} x {frames} {params.scale} spectrograms (n_fft {params.n_fft}, hop {params.hop_length})")


if __name__ == "__main__":
    run_stage("stft", main)
