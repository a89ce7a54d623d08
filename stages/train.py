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
from tqdm import tqdm

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.outputs import StageTimer, write_csv, write_json
from respiro.core.tracking import TRAIN_DIR, log_epoch, open_live
from respiro.data.dataset import CycleSet, input_stats, load_spectrograms
from respiro.data.splits import PARTS, split_cycles, split_rows
from respiro.evaluation.metrics import format_score
from respiro.model.loss import build_loss
from respiro.model.pretrained import load_pretrained, read_init
from respiro.model.registry import architecture_of
from respiro.training import distributed
from respiro.training.batches import HeldCycles, Sampling, TrainBatches
from respiro.training.checkpoint import VAL_SCORES, CheckpointContents, save_checkpoint
from respiro.training.device import (
    round_optimizer_sqrt,
    seed_everything,
    set_training_kernels,
    to_device,
    training_device,
)
from respiro.training.fit import EpochResult, Validation, fit
from respiro.training.kernel_check import ensure_bf16_kernels, refuse_restart, restart_capped
from respiro.training.loop import make_optimizer
from respiro.training.precision import autocast_dtype, resolve_arithmetic
from respiro.training.step import make_step

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
    precision = "strict" if tp.precision == "strict" else arithmetic  # what the report says
    classes = params.classes.class_scheme().classes
    specs, rows = load_spectrograms(IN)
    parts = split_cycles(rows, params.split, tp.val_fraction)
    index = {part: np.flatnonzero(parts == part) for part in PARTS}
    labels = np.array([int(r["label"]) for r in rows])
    patients = np.array([r["patient"] for r in rows])
    seed_everything(tp.seed)
    mean, std = input_stats(specs, index["train"], tp.standardize)
    train_set = CycleSet(specs, labels, index["train"], mean, std)
    batches = TrainBatches.load(train_set, device, Sampling.of(tp), shard)
    val = HeldCycles.load(train_set.part(index["val"]), device, tp.batch_size)
    network = arch.build(len(classes), params.model)
    if init is not None:
        load_pretrained(arch, network, init[0])  # after the usual init, which CBAM and the head keep
    network = to_device(network, device)
    # On an AMX CPU a bf16 run first checks oneDNN's kernels at its own layers' shapes, and
    # starts again capped where one is wrong (training/kernel_check.py).
    checked = ensure_bf16_kernels(
        network,
        val.x[: tp.batch_size].contiguous(memory_format=torch.channels_last),
        arithmetic,
        restart=None if tp.precision == "auto" else restart_capped if shard.world == 1 else refuse_restart,
    )
    kernels.update(checked.record())
    if checked.kernels == "fp32":  # auto, and a bf16 kernel failed: float32 uses none of them
        arithmetic = precision = "fp32"
    model = distributed.wrap(network, device)
    loss_fn = build_loss(params.loss.name, params.loss.gamma, params.loss.alpha, len(classes)).to(device)
    optimizer = make_optimizer(model, tp, pretrained=arch if init is not None else None, device=device)
    if tp.precision == "strict":
        round_optimizer_sqrt(optimizer)  # MKL's sqrt rounds by CPU vendor (training/device.py)
    step = make_step(model, batches, loss_fn, optimizer, autocast_dtype(arithmetic), tp.capture)

    live = open_live(TRAIN_DIR) if main_process else None
    steps = sum(batches.steps(epoch) for epoch in range(1, tp.epochs + 1))
    bar = tqdm(total=steps, desc="train", unit="batch", leave=False, disable=not main_process)

    def log(e: EpochResult) -> None:
        assert live is not None  # only the main process validates, and it opened the logger
        log_epoch(live, e.epoch, e.curves())
        bar.write(
            f"epoch {e.epoch}/{tp.epochs}: train loss {e.train_loss:.4f}, val loss {e.val_loss:.4f}, "
            f"val SE {format_score(e.val['se'])} SP {format_score(e.val['sp'])} score {format_score(e.val['icbhi_score'])}, "
            f"{e.seconds:.0f} s{' *' if e.improved else ''}"
        )

    validation = Validation(val, classes) if main_process else None
    best = fit(step, batches, validation, tp, on_epoch=log, on_step=lambda: bar.update(1))
    bar.close()
    distributed.stop()
    if best is None:  # a process that only trained
        return
    assert live is not None  # the main process validated, so it logged

    save_checkpoint(
        MODEL,
        CheckpointContents(
            state_dict=best.state_dict,
            class_names=classes,
            params=params.as_dict(),
            input_mean=mean,
            input_std=std,
            epoch=best.epoch,
            val_scores=best.val,
            cycle_seconds_median=float(np.median([float(rows[i]["seconds"]) for i in index["train"]])),
            init_weights=None if init is None else init[1],
        ),
    )
    write_csv(SPLIT, split_rows(rows, parts))
    live.end()
    counts = {part: int(len(index[part])) for part in PARTS}
    write_json(
        REPORT,
        {
            "checkpoint_epoch": best.epoch,
            **{f"val_{k}": best.val[k] for k in VAL_SCORES},
            "epochs": tp.epochs,
            "cycles": counts,
            "patients": {part: int(len(np.unique(patients[index[part]]))) for part in PARTS},
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
        f"{counts['train']} cycles ({device.type}, {precision}, {step.kind} step, {kernels.get('threads', 1)} threads, {shard.world} process{'es' if shard.world > 1 else ''}); "
        f"best val score {format_score(best.val['icbhi_score'])} at epoch {best.epoch}{checked.summary()}"
    )


if __name__ == "__main__":
    run_stage("train", main, __doc__, partial=CURVES_NOTE)
