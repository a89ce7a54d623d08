"""Spectrogram cycles for training and inference, read from the stft stage's memory map."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from respiro.core.errors import DamagedArtifactError
from respiro.core.outputs import read_csv

SPECTROGRAMS = "spectrograms.npy"
MANIFEST = "manifest.csv"


def load_spectrograms(folder: Path) -> tuple[np.ndarray, list[dict[str, str]]]:
    """The stft stage's output: spectrograms (N, F, T) memory-mapped, and the cycle manifest."""
    specs = np.load(folder / SPECTROGRAMS, mmap_mode="r")
    rows = read_csv(folder / MANIFEST)
    if len(rows) != len(specs):
        raise DamagedArtifactError(
            f"{folder}: {len(specs)} spectrograms but {len(rows)} manifest rows; rerun the stft stage"
        )
    return specs, rows


def input_stats(specs: np.ndarray, index: np.ndarray, standardize: str) -> tuple[np.ndarray, np.ndarray]:
    """The (F,) mean and std the network's inputs are standardized with (train.standardize):
    `frequency_stats` of the cycles in `index` for `bins`; 0 and 1 for `frontend`, which
    keeps the front-end's own scale (the same checkpoint fields then say so)."""
    if standardize == "frontend":
        return np.zeros(specs.shape[1], np.float32), np.ones(specs.shape[1], np.float32)
    return frequency_stats(specs, index)


def frequency_stats(specs: np.ndarray, index: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every frequency bin over the cycles in `index`.

    Returns two (F,) float32 arrays. Computed in float64 chunk by chunk, so a large corpus
    never sits in memory at once. Per-bin statistics also even out the devices' different
    frequency responses a little; they are stored in the checkpoint and reused at test time.
    """
    total = np.zeros(specs.shape[1])
    total_sq = np.zeros(specs.shape[1])
    count = 0
    for start in range(0, len(index), chunk):
        batch = np.asarray(specs[np.sort(index[start : start + chunk])], dtype=np.float64)  # (b, F, T)
        total += batch.sum(axis=(0, 2))
        total_sq += np.square(batch).sum(axis=(0, 2))
        count += batch.shape[0] * batch.shape[2]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)


@dataclass(frozen=True)
class CycleSet:
    """Cycles `index` of the spectrograms `specs`, to be standardized per frequency bin with
    `mean` and `std` (input_stats of the training cycles, or a checkpoint's): what the
    training, validation, test and predict batches are made of."""

    specs: np.ndarray  # (N, F, T), memory-mapped
    labels: np.ndarray  # (N,) class indices, one per spectrogram
    index: np.ndarray  # (n,) rows of specs in the set, in order
    mean: np.ndarray  # (F,) float32
    std: np.ndarray  # (F,) float32

    def part(self, index: np.ndarray) -> CycleSet:
        """The rows `index` of the same spectrograms, standardized alike."""
        return replace(self, index=index)


class CycleDataset(Dataset):
    """Items `(spectrogram (1, F, T) float32 standardized per bin, label)` of `cycles`."""

    def __init__(self, cycles: CycleSet) -> None:
        self.specs, self.labels, self.index = cycles.specs, cycles.labels, np.asarray(cycles.index)
        self.mean = torch.from_numpy(cycles.mean)[:, None]
        self.std = torch.from_numpy(cycles.std)[:, None]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.index[i]
        spec = torch.from_numpy(np.array(self.specs[row], dtype=np.float32))  # (F, T)
        return ((spec - self.mean) / self.std).unsqueeze(0), int(self.labels[row])


def cycle_loader(
    cycles: CycleSet, batch_size: int, *, workers: int = 0, device: torch.device = torch.device("cpu")
) -> DataLoader:
    """Batches `(x (B, 1, F, T), y (B,))` of `cycles`, in index order: the validation, test
    and predict loaders. (Training batches come from the device-resident split,
    src/respiro/training/batches.py.)"""
    return DataLoader(
        CycleDataset(cycles),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
