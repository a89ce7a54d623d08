"""Stage train: ResNet (+CBAM) with focal or cross-entropy loss on the training cycles.

data/spectrograms -> models/model.pt (best epoch by validation ICBHI score),
models/split.csv (every cycle's part: train/val/test/excluded), metrics/train/ (DVCLive:
per-epoch curves, the epoch reached), data/reports/train.json (the checkpoint's epoch and
validation scores, cycles and patients per part, device).
"""

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from respiro.core.errors import StageError
from respiro.core.cli import run_stage
from respiro.data.dataset import cycle_loader, frequency_stats, load_spectrograms
from respiro.data.icbhi import CLASS_NAMES
from respiro.model.loss import build_loss
from respiro.evaluation.metrics import scores_of
from respiro.model.resnet import build_model
from respiro.core.outputs import StageTimer, atomic_file, write_csv, write_json
from respiro.core.tracking import TRAIN_DIR, log_epoch, open_live
from respiro.core.config import load_params
from respiro.data.splits import PARTS, assign_parts
from respiro.training.loop import (
    NonFiniteLossError,
    lr_factor,
    make_optimizer,
    predict,
    train_one_epoch,
)
from respiro.training.batches import TrainBatches
from respiro.training import distributed
from respiro.training.distributed import plain_state_dict, unwrap
from respiro.training.precision import precision_name, resolve_precision
from respiro.training.device import resolve_device, seed_everything

IN = Path("data/spectrograms")
MODEL, SPLIT = Path("models/model.pt"), Path("models/split.csv")
REPORT = Path("data/reports/train.json")
# DVCLive rewrites the git-tracked curves every epoch, and DVC keeps no copy of them
# (cache: false): after a failed or interrupted run git restores them, or a rerun rewrites them.
CURVES_NOTE = f"{TRAIN_DIR}/ may hold the curves of the epochs it reached: `git checkout -- {TRAIN_DIR}` restores the committed ones"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def checkpoint_summary(best: dict) -> dict[str, object]:
    """The epoch kept and its validation scores."""
    return {"checkpoint_epoch": best["epoch"], **{f"val_{k}": best["val"][k] for k in ("icbhi_score", "se", "sp")}}


def main() -> None:
    timer = StageTimer("train")
    params = load_params()
    tp = params.train
    if tp.processes > 1 and not distributed.launched_by_torchrun():
        # train.processes asks for N processes on this machine: run this stage under torchrun.
        raise SystemExit(distributed.relaunch(tp.processes, "stages.train"))
    shard, device = distributed.start(resolve_device(tp.device))
    main_process = shard.rank == 0  # the only process that validates and writes
    precision = resolve_precision(tp.precision, device)
    specs, rows = load_spectrograms(IN)
    labels = np.array([int(r["label"]) for r in rows])
    patients = np.array([int(r["patient"]) for r in rows])
    official = np.array([r["official_split"] for r in rows])
    parts = assign_parts(params.split, patients, labels, official, tp.val_fraction, params.split.seed)
    index = {part: np.flatnonzero(parts == part) for part in PARTS}
    for part in ("train", "val", "test"):
        if len(index[part]) == 0:
            raise StageError(f"split.method={params.split.method} leaves no {part} cycles ({len(rows)} cycles in all)")

    seed_everything(tp.seed)
    mean, std = frequency_stats(specs, index["train"])
    batches = TrainBatches.load(
        specs, labels, index["train"], mean, std, device,
        batch_size=tp.batch_size, time_mask=tp.time_mask, freq_mask=tp.freq_mask, seed=tp.seed, shard=shard,
    )  # fmt: skip
    val_loader = cycle_loader(specs, labels, index["val"], mean, std, tp.batch_size, workers=tp.workers, device=device)
    model = build_model(params.model.depth, params.model.cbam, params.model.cbam_reduction, len(CLASS_NAMES))
    model = distributed.wrap(model.to(device).to(memory_format=torch.channels_last), device)
    loss_fn = build_loss(params.loss.name, params.loss.gamma, params.loss.alpha).to(device)
    optimizer = make_optimizer(model, tp)

    live = open_live(TRAIN_DIR) if main_process else None
    best: dict | None = None
    steps = sum(batches.steps(epoch) for epoch in range(1, tp.epochs + 1))
    bar = tqdm(total=steps, desc="train", unit="batch", leave=False, disable=not main_process)
    for epoch in range(1, tp.epochs + 1):
        started = time.perf_counter()
        lr = tp.lr * lr_factor(tp.schedule, epoch - 1, tp.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            train_loss = train_one_epoch(model, batches, loss_fn, optimizer, precision, epoch, on_step=lambda: bar.update(1))
        except NonFiniteLossError as err:
            raise StageError(str(err)) from err
        if not main_process:
            continue
        probs, val_true = predict(unwrap(model), val_loader, device)
        val_loss = loss_fn(torch.log(torch.from_numpy(probs).clamp_min(1e-12)).float().to(device), torch.from_numpy(val_true).to(device)).item()
        val = scores_of(val_true, probs.argmax(1))
        score = val["icbhi_score"] if val["icbhi_score"] is not None else -1.0
        improved = best is None or score > best["score"]
        if improved:
            best = {"score": score, "epoch": epoch, "val": val, "state": plain_state_dict(model)}
        log_epoch(
            live,
            epoch,
            {"lr": lr, "train/loss": train_loss, "val/loss": val_loss, **{f"val/{k}": val[k] for k in ("accuracy", "se", "sp", "icbhi_score")}},
        )
        bar.write(
            f"epoch {epoch}/{tp.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
            f"val SE {_fmt(val['se'])} SP {_fmt(val['sp'])} score {_fmt(val['icbhi_score'])}, "
            f"{time.perf_counter() - started:.0f} s{' *' if improved else ''}"
        )
    bar.close()
    distributed.stop()
    if not main_process:
        return

    checkpoint = {
        "state_dict": best["state"],
        "class_names": list(CLASS_NAMES),
        "params": {k: dataclasses.asdict(getattr(params, k)) for k in ("data", "synthetic", "resample", "normalize", "segment", "stft", "split", "model", "loss", "train")},
        "input_mean": torch.from_numpy(mean),
        "input_std": torch.from_numpy(std),
        "epoch": best["epoch"],
        "val_scores": {k: best["val"][k] for k in ("icbhi_score", "se", "sp")},
        # How long the training cycles were before fitting (seconds): predict cuts recordings
        # without annotation into windows of this typical length.
        "cycle_seconds_median": float(np.median([float(rows[i]["seconds"]) for i in index["train"]])),
    }
    with atomic_file(MODEL) as tmp:
        torch.save(checkpoint, tmp)
    write_csv(SPLIT, [{"index": str(i), "recording": rows[i]["recording"], "patient": rows[i]["patient"], "label": rows[i]["label"], "part": parts[i]} for i in range(len(rows))])
    live.end()
    counts = {part: int(len(index[part])) for part in PARTS}
    write_json(
        REPORT,
        {
            **checkpoint_summary(best),
            "epochs": tp.epochs,
            "cycles": counts,
            "patients": {part: int(len(np.unique(patients[index[part]]))) for part in PARTS},
            # No wall time here: outputs must be the same bytes on every run (README,
            # "Reproducibility"); the stage's summary line reports the time.
            "device": device.type,
            "precision": precision_name(precision),
            "processes": shard.world,
        },
    )
    timer.done(
        f"ResNet-{params.model.depth}{' + CBAM' if params.model.cbam else ''}, {params.loss.name} loss, {tp.epochs} epochs on "
        f"{counts['train']} cycles ({device.type}, {precision_name(precision)}, {shard.world} process{'es' if shard.world > 1 else ''}); best val score {_fmt(best['val']['icbhi_score'])} at epoch {best['epoch']}"
    )


if __name__ == "__main__":
    run_stage("train", main, __doc__, partial=CURVES_NOTE)
