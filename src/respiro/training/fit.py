"""Fitting a model: epochs of updates under the learning-rate schedule, each followed by a
validation pass, keeping the weights of the epoch with the best validation ICBHI score.

The test cycles never enter here: the epoch is chosen on the validation cycles only. Under
DistributedDataParallel every process trains; only the one that validates (given the
validation cycles: process 0) sees the scores and gets a result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from respiro.core.config import TrainParams
from respiro.evaluation.metrics import format_score, scores_of
from respiro.training.batches import TrainBatches
from respiro.training.distributed import plain_state_dict, unwrap
from respiro.training.loop import lr_factor, set_epoch_lr, train_one_epoch
from respiro.training.prediction import Batches, validate
from respiro.training.step import EagerStep

CURVE_SCORES = ("accuracy", "se", "sp", "icbhi_score")  # the validation scores logged per epoch


@dataclass(frozen=True)
class EpochResult:
    """One epoch: its learning rate, mean losses per cycle and validation scores."""

    epoch: int  # 1-based
    lr: float
    train_loss: float
    val_loss: float  # from the logits, as the training loss is
    val: dict[str, Any]  # evaluation.metrics.icbhi_scores of the validation cycles
    improved: bool  # the best validation score so far: these weights are kept
    seconds: float

    def line(self, epochs: int) -> str:
        """`epoch 3/12: train loss 0.9120, val loss ..., val SE ... SP ... score ..., 41 s *`
        (`*`: the best so far)."""
        return (
            f"epoch {self.epoch}/{epochs}: train loss {self.train_loss:.4f}, val loss {self.val_loss:.4f}, "
            f"val SE {format_score(self.val['se'])} SP {format_score(self.val['sp'])} score {format_score(self.val['icbhi_score'])}, "
            f"{self.seconds:.0f} s{' *' if self.improved else ''}"
        )

    def curves(self) -> dict[str, float | None]:
        """The per-epoch values DVCLive plots (None: undefined, e.g. SE without abnormal cycles)."""
        return {
            "lr": self.lr,
            "train/loss": self.train_loss,
            "val/loss": self.val_loss,
            **{f"val/{k}": self.val[k] for k in CURVE_SCORES},
        }


@dataclass(frozen=True)
class Validation:
    """The cycles that choose the epoch, in batches (batches.HeldCycles, or any batches),
    scored in the class scheme's `class_names` (class 0 normal)."""

    batches: Batches
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class FitResult:
    """The kept epoch: its number, validation scores and weights (CPU copies, plain keys)."""

    epoch: int
    val: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def fit(
    step: EagerStep,
    batches: TrainBatches,
    val: Validation | None,
    train: TrainParams,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> FitResult | None:
    """Train `step.model` with `step` (training/step.py) for train.epochs epochs, validating
    on `val` after each, where this process validates (None: it only trains); `on_epoch` gets
    each epoch's result there. Every parameter group's learning rate follows train.schedule
    (loop.lr_factor) from the rate the optimizer was made with, its peak. Returns the best
    epoch (the first of equal scores; an undefined score counts as -1), or None where this
    process does not validate.

    Raises NonFiniteLossError when the training loss stops being finite.
    """
    best: FitResult | None = None
    best_score = -1.0
    device = batches.device
    for epoch in range(1, train.epochs + 1):
        started = time.perf_counter()
        epoch_lr = set_epoch_lr(step.optimizer, lr_factor(train.schedule, epoch - 1, train.epochs), epoch)
        train_loss = train_one_epoch(step, batches, epoch, on_step=on_step)
        if val is None:
            continue
        val_loss, probs, true = validate(unwrap(step.model), val.batches, step.loss_fn, device)
        val_scores = scores_of(true, probs.argmax(1), val.class_names)
        score = val_scores["icbhi_score"] if val_scores["icbhi_score"] is not None else -1.0
        improved = best is None or score > best_score
        if improved:
            best, best_score = FitResult(epoch, val_scores, plain_state_dict(step.model)), score
        if on_epoch is not None:
            on_epoch(
                EpochResult(epoch, epoch_lr, train_loss, val_loss, val_scores, improved, time.perf_counter() - started)
            )
    return best
