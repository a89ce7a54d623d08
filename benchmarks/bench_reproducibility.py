"""Benchmark: what moves the training bytes and the first epoch, and what strict kernels cost.

Two tables, each printed as Markdown (paste them into benchmarks/RESULTS_reproducibility.md):

--trace   In a throw-away copy of the project (default params): the data stages once, then
          the real train stage for one epoch per setting, each in its own process. Prints
          the first epoch's mean training loss and its relative distance from the default
          run's: settings that only change the kernels (fp32, strict) against changes to the
          method (loss.gamma, model.cbam, train.seed, train.lr). tests/machine.py's
          TRACE_RTOL sits between the two groups.
--speed   One training step of ResNet-34 + CBAM on a batch of 32 ICBHI-shaped cycles, per
          kernel mode (bf16, fp32, strict), each in a fresh process with the stage's own
          kernel settings (core/kernels.py, training/device.py), timed side by side; with a
          hash of the parameters after the steps, the cross-CPU micro-test: the strict
          hash of one machine against another's (same code, same --steps).

    python -m benchmarks.bench_reproducibility --trace --speed
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tests.conftest import make_project_copy, run, set_params
from tests.machine import TRACE, first_losses

# (label, params overrides): kernel-only settings first, then changes to the method.
TRACE_SETTINGS = [
    ("default (bf16 here)", {}),
    ("train.precision=fp32", {"train": {"precision": "fp32"}}),
    ("train.precision=strict", {"train": {"precision": "strict"}}),
    ("loss.gamma=2", {"loss": {"gamma": 2.0}}),
    ("model.cbam=false", {"model": {"cbam": False}}),
    ("train.seed=1", {"train": {"seed": 1}}),
    ("train.lr=0.003", {"train": {"lr": 0.003}}),
]

STEP = """
import json, sys, time
from respiro.core.kernels import use_kernels
mode = sys.argv[1]
use_kernels("strict" if mode == "strict" else "default")
import torch
from respiro.model.loss import build_loss
from respiro.model.resnet import build_model
from respiro.training.device import set_kernels
from respiro.training.precision import autocast
set_kernels("strict" if mode == "strict" else "default")
torch.manual_seed(0)
model = build_model(34, True).to(memory_format=torch.channels_last)
g = torch.Generator().manual_seed(1)
x = torch.randn(32, 1, 129, 126, generator=g).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 4, (32,), generator=g)
loss_fn, opt = build_loss("focal", 1.0, None), torch.optim.AdamW(model.parameters(), lr=1e-3)
dtype = torch.bfloat16 if mode == "bf16" else None
walls, cpus = [], []
for step in range(int(sys.argv[2]) + 1):
    t, c = time.perf_counter(), time.process_time()
    with autocast(torch.device("cpu"), dtype):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step:  # the first step warms up
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
import hashlib
digest = hashlib.sha256()
for name, p in model.named_parameters():
    digest.update(name.encode())
    digest.update(p.detach().contiguous().numpy().tobytes())
print(json.dumps({"walls": walls, "cpus": cpus, "threads": torch.get_num_threads(), "hash": digest.hexdigest()[:16]}))
"""


def trace_table() -> list[str]:
    rows = ["| setting | epoch-1 training loss | distance from the default |", "|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project_copy(Path(tmp) / "project")
        run(["dvc", "repro", "pretrained", "stft"], project, timeout=1800)
        original = (project / "params.yaml").read_text()
        base = None
        for label, overrides in TRACE_SETTINGS:
            (project / "params.yaml").write_text(original)
            set_params(project, {**overrides, "train": {**overrides.get("train", {}), "epochs": 1}})
            run([sys.executable, "-m", "stages.train"], project, timeout=3600)
            [loss] = first_losses((project / TRACE).read_text())
            base = loss if base is None else base
            rows.append(f"| {label} | {loss:.6f} | {abs(loss - base) / base:.2%} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def speed_table(steps: int) -> list[str]:
    rows = [
        "| kernels | step wall s (median) | step CPU s (median) | x bf16 wall | threads | parameters after the steps |",
        "|---|---:|---:|---:|---:|---|",
    ]
    base = None
    for mode in ("bf16", "fp32", "strict"):
        out = subprocess.run(
            [sys.executable, "-c", STEP, mode, str(steps)], cwd=ROOT, capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        wall, cpu = statistics.median(result["walls"]), statistics.median(result["cpus"])
        base = wall if base is None else base
        rows.append(f"| {mode} | {wall:.2f} | {cpu:.2f} | {wall / base:.1f} | {result['threads']} | {result['hash']} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trace", action="store_true", help="first-epoch loss per setting (minutes)")
    parser.add_argument("--speed", action="store_true", help="one training step per kernel mode")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per kernel mode (after one warm-up)")
    args = parser.parse_args()
    if not (args.trace or args.speed):
        parser.error("give --trace, --speed or both")
    if args.speed:
        print("\n".join(speed_table(args.steps)) + "\n")
    if args.trace:
        print("\n".join(trace_table()))


if __name__ == "__main__":
    main()
