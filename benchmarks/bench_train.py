"""Benchmark: training throughput of the real training step (not a test).

Times `src.training.train_one_epoch` (forward under the chosen precision, focal loss,
backward, AdamW step) on batches served by `TrainBatches` from random ICBHI-shaped cycles
(1 x 129 x 126) already on the device, for ResNet-18/34 with and without CBAM in fp32 and
bf16, on the CPU and, when present, on CUDA (the GPU's name in the row). The fp32 and bf16
rows of one network are timed one after the other, so their ratio is fair on a shared
machine even when the absolute figures are not. With `--epoch-cycles N` it also times one
whole epoch of N cycles of ResNet-34 + CBAM in bf16 per device (3540: ICBHI's training
split), the issue's GPU target (under 2 s on an H100).

Run from the repository root and paste the table into benchmarks/RESULTS_train.md:

    python -m benchmarks.bench_train --steps 4 --warmup 1
"""

from __future__ import annotations

import argparse
import time

import torch

from respiro.model.loss import build_loss
from respiro.model.resnet import build_model
from respiro.training.batches import TrainBatches
from respiro.training.loop import train_one_epoch

SHAPE = (129, 126)  # frequency bins x frames of an 8 s cycle at 4 kHz, n_fft = hop = 256
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def random_batches(cycles: int, batch: int, device: torch.device, seed: int = 0) -> TrainBatches:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(cycles, 1, *SHAPE, generator=generator).to(device)
    y = torch.randint(0, 4, (cycles,), generator=generator).to(device)
    return TrainBatches(x, y, cycles, batch, time_mask=16, freq_mask=8, seed=seed)


def time_epoch(
    depth: int, cbam: bool, precision: str, batches: TrainBatches, warmup: TrainBatches
) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds of one epoch over `batches`, after one epoch
    over `warmup` (kernel selection, allocator); train_one_epoch ends by reading the loss,
    which waits for the device. On a CPU shared with other jobs the CPU seconds of a
    one-thread run (OMP_NUM_THREADS=1) measure the work; the wall clock measures the queue."""
    torch.manual_seed(0)
    model = build_model(depth, cbam).to(batches.device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = build_loss("focal", 1.0, None)
    train_one_epoch(model, warmup, loss_fn, optimizer, PRECISIONS[precision], epoch=1)
    start, cpu = time.perf_counter(), time.process_time()
    train_one_epoch(model, batches, loss_fn, optimizer, PRECISIONS[precision], epoch=1)
    return time.perf_counter() - start, time.process_time() - cpu


def train_rows(
    devices: list[torch.device], batch: int = 32, steps: int = 4, warmup: int = 1
) -> list[dict[str, object]]:
    """One row per device x network x precision: training cycles/s and ms per step."""
    rows: list[dict[str, object]] = []
    for device in devices:
        timed, warm = (
            random_batches(batch * steps, batch, device),
            random_batches(batch * warmup, batch, device, seed=1),
        )
        for depth in (18, 34):
            for cbam in (False, True):
                for precision in PRECISIONS:
                    seconds, cpu = time_epoch(depth, cbam, precision, timed, warm)
                    rows.append(
                        {
                            "benchmark": "train step",
                            "model": f"ResNet-{depth}{' + CBAM' if cbam else ''}",
                            "device": device_name(device),
                            "precision": precision,
                            "cycles_per_s": batch * steps / seconds,
                            "ms_per_step": 1000 * seconds / steps,
                            "cycles_per_cpu_s": batch * steps / cpu,
                        }
                    )
    return rows


def epoch_rows(devices: list[torch.device], cycles: int, batch: int = 32) -> list[dict[str, object]]:
    """One whole epoch of `cycles` cycles of ResNet-34 + CBAM in bf16 per device."""
    rows: list[dict[str, object]] = []
    for device in devices:
        seconds, cpu = time_epoch(
            34, True, "bf16", random_batches(cycles, batch, device), random_batches(4 * batch, batch, device, seed=1)
        )
        rows.append({"benchmark": f"epoch of {cycles} cycles", "model": "ResNet-34 + CBAM", "device": device_name(device), "precision": "bf16",
                     "cycles_per_s": cycles / seconds, "ms_per_step": 1000 * seconds / -(-cycles // batch), "cycles_per_cpu_s": cycles / cpu,
                     "epoch_s": seconds})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per row first")
    parser.add_argument(
        "--epoch-cycles", type=int, default=0, help="also time one epoch of this many cycles (3540: ICBHI)"
    )
    parser.add_argument("--no-cpu", action="store_true", help="CUDA rows only (when a GPU is present)")
    args = parser.parse_args()
    devices = ([] if args.no_cpu else [torch.device("cpu")]) + (
        [torch.device("cuda")] if torch.cuda.is_available() else []
    )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch} x 1 x {SHAPE[0]} x {SHAPE[1]}, "
          f"{args.warmup} warmup + {args.steps} timed steps per row; train_one_epoch: focal loss, AdamW, SpecAugment on the device")  # fmt: skip
    print("\n| benchmark | model | device | precision | cycles/s | ms/step | cycles per CPU-s | bf16 / fp32 (CPU-s) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    rows = train_rows(devices, args.batch, args.steps, args.warmup)
    fp32 = {(r["model"], r["device"]): r["cycles_per_cpu_s"] for r in rows if r["precision"] == "fp32"}
    if args.epoch_cycles:
        rows += epoch_rows(devices, args.epoch_cycles, args.batch)
    for r in rows:
        ratio = (
            f"{r['cycles_per_cpu_s'] / fp32[(r['model'], r['device'])]:.2f}"
            if r["precision"] == "bf16" and r["benchmark"] == "train step"
            else ""
        )
        name = r["benchmark"] + (f" ({r['epoch_s']:.2f} s)" if "epoch_s" in r else "")
        print(
            f"| {name} | {r['model']} | {r['device']} | {r['precision']} | {r['cycles_per_s']:.1f} | {r['ms_per_step']:.0f} | {r['cycles_per_cpu_s']:.1f} | {ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
