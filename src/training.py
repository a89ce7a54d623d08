"""The training loop: one epoch of updates, inference, and the schedule around them.

Device-agnostic: the caller picks the device; on CUDA the forward pass runs under autocast
(bfloat16 where supported, else float16 with a gradient scaler) and the network in
channels_last layout. On CPU everything is float32 and deterministic for a given seed and
thread count.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from src.params import ParamsError, TrainParams


class NonFiniteLossError(FloatingPointError):
    """Training diverged; the message names the epoch and step."""


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; `cuda` without a GPU is an error naming the key."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("train.device is cuda but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Reproducible cuDNN choices at a small speed cost; CPU kernels are deterministic already.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=params.lr, momentum=0.9, nesterov=True, weight_decay=params.weight_decay)


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the peak learning rate for 0-based `epoch` of `epochs`."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 if epoch >= (2 * epochs) // 3 else 1.0
    return 1.0


def spec_augment(batch: torch.Tensor, time_mask: int, freq_mask: int, generator: torch.Generator) -> torch.Tensor:
    """One random time band and one frequency band per spectrogram set to 0 (the mean after
    standardization). `batch` (B, 1, F, T); widths drawn uniformly in [0, mask]."""
    b, _, f, t = batch.shape
    out = batch.clone()
    for size, axis_len, axis in ((time_mask, t, 3), (freq_mask, f, 2)):
        if size <= 0:
            continue
        width = torch.randint(0, size + 1, (b,), generator=generator)
        start = (torch.rand(b, generator=generator) * (axis_len - width).clamp_min(0)).long()
        pos = torch.arange(axis_len)
        mask = (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])  # (B, axis_len)
        shape = (b, 1, axis_len, 1) if axis == 2 else (b, 1, 1, axis_len)
        out = out.masked_fill(mask.view(shape).to(out.device), 0.0)
    return out


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    params: TrainParams,
    generator: torch.Generator,
    epoch: int,
    on_step: Callable[[], None] | None = None,
) -> float:
    """One pass over `loader`; returns the mean training loss per cycle.

    Raises NonFiniteLossError naming the epoch and step as soon as a loss is NaN or infinite:
    the weights are then already damaged and every later step would be wasted.
    """
    model.train()
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    total, count = 0.0, 0
    for step, (x, y) in enumerate(loader, start=1):
        x = spec_augment(x, params.time_mask, params.freq_mask, generator)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast(device):
            loss = loss_fn(model(x).float(), y)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss became {loss.item()} at epoch {epoch}, step {step}; lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(y)
        count += len(y)
        if on_step is not None:
            on_step()
    return total / max(count, 1)


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, C) float64 and true labels (N,) for every item of `loader`."""
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast(device):
            logits = model(x).float()
        probs.append(torch.softmax(logits, dim=1).double().cpu().numpy())
        labels.append(y.numpy())
    return np.concatenate(probs), np.concatenate(labels)
