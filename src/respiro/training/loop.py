"""The parts of the training loop: one epoch of updates, the optimizer and schedule (inference,
which the evaluate stage also runs, is in training/prediction.py).

Device-agnostic: the caller picks the device and the precision; the same code runs on CPU
and CUDA, in one process or under DistributedDataParallel. A step never waits for the
device: the loss is summed on the device, and a non-finite loss is recorded there (the
first step it happened at) and reported when the epoch ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, assert_never

import torch
from torch import nn

from respiro.core.config import Schedule, TrainParams
from respiro.core.errors import UserError
from respiro.model.architecture import Architecture
from respiro.training.batches import TrainBatches
from respiro.training.distributed import all_reduce, unwrap
from respiro.training.step import EagerStep


class NonFiniteLossError(UserError, FloatingPointError):
    """Training diverged; the message names the epoch and step (and says to lower train.lr)."""


def parameter_groups(
    model: nn.Module, arch: Architecture, lr: float, backbone_lr_factor: float, freeze_epochs: int
) -> list[dict[str, Any]]:
    """The optimizer's groups for a network of `arch` started from pretrained weights.

    The early (stem and first stage) and backbone parameters (pretrained) train at
    `backbone_lr_factor` times `lr`; the new ones (CBAM, the head) at `lr`: each parameter's
    group is its architecture's `param_group`. The stem counts as pretrained: its summed RGB
    kernels are ImageNet's low-level filters, the most transferable part of the network. The
    early group also carries `frozen_epochs` (`train.freeze_epochs`), which `fit` reads.
    Empty groups are left out.
    """
    groups: dict[str, dict[str, Any]] = {
        "early": {"params": [], "lr": lr * backbone_lr_factor, "frozen_epochs": freeze_epochs},
        "backbone": {"params": [], "lr": lr * backbone_lr_factor},
        "new": {"params": [], "lr": lr},
    }
    for name, parameter in unwrap(model).named_parameters():
        groups[arch.param_group(name)]["params"].append(parameter)
    return [group for group in groups.values() if group["params"]]


def make_optimizer(
    model: nn.Module,
    train: TrainParams,
    *,
    pretrained: Architecture | None = None,
    device: torch.device = torch.device("cpu"),
) -> torch.optim.Optimizer:
    """train.optimizer, `adam` (AdamW) or `sgd` (Nesterov momentum 0.9), over `model` at
    train.lr and train.weight_decay; with `pretrained` (the architecture of a network started
    from pretrained weights), over its `parameter_groups` (per-group peak rates from
    train.backbone_lr_factor, early layers frozen for train.freeze_epochs).

    From scratch every parameter is in one group, as it always was: nothing about the default
    run's arithmetic changes. On CUDA, adam is torch's fused AdamW (one kernel for all
    parameters instead of a dozen per tensor) made capturable, with each group's rate in a
    device tensor that `set_epoch_lr` updates in place: what a CUDA graph of the step
    (training/step.py) needs. On the CPU it is the default (foreach) AdamW, as always.
    """
    lr, weight_decay = train.lr, train.weight_decay
    parameters: Any = (
        parameter_groups(model, pretrained, lr, train.backbone_lr_factor, train.freeze_epochs)
        if pretrained is not None
        else model.parameters()
    )
    if train.optimizer == "adam":
        if device.type != "cuda":
            return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
        if pretrained is not None:
            for group in parameters:
                group["lr"] = torch.tensor(group["lr"], device=device)
        rate = torch.tensor(lr, device=device)
        return torch.optim.AdamW(parameters, lr=rate, weight_decay=weight_decay, fused=True, capturable=True)
    if train.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    assert_never(train.optimizer)


def set_epoch_lr(optimizer: torch.optim.Optimizer, factor: float, epoch: int) -> float:
    """Set every group's rate for 1-based `epoch`: its peak (the rate it was made with, kept
    under `initial_lr` as torch's own schedulers do) times the schedule's `factor`, or 0 while
    `epoch <= frozen_epochs` (parameter_groups). Returns the full rate (the largest), the one
    logged. A rate held in a tensor (make_optimizer on CUDA) is written in place, where a
    recorded step reads it.

    A rate of 0 freezes a group exactly (AdamW's decay multiplies by 1 - 0 x wd = 1; SGD adds
    0 x step) while gradients still flow, so freezing needs no requires_grad change, which
    DistributedDataParallel fixes when it wraps the model.
    """
    rates = []
    for group in optimizer.param_groups:
        peak = group.setdefault("initial_lr", float(group["lr"]))
        rate = 0.0 if epoch <= group.get("frozen_epochs", 0) else peak * factor
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate
        rates.append(rate)
    return max(rates)


def lr_factor(schedule: Schedule, epoch: int, epochs: int) -> float:
    """Multiplier of the peak learning rate for 0-based `epoch` of `epochs`."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 if epoch >= (2 * epochs) // 3 else 1.0
    if schedule == "constant":
        return 1.0
    assert_never(schedule)


def train_one_epoch(
    step: EagerStep,
    batches: TrainBatches,
    epoch: int,
    on_step: Callable[[], None] | None = None,
) -> float:
    """One pass of `step` (training/step.py: eager or a CUDA graph) over `batches` (1-based
    `epoch`); returns the mean training loss per cycle, over all processes.

    Raises NonFiniteLossError naming the epoch and the first step whose loss was NaN or
    infinite (on every process alike). The check runs once, after the epoch: checking each
    step would make the host wait for the device at every step.
    """
    step.model.train()
    device = batches.device
    no_step = torch.iinfo(torch.int64).max
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # sum of per-cycle losses
    cycles = 0
    first_bad = torch.full((), no_step, dtype=torch.int64, device=device)
    bad_value = torch.zeros((), dtype=torch.float32, device=device)
    for batch in batches.epoch(epoch):
        loss = step(batch)  # a captured step rewrites this tensor at its next replay: used here
        loss_sum += loss.double() * len(batch.rows)
        cycles += len(batch.rows)
        newly_bad = (first_bad == no_step) & ~torch.isfinite(loss)
        first_bad.masked_fill_(newly_bad, batch.step)
        bad_value = torch.where(newly_bad, loss, bad_value)
        if on_step is not None:
            on_step()
    # Over all processes: losses and cycle counts add up; the first bad step is the smallest.
    totals = all_reduce(torch.stack([loss_sum, torch.tensor(float(cycles), dtype=torch.float64, device=device)]), "sum")
    bad_step = int(all_reduce(first_bad.clone(), "min"))
    if bad_step != no_step:
        value = float(bad_value) if int(first_bad) == bad_step else float("nan")
        raise NonFiniteLossError(f"training loss became {value} at epoch {epoch}, step {bad_step}; lower train.lr")
    return float(totals[0] / max(float(totals[1]), 1.0))
