"""The training loop: one epoch of updates, inference, and the schedule around them.

Device-agnostic: the caller picks the device and the precision; the same code runs on CPU
and CUDA, in one process or under DistributedDataParallel. A step never waits for the
device: the loss is summed on the device, and a non-finite loss is recorded there (the
first step it happened at) and reported when the epoch ends.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from respiro.core.config import TrainParams
from respiro.model.pretrained import is_early, is_new
from respiro.training.batches import TrainBatches
from respiro.training.distributed import all_reduce, unwrap
from respiro.training.precision import autocast


class NonFiniteLossError(FloatingPointError):
    """Training diverged; the message names the epoch and step."""


def parameter_groups(model: nn.Module, params: TrainParams) -> list[dict[str, Any]]:
    """The optimizer's groups for a network started from pretrained weights.

    stem + layer1 and layer2-4 (pretrained) train at `train.backbone_lr_factor` times the
    rate; CBAM and the head (new, `respiro.model.pretrained.is_new`) at the full rate. The
    stem counts as pretrained: its summed RGB kernels are ImageNet's low-level filters, the
    most transferable part of the network. stem + layer1 also carry `frozen_epochs`
    (`train.freeze_epochs`), read by `set_lr`. Empty groups are left out.
    """
    groups: dict[str, dict[str, Any]] = {
        "early": {"params": [], "lr_factor": params.backbone_lr_factor, "frozen_epochs": params.freeze_epochs},
        "backbone": {"params": [], "lr_factor": params.backbone_lr_factor},
        "new": {"params": [], "lr_factor": 1.0},
    }
    for name, parameter in unwrap(model).named_parameters():
        kind = "new" if is_new(name) else "early" if is_early(name) else "backbone"
        groups[kind]["params"].append(parameter)
    return [group for group in groups.values() if group["params"]]


def make_optimizer(model: nn.Module, params: TrainParams, pretrained: bool = False) -> torch.optim.Optimizer:
    """AdamW or SGD over `model`; with `pretrained`, over `parameter_groups` (per-group rates).

    From scratch every parameter is in one group, as it always was: nothing about the default
    run's arithmetic changes.
    """
    parameters = parameter_groups(model, params) if pretrained else model.parameters()
    if params.optimizer == "adam":
        return torch.optim.AdamW(parameters, lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(parameters, lr=params.lr, momentum=0.9, nesterov=True, weight_decay=params.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float, epoch: int) -> None:
    """The rate of 1-based `epoch` in every group: `lr` x the group's `lr_factor` (1 if none),
    or 0 while `epoch <= frozen_epochs`.

    A rate of 0 freezes exactly (AdamW's decay multiplies by 1 - 0 x wd = 1, and SGD adds
    0 x step) while gradients still flow through the layers, so freezing needs no change to
    requires_grad, which DistributedDataParallel fixes when it wraps the model. AdamW's
    moment estimates keep accumulating meanwhile and start warm when the layers thaw.
    """
    for group in optimizer.param_groups:
        frozen = epoch <= group.get("frozen_epochs", 0)
        group["lr"] = 0.0 if frozen else lr * group.get("lr_factor", 1.0)


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the peak learning rate for 0-based `epoch` of `epochs`."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 if epoch >= (2 * epochs) // 3 else 1.0
    return 1.0


def train_one_epoch(
    model: nn.Module,
    batches: TrainBatches,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    precision: torch.dtype | None,
    epoch: int,
    on_step: Callable[[], None] | None = None,
) -> float:
    """One pass over `batches` (1-based `epoch`); returns the mean training loss per cycle,
    over all processes.

    Raises NonFiniteLossError naming the epoch and the first step whose loss was NaN or
    infinite (on every process alike). The check runs once, after the epoch: checking each
    step would make the host wait for the device at every step.
    """
    model.train()
    device = batches.device
    no_step = torch.iinfo(torch.int64).max
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # sum of per-cycle losses
    cycles = 0
    first_bad = torch.full((), no_step, dtype=torch.int64, device=device)
    bad_value = torch.zeros((), dtype=torch.float32, device=device)
    for batch in batches.epoch(epoch):
        with autocast(device, precision):
            logits = model(batch.x)
        loss = loss_fn(logits.float(), batch.y)  # mean over this process's cycles
        optimizer.zero_grad(set_to_none=True)
        (loss * batch.weight).backward()
        optimizer.step()
        loss = loss.detach()
        loss_sum += loss.double() * len(batch.y)
        cycles += len(batch.y)
        newly_bad = (first_bad == no_step) & ~torch.isfinite(loss)
        first_bad.masked_fill_(newly_bad, batch.step)
        bad_value = torch.where(newly_bad, loss, bad_value)
        if on_step is not None:
            on_step()
    # Over all processes: losses and cycle counts add up; the first bad step is the smallest.
    totals = all_reduce(torch.stack([loss_sum, torch.tensor(float(cycles), dtype=torch.float64, device=device)]), "sum")
    step = int(all_reduce(first_bad.clone(), "min"))
    if step != no_step:
        value = float(bad_value) if int(first_bad) == step else float("nan")
        raise NonFiniteLossError(f"training loss became {value} at epoch {epoch}, step {step}; lower train.lr")
    return float(totals[0] / max(float(totals[1]), 1.0))


@torch.inference_mode()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, C) float64 and true labels (N,) for every item of `loader`.

    Always float32 (no autocast), whatever precision the model was trained in: the
    evaluate stage and any later prediction from the same checkpoint give the same numbers.
    """
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        logits = model(x).float()
        probs.append(torch.softmax(logits, dim=1).double().cpu().numpy())
        labels.append(y.numpy())
    return np.concatenate(probs), np.concatenate(labels)
