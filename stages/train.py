"""Stage train: the network of model.arch (+CBAM) with focal or cross-entropy loss on the training cycles.

data/spectrograms -> models/model.pt (best epoch by validation ICBHI score),
models/split.csv (every cycle's part: train/val/test/excluded), metrics/train/ (DVCLive:
per-epoch curves, the epoch reached), data/reports/train.json (the checkpoint's epoch and
validation scores, cycles and patients per part, device).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("train", __doc__, kernels=True)  # --help answers, the kernels are set, before torch loads

from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from torch import nn
from tqdm import tqdm

from respiro.core.cli import run_stage
from respiro.core.config import Params, Precision, TrainParams, load_params
from respiro.core.outputs import StageTimer, write_csv, write_json
from respiro.core.tracking import TRAIN_DIR, log_epoch, open_live
from respiro.data.dataset import CycleSet, input_stats, load_spectrograms
from respiro.data.splits import part_sizes, split_cycles, split_rows
from respiro.evaluation.metrics import format_score
from respiro.model.architecture import Architecture
from respiro.model.loss import build_loss
from respiro.model.pretrained import load_pretrained, read_init
from respiro.model.registry import architecture_of
from respiro.training import distributed
from respiro.training.batches import HeldCycles, Sampling, Shard, TrainBatches
from respiro.training.checkpoint import VAL_SCORES, CheckpointContents, save_checkpoint
from respiro.training.device import (
    round_optimizer_sqrt,
    seed_everything,
    set_training_kernels,
    to_device,
    training_device,
)
from respiro.training.fit import EpochResult, FitResult, Validation, fit
from respiro.training.kernel_check import Verdict, ensure_bf16_kernels, refuse_restart, restart_capped
from respiro.training.loop import make_optimizer
from respiro.training.precision import Arithmetic, autocast_dtype, resolve_arithmetic
from respiro.training.step import EagerStep, make_step

IN, PRETRAINED = Path("data/spectrograms"), Path("models/pretrained")
MODEL, SPLIT = Path("models/model.pt"), Path("models/split.csv")
REPORT = Path("data/reports/train.json")
# DVCLive rewrites the git-tracked curves every epoch, and DVC keeps no copy of them
# (cache: false): after a failed or interrupted run git restores them, or a rerun rewrites them.
CURVES_NOTE = f"{TRAIN_DIR}/ may hold the curves of the epochs it reached: `git checkout -- {TRAIN_DIR}` restores the committed ones"


def main() -> None:
    timer = StageTimer("train")
    params = load_params()
    tp = params.train
    arch = architecture_of(params.model)  # a network that has what model.* ask, or one line
    # (weights file, {file, sha256}) for pretrained weights, None from scratch.
    init = read_init(PRETRAINED, params.model.pretrained, arch.name)
    if tp.processes > 1 and not distributed.launched_by_torchrun():
        # train.processes asks for N processes on this machine: run this stage under torchrun.
        raise SystemExit(distributed.relaunch(tp.processes, "stages.train"))
    shard, device = distributed.start(training_device(tp.device, tp.precision))
    main_process = shard.rank == 0  # the only process that validates and writes
    arithmetic = resolve_arithmetic(tp.precision, device)
    kernels = set_training_kernels(tp.precision, arithmetic, device)
    classes = params.classes.class_scheme().classes

    # The cycles: split, standardized as the training part, held on the device.
    specs, rows = load_spectrograms(IN)
    parts = split_cycles(rows, params.split, tp.val_fraction)
    train_rows, val_rows = (np.flatnonzero(parts == part) for part in ("train", "val"))
    seed_everything(tp.seed)
    mean, std = input_stats(specs, train_rows, tp.standardize)
    train_set = CycleSet(specs, np.array([int(r["label"]) for r in rows]), train_rows, mean, std)
    batches = TrainBatches.load(train_set, device, Sampling.of(tp), shard)
    val = HeldCycles.load(train_set.part(val_rows), device, tp.batch_size)

    # The network, on kernels checked at its own layers' shapes, and the step that trains it.
    network = arch.build(len(classes), params.model)
    if init is not None:
        load_pretrained(arch, network, init[0])  # after the usual init, which CBAM and the head keep
    network = to_device(network, device)
    checked = check_kernels(network, val, arithmetic, tp.precision, shard)
    kernels.update(checked.record())
    if checked.kernels == "fp32":  # auto, and a bf16 kernel failed: float32 uses none of them
        arithmetic = "fp32"
    precision = "strict" if tp.precision == "strict" else arithmetic  # what the report says
    step = training_step(network, batches, params, arch if init is not None else None, arithmetic)

    live = open_live(TRAIN_DIR) if main_process else None
    best = fit_with_progress(step, batches, Validation(val, classes) if main_process else None, tp, live)
    distributed.stop()
    if best is None:  # a process that only trained
        return
    assert live is not None  # the main process validated, so it logged

    save_checkpoint(MODEL, checkpoint_of(best, params, train_set, rows, init))
    write_csv(SPLIT, split_rows(rows, parts))
    live.end()
    sizes = part_sizes(rows, parts)
    write_json(
        REPORT,
        {
            "checkpoint_epoch": best.epoch,
            **{f"val_{k}": best.val[k] for k in VAL_SCORES},
            "epochs": tp.epochs,
            **sizes,
            # No wall time here: outputs must be the same bytes on every run (README,
            # "Reproducibility"); the stage's summary line reports the time.
            "device": device.type,
            "precision": precision,
            "step": step.kind,
            "processes": shard.world,
            # What else decides the bytes (training/device.py): the CPU kernels and threads.
            **kernels,
        },
    )
    timer.done(
        f"{arch.label(params.model.cbam)}, {params.loss.name} loss, {tp.epochs} epochs on "
        f"{sizes['cycles']['train']} cycles ({device.type}, {precision}, {step.kind} step, {kernels.get('threads', 1)} threads, {shard.world} process{'es' if shard.world > 1 else ''}); "
        f"best val score {format_score(best.val['icbhi_score'])} at epoch {best.epoch}{checked.summary()}"
    )


def checkpoint_of(
    best: FitResult,
    params: Params,
    train_set: CycleSet,
    rows: list[dict[str, str]],
    init: tuple[Path, dict[str, str]] | None,
) -> CheckpointContents:
    """What models/model.pt holds: the kept epoch's weights and scores, the params, the
    standardization and median length (before fitting) of the training cycles (manifest
    `rows`), and the record of the initial weights (`init`, read_init's), if any."""
    return CheckpointContents(
        state_dict=best.state_dict,
        class_names=params.classes.class_scheme().classes,
        params=params.as_dict(),
        input_mean=train_set.mean,
        input_std=train_set.std,
        epoch=best.epoch,
        val_scores=best.val,
        cycle_seconds_median=float(np.median([float(rows[i]["seconds"]) for i in train_set.index])),
        init_weights=None if init is None else init[1],
    )


def check_kernels(network: nn.Module, val: HeldCycles, arithmetic: str, precision: Precision, shard: Shard) -> Verdict:
    """On an AMX CPU a bf16 run first checks oneDNN's kernels at its own layers' shapes on a
    batch of validation cycles, and starts again capped where one is wrong (one process;
    several stop), or, with train.precision auto, trains in fp32 (training/kernel_check.py)."""
    restart = None if precision == "auto" else restart_capped if shard.world == 1 else refuse_restart
    x = val.x[: val.batch_size].contiguous(memory_format=torch.channels_last)
    return ensure_bf16_kernels(network, x, arithmetic, restart=restart)


def training_step(
    network: nn.Module, batches: TrainBatches, params: Params, pretrained: Architecture | None, arithmetic: Arithmetic
) -> EagerStep:
    """The step that trains `network` (on its device, wrapped for several processes) on
    `batches`: params.loss's loss, params.train's optimizer (fine-tuning the groups of
    `pretrained`, a network started from pretrained weights), `arithmetic` in the forward pass."""
    tp, device = params.train, batches.device
    model = distributed.wrap(network, device)
    classes = len(params.classes.class_scheme().classes)
    loss_fn = build_loss(params.loss.name, params.loss.gamma, params.loss.alpha, classes).to(device)
    optimizer = make_optimizer(model, tp, pretrained=pretrained, device=device)
    if tp.precision == "strict":
        round_optimizer_sqrt(optimizer)  # MKL's sqrt rounds by CPU vendor (training/device.py)
    return make_step(model, batches, loss_fn, optimizer, autocast_dtype(arithmetic), tp.capture)


def fit_with_progress(
    step: EagerStep, batches: TrainBatches, val: Validation | None, tp: TrainParams, live: Live | None
) -> FitResult | None:
    """`fit`, with a bar of the steps and, where this process validates, each epoch's line
    and its curves in `live` (DVCLive)."""
    steps = sum(batches.steps(epoch) for epoch in range(1, tp.epochs + 1))
    bar = tqdm(total=steps, desc="train", unit="batch", leave=False, disable=val is None)

    def log(e: EpochResult) -> None:
        assert live is not None  # only the main process validates, and it opened the logger
        log_epoch(live, e.epoch, e.curves())
        bar.write(e.line(tp.epochs))

    best = fit(step, batches, val, tp, on_epoch=log, on_step=lambda: bar.update(1))
    bar.close()
    return best


if __name__ == "__main__":
    run_stage("train", main, __doc__, partial=CURVES_NOTE)
