"""The training split on the training device, served as seeded, augmented batches.

One data path on every device: the rows of the training split this process trains on are
read once from the memory-mapped spectrograms, standardized per frequency bin and kept as
one float32 tensor `(n, 1, F, T)` on the device (CPU memory on CPU; 230 MB at ICBHI scale).
Each epoch's randomness, the batch order and the SpecAugment bands, is drawn on the CPU in
one go from a generator seeded by (train.seed, epoch) and copied to the device once; a step
is then only device work (an index_select and two masks, `assemble`), with no host
synchronisation. The draws do not depend on the device or on the number of processes.

Under DistributedDataParallel with W processes, process r holds only its shard: positions
r, r+W, r+2W, ... of the training index. Every process draws the same epoch plan; from
each global batch (train.batch_size cycles, the batches a single process would use) it
takes the cycles of its shard, so per-process batches hold about batch_size / W cycles
(the exact count varies by batch; batch_size need not divide by W). `Batch.weight` scales
each process's mean loss so that DDP's gradient average equals the gradient of the global
batch's mean loss. A global batch in which some process would get no cycle is skipped
(only possible for batches of fewer than W cycles per process, e.g. a small last batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from respiro.core.config import TrainParams
from respiro.data.dataset import CycleSet


@dataclass(frozen=True)
class Shard:
    """This process's part of the data: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1


@dataclass(frozen=True)
class Sampling:
    """How each epoch's batches are drawn: `batch_size` cycles per global batch, SpecAugment
    bands up to `time_mask` frames and `freq_mask` bins wide, all from a generator seeded by
    (`seed`, epoch)."""

    batch_size: int
    time_mask: int
    freq_mask: int
    seed: int

    @classmethod
    def of(cls, train: TrainParams) -> Sampling:
        """train.batch_size, time_mask, freq_mask and seed."""
        return cls(train.batch_size, train.time_mask, train.freq_mask, train.seed)


@dataclass(frozen=True)
class Batch:
    """One step's cycles, as what makes them (TrainBatches.assemble): indices and bands on
    the device, so that a captured step (training/step.py) assembles them inside its graph."""

    rows: torch.Tensor  # (b,) int64 rows of this process's shard, on the device
    bands: torch.Tensor  # (b, 4) int64 SpecAugment bands (draw_mask_bands), on the device
    weight: float  # multiplies the mean loss: b * world / global batch size
    step: int  # 1-based step of the epoch (the same on every process)


def draw_mask_bands(
    rng: np.random.Generator, count: int, time_mask: int, freq_mask: int, frames: int, bins: int
) -> np.ndarray:
    """SpecAugment bands for `count` spectrograms: (count, 4) int64 columns time start,
    time width, frequency start, frequency width. Widths uniform in [0, mask]; a band lies
    inside the spectrogram."""
    bands = np.zeros((count, 4), dtype=np.int64)
    for col, (mask, length) in enumerate(((time_mask, frames), (freq_mask, bins))):
        if mask <= 0:
            continue
        width = rng.integers(0, mask + 1, size=count)
        start = np.floor(rng.random(count) * np.maximum(length - width, 0)).astype(np.int64)
        bands[:, 2 * col], bands[:, 2 * col + 1] = start, width
    return bands


def apply_mask_bands(x: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
    """`x` (B, 1, F, T) with each item's time and frequency band set to 0 (the mean after
    standardization); `bands` (B, 4) from `draw_mask_bands`, on x's device. Not in place."""
    _, _, bins, frames = x.shape
    t = torch.arange(frames, device=x.device)
    f = torch.arange(bins, device=x.device)
    t_start, t_width, f_start, f_width = (bands[:, i : i + 1] for i in range(4))  # (B, 1) each
    in_time = (t >= t_start) & (t < t_start + t_width)  # (B, T)
    in_freq = (f >= f_start) & (f < f_start + f_width)  # (B, F)
    masked = in_time[:, None, None, :] | in_freq[:, None, :, None]  # (B, 1, F, T)
    return x.masked_fill(masked, 0.0)


def standardized_rows(cycles: CycleSet, device: torch.device, chunk: int = 256) -> torch.Tensor:
    """The spectrograms of `cycles` standardized per bin, as one float32 (n, 1, F, T) tensor
    on `device`, read chunk by chunk so only the result sits in memory."""
    specs, rows = cycles.specs, np.asarray(cycles.index)
    _, bins, frames = specs.shape
    out = torch.empty((len(rows), 1, bins, frames), dtype=torch.float32, device=device)
    mean_t = torch.from_numpy(np.asarray(cycles.mean, dtype=np.float32))[:, None]
    std_t = torch.from_numpy(np.asarray(cycles.std, dtype=np.float32))[:, None]
    for start in range(0, len(rows), chunk):
        block = torch.from_numpy(np.asarray(specs[rows[start : start + chunk]], dtype=np.float32))  # (b, F, T)
        out[start : start + len(block), 0] = ((block - mean_t) / std_t).to(device)
    return out


class HeldCycles:
    """Cycles standardized per bin, held on the device as one tensor and served in order in
    batches `(x (b, 1, F, T) channels_last, y (b,))`: the validation split, read once instead
    of copied to the device batch by batch every epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    @classmethod
    def load(cls, cycles: CycleSet, device: torch.device, batch_size: int) -> HeldCycles:
        x = standardized_rows(cycles, device)
        y = torch.from_numpy(np.asarray(cycles.labels)[cycles.index].astype(np.int64)).to(device)
        return cls(x, y, batch_size)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.y), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield self.x[part].contiguous(memory_format=torch.channels_last), self.y[part]


class TrainBatches:
    """This process's shard of the training split on the device, and each epoch's batches."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, total: int, sampling: Sampling, shard: Shard = Shard()
    ) -> None:
        expected = len(range(shard.rank, total, shard.world))
        if len(x) != expected or len(y) != expected:
            raise ValueError(f"rank {shard.rank} of {shard.world} needs {expected} of {total} cycles; got {len(x)}")
        self.x, self.y = x, y
        self.total, self.sampling, self.shard = total, sampling, shard

    @classmethod
    def load(cls, cycles: CycleSet, device: torch.device, sampling: Sampling, shard: Shard = Shard()) -> TrainBatches:
        """Read this shard's rows (`index[rank::world]`) of the memory map onto `device`."""
        mine = cycles.part(np.asarray(cycles.index)[shard.rank :: shard.world])
        held = HeldCycles.load(mine, device, sampling.batch_size)
        return cls(held.x, held.y, len(cycles.index), sampling, shard)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def steps(self, epoch: int) -> int:
        """Number of steps in `epoch` (the same on every process)."""
        return len(self._plan(epoch)[1])

    def _plan(self, epoch: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The epoch's global order, its batches (arrays of positions), and one SpecAugment
        band per position of the order. Seeded by (seed, epoch) only."""
        sampling, world = self.sampling, self.shard.world
        rng = np.random.default_rng([sampling.seed, epoch])
        order = rng.permutation(self.total)
        bands = draw_mask_bands(
            rng, self.total, sampling.time_mask, sampling.freq_mask, self.x.shape[3], self.x.shape[2]
        )
        batches = []
        for start in range(0, self.total, sampling.batch_size):
            positions = np.arange(start, min(start + sampling.batch_size, self.total))
            if world > 1 and len(np.unique(order[positions] % world)) < world:
                continue  # some process would get no cycle of this batch
            batches.append(positions)
        return order, batches, bands

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """This process's part of every batch of `epoch`, augmented, on the device."""
        order, batches, bands = self._plan(epoch)
        if not batches:
            return
        rank, world = self.shard.rank, self.shard.world
        local, local_bands, bounds, weights = [], [], [0], []
        for positions in batches:
            mine = positions[order[positions] % world == rank]
            local.append(order[mine] // world)
            local_bands.append(bands[mine])
            bounds.append(bounds[-1] + len(mine))
            weights.append(len(mine) * world / len(positions))
        # One copy per epoch: indices and bands for every step.
        idx = torch.from_numpy(np.concatenate(local)).to(self.device)
        band = torch.from_numpy(np.concatenate(local_bands)).to(self.device)
        for step, weight in enumerate(weights, start=1):
            part = slice(bounds[step - 1], bounds[step])
            yield Batch(idx[part], band[part], weight, step)

    def assemble(self, rows: torch.Tensor, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of `rows` with `bands` masked: x (b, 1, F, T) channels_last and y (b,),
        on the device, by device work only (no host synchronisation)."""
        x = apply_mask_bands(self.x.index_select(0, rows), bands)
        return x.contiguous(memory_format=torch.channels_last), self.y.index_select(0, rows)
