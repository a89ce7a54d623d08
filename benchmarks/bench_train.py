"""Benchmark: training speed of the real training step and of fit() (not a test).

Rows, all through the project's own code (`make_step`, `train_one_epoch`, `fit`) on random
ICBHI-shaped cycles (1 x 129 x 126) already on the device, focal loss, AdamW as
`make_optimizer` makes it for the device, SpecAugment on the device:

- train step: ResNet-18/34 with and without CBAM, per arithmetic (CPU: fp32, bf16; CUDA:
  fp32, tf32, bf16) and per step (CPU: eager; CUDA: eager and CUDA graph, side by side),
  after WARMUP_STEPS + `--warmup` untimed steps (a CUDA graph is recorded by then).
- `--compile` (CPU): the default network's step with the model under torch.compile, with its
  compile time: why the CPU step stays eager.
- `--fit-cycles N`: whole fit() epochs with validation of ResNet-34 + CBAM, batch 32, N
  training and N x 602 / 3540 validation cycles (3540: ICBHI's training split), in the
  arithmetic `train.precision: auto` picks on the device and per step; the first epoch
  (warm-up, recording) and the mean of the next two.
- `--profile` (CUDA): the share of a step's wall time the GPU computes, from torch.profiler's
  kernel times over 10 steps, per step.

The rows of one table are timed one after the other in one process, so their ratios are
fair on a shared machine even when the absolute figures are not. Run from the repository
root, paste the table into benchmarks/RESULTS_train.md (CPU) or docs/training-speed.md (GPU):

    python -m benchmarks.bench_train --steps 4 --warmup 1
    python -m benchmarks.bench_train --no-cpu --steps 20 --fit-cycles 3540 --profile   # a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from respiro.core.config import TrainParams, load_params
from respiro.core.schemes import SCHEMES
from respiro.model.loss import build_loss
from respiro.model.resnet import build_model
from respiro.training.batches import HeldCycles, Sampling, TrainBatches
from respiro.training.device import to_device
from respiro.training.fit import EpochResult, Validation, fit
from respiro.training.loop import make_optimizer, train_one_epoch
from respiro.training.precision import Arithmetic, autocast_dtype, resolve_arithmetic, set_cuda_fp32
from respiro.training.step import WARMUP_STEPS, EagerStep, make_step

SHAPE = (129, 126)  # frequency bins x frames of an 8 s cycle at 4 kHz, n_fft = hop = 256
ICBHI_VAL_PER_TRAIN = 602 / 3540


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def arithmetics(device: torch.device) -> list[Arithmetic]:
    return ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]


def step_kinds(device: torch.device) -> list[str]:
    return ["eager", "cuda graph"] if device.type == "cuda" else ["eager"]


def train_params(**values: object) -> TrainParams:
    """params.yaml's train group with AdamW at 1e-3, weight decay 1e-4, and `values` in place."""
    bench = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, **values}
    return TrainParams.model_validate({**load_params().train.model_dump(), **bench})


def random_batches(cycles: int, batch: int, device: torch.device, seed: int = 0) -> TrainBatches:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(cycles, 1, *SHAPE, generator=generator).to(device)
    y = torch.randint(0, 4, (cycles,), generator=generator).to(device)
    return TrainBatches(x, y, cycles, Sampling(batch, time_mask=16, freq_mask=8, seed=seed))


def new_step(
    depth: int, cbam: bool, arithmetic: Arithmetic, kind: str, batches: TrainBatches, compiled: bool = False
) -> EagerStep:
    """The step the train stage would make on `batches`' device, captured or not by `kind`."""
    device = batches.device
    if device.type == "cuda":
        set_cuda_fp32(arithmetic)
    torch.manual_seed(0)
    model = to_device(build_model(depth, cbam), device)
    optimizer = make_optimizer(model, train_params(), device=device)
    loss_fn = build_loss("focal", 1.0, None, 4).to(device)
    if compiled:  # the module under torch.compile; the step itself as the train stage runs it
        return EagerStep(torch.compile(model), batches, loss_fn, optimizer, autocast_dtype(arithmetic))
    step = make_step(
        model, batches, loss_fn, optimizer, autocast_dtype(arithmetic), "auto" if kind == "cuda graph" else "off"
    )
    assert step.kind == kind, f"{kind} asked, {step.kind} made"
    return step


def time_epoch(step: EagerStep, batches: TrainBatches, warmup: TrainBatches) -> tuple[float, float, float]:
    """Seconds of the warm-up epoch, and wall-clock and CPU seconds of one epoch over
    `batches`; train_one_epoch ends by reading the loss, which waits for the device. On a CPU
    shared with other jobs the CPU seconds of a one-thread run (OMP_NUM_THREADS=1) measure
    the work; the wall clock measures the queue."""
    started = time.perf_counter()
    train_one_epoch(step, warmup, epoch=1)
    warm = time.perf_counter() - started
    start, cpu = time.perf_counter(), time.process_time()
    train_one_epoch(step, batches, epoch=1)
    return warm, time.perf_counter() - start, time.process_time() - cpu


def train_rows(
    devices: list[torch.device], batch: int = 32, steps: int = 4, warmup: int = 1
) -> list[dict[str, object]]:
    """One row per device x network x arithmetic x step: training cycles/s and ms per step."""
    rows: list[dict[str, object]] = []
    for device in devices:
        timed = random_batches(batch * steps, batch, device)
        warm = random_batches(batch * (WARMUP_STEPS + warmup), batch, device, seed=1)
        for depth in (18, 34):
            for cbam in (False, True):
                for arithmetic in arithmetics(device):
                    for kind in step_kinds(device):
                        _, seconds, cpu = time_epoch(new_step(depth, cbam, arithmetic, kind, timed), timed, warm)
                        rows.append({"benchmark": "train step", "model": f"ResNet-{depth}{' + CBAM' if cbam else ''}",
                                     "device": device_name(device), "precision": arithmetic, "step": kind,
                                     "cycles_per_s": batch * steps / seconds, "ms_per_step": 1000 * seconds / steps,
                                     "cycles_per_cpu_s": batch * steps / cpu})  # fmt: skip
    return rows


def compile_rows(batch: int, steps: int, warmup: int) -> list[dict[str, object]]:
    """The default network's CPU step, eager and with the model under torch.compile (its
    first, compiling epoch timed apart)."""
    # A cold compile, as a user's first run has: inductor's caches in a new folder (read when
    # the first torch.compile call loads inductor, which is below).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    cpu = torch.device("cpu")
    arithmetic = resolve_arithmetic("auto", cpu)
    timed = random_batches(batch * steps, batch, cpu)
    warm = random_batches(batch * (WARMUP_STEPS + warmup), batch, cpu, seed=1)
    rows: list[dict[str, object]] = []
    for compiled in (False, True):
        first, seconds, cpu_s = time_epoch(new_step(34, True, arithmetic, "eager", timed, compiled), timed, warm)
        rows.append({"benchmark": "train step", "model": "ResNet-34 + CBAM", "device": "cpu", "precision": arithmetic,
                     "step": "torch.compile" if compiled else "eager", "cycles_per_s": batch * steps / seconds,
                     "ms_per_step": 1000 * seconds / steps, "cycles_per_cpu_s": batch * steps / cpu_s,
                     "warmup_s": first})  # fmt: skip
    return rows


def fit_rows(devices: list[torch.device], cycles: int, batch: int = 32, epochs: int = 3) -> list[dict[str, object]]:
    """fit() of ResNet-34 + CBAM, validation included, per device and step."""
    rows: list[dict[str, object]] = []
    classes = SCHEMES["four"].classes
    for device in devices:
        arithmetic = resolve_arithmetic("auto", device)
        batches = random_batches(cycles, batch, device)
        val_cycles = round(cycles * ICBHI_VAL_PER_TRAIN)
        val_batches = random_batches(val_cycles, batch, device, seed=2)
        val = HeldCycles(val_batches.x, val_batches.y, batch)
        for kind in step_kinds(device):
            # An epoch's seconds end after validation, whose results come to the host: the GPU's
            # work is in them.
            results: list[EpochResult] = []
            step = new_step(34, True, arithmetic, kind, batches)
            fit(
                step,
                batches,
                Validation(val, classes),
                train_params(epochs=epochs, schedule="cosine"),
                on_epoch=results.append,
            )
            seconds = [e.seconds for e in results]
            rows.append({"benchmark": f"fit epoch, {cycles} + {val_cycles} val cycles", "model": "ResNet-34 + CBAM",
                         "device": device_name(device), "precision": arithmetic, "step": kind,
                         "cycles_per_s": cycles / statistics.mean(seconds[1:]), "first_s": seconds[0],
                         "epoch_s": statistics.mean(seconds[1:])})  # fmt: skip
    return rows


def busy_rows(device: torch.device, batch: int, steps: int = 10) -> list[dict[str, object]]:
    """The GPU's computing share of a step's wall time (kernel time / wall time) per step kind,
    from torch.profiler over `steps` steps of ResNet-34 + CBAM after warm-up."""
    from torch.profiler import ProfilerActivity, profile

    rows: list[dict[str, object]] = []
    arithmetic = resolve_arithmetic("auto", device)
    timed = random_batches(batch * steps, batch, device)
    warm = random_batches(batch * (WARMUP_STEPS + 1), batch, device, seed=1)
    for kind in step_kinds(device):
        step = new_step(34, True, arithmetic, kind, timed)
        train_one_epoch(step, warm, epoch=1)
        torch.cuda.synchronize(device)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            train_one_epoch(step, timed, epoch=1)
            torch.cuda.synchronize(device)
            wall = time.perf_counter() - start
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        gpu_s = sum(e.device_time_total for e in kernels) / 1e6  # a kernel event: its own duration, in us
        rows.append({"benchmark": "GPU busy", "model": "ResNet-34 + CBAM", "device": device_name(device),
                     "precision": arithmetic, "step": kind, "ms_per_step": 1000 * wall / steps,
                     "gpu_ms_per_step": 1000 * gpu_s / steps, "busy": gpu_s / wall, "kernels": len(kernels)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps per row, after the WARMUP_STEPS a graph needs"
    )
    parser.add_argument("--compile", action="store_true", help="also the CPU step under torch.compile")
    parser.add_argument("--fit-cycles", type=int, default=0, help="also fit() epochs of this many cycles (3540: ICBHI)")
    parser.add_argument("--profile", action="store_true", help="also the GPU's busy share of a step (CUDA)")
    parser.add_argument("--no-cpu", action="store_true", help="CUDA rows only (when a GPU is present)")
    args = parser.parse_args()
    cuda = [torch.device("cuda")] if torch.cuda.is_available() else []
    devices = ([] if args.no_cpu else [torch.device("cpu")]) + cuda

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch} x 1 x {SHAPE[0]} x {SHAPE[1]}, "
          f"{WARMUP_STEPS} + {args.warmup} warm-up and {args.steps} timed steps per row", flush=True)  # fmt: skip
    print("\n| benchmark | model | device | precision | step | cycles/s | ms/step | cycles per CPU-s | vs fp32 eager |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    rows = train_rows(devices, args.batch, args.steps, args.warmup)
    if args.compile:
        rows += compile_rows(args.batch, args.steps, args.warmup)
    first: dict[tuple[object, object, object], dict[str, object]] = {}
    for r in rows:
        base = first.setdefault((r["benchmark"], r["model"], r["device"]), r)
        ratio = f"{float(r['cycles_per_s']) / float(base['cycles_per_s']):.2f}x"  # type: ignore[arg-type]
        # (the first row of a network is its fp32 eager step)
        note = f" (first epoch {r['warmup_s']:.1f} s)" if r["step"] == "torch.compile" else ""
        print(f"| {r['benchmark']} | {r['model']} | {r['device']} | {r['precision']} | {r['step']}{note} | {r['cycles_per_s']:.1f} | "
              f"{r['ms_per_step']:.1f} | {r['cycles_per_cpu_s']:.1f} | {ratio} |", flush=True)  # fmt: skip
    if args.fit_cycles:
        print("\n| fit() | model | device | precision | step | first epoch s | epoch s (next two) | cycles/s |")
        print("|---|---|---|---|---|---:|---:|---:|")
        for r in fit_rows(devices, args.fit_cycles, args.batch):
            print(f"| {r['benchmark']} | {r['model']} | {r['device']} | {r['precision']} | {r['step']} | {r['first_s']:.2f} | "
                  f"{r['epoch_s']:.2f} | {r['cycles_per_s']:.0f} |", flush=True)  # fmt: skip
    if args.profile and cuda:
        print("\n| profile | model | device | precision | step | ms/step | GPU ms/step | GPU busy | kernels seen |")
        print("|---|---|---|---|---|---:|---:|---:|---:|")
        for r in busy_rows(cuda[0], args.batch):
            print(f"| {r['benchmark']} | {r['model']} | {r['device']} | {r['precision']} | {r['step']} | {r['ms_per_step']:.1f} | "
                  f"{r['gpu_ms_per_step']:.1f} | {100 * r['busy']:.0f} % | {r['kernels']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
