"""Window mode's peak memory: `respiro predict --annotations none` on one long recording at
several hops, each run in its own process (peak RSS from the kernel's rusage of that process).

Windows are cut, transformed and classified a batch at a time (src/respiro/inference/
recording.py), so the peak should not grow with the number of windows (the hop) and grow
with the recording's length only by the recording itself. This script checks that:

    python -m benchmarks.bench_windows --minutes 10 --hops min 1.35 [--model models/model.pt]
    python -m benchmarks.bench_windows --minutes 10 --hops min 1.0 --arch resnet18 --no-cbam --duration 2

Without --model it saves an untrained checkpoint of params.yaml's chain and network (with
--arch/--no-cbam/--duration applied) in a temporary folder: memory and time do not depend
on the weights' values. `min` is the smallest hop predict accepts, one STFT window of the
chain (stft.n_fft / resample.rate seconds). The recording is noise with tones at 44.1 kHz,
16-bit, as the ICBHI's AKGC417L recordings are, so resampling is part of the run. Paste the
printed table into benchmarks/RESULTS_inference.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from respiro.core.config import ModelParams
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.model.registry import ARCHITECTURES, create_model, get_architecture
from respiro.training.checkpoint import CheckpointContents, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def untrained_checkpoint(path: Path, arch: str | None, cbam: bool | None, duration: float | None) -> dict:
    """A checkpoint in the train stage's format with random weights and params.yaml's groups
    (overridden as asked); returns its params."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update({k: v for k, v in (("arch", arch), ("cbam", cbam)) if v is not None})
    if duration is not None:
        params["segment"]["duration"] = duration
    m = params["model"]
    bins = params["stft"]["n_fft"] // 2 + 1
    torch.manual_seed(0)
    save_checkpoint(  # the train stage's writer: the format stays the one place's
        path,
        CheckpointContents(
            state_dict=create_model(ModelParams(**m), len(CLASS_NAMES)).state_dict(),
            class_names=CLASS_NAMES,
            params=params,
            input_mean=np.full(bins, -8.0, dtype=np.float32),
            input_std=np.full(bins, 3.0, dtype=np.float32),
            epoch=1,
            val_scores={"icbhi_score": None, "se": None, "sp": None},
            cycle_seconds_median=2.7,  # ICBHI's median cycle: the default window
        ),
    )
    return params


def long_recording(path: Path, minutes: float, rate: int = 44100) -> None:
    """Noise with a few tones, 16-bit, written in one-minute blocks (memory stays small)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for block in range(int(np.ceil(minutes))):
            n = int(rate * min(60.0, minutes * 60 - block * 60))
            t = (np.arange(n) + block * 60 * rate) / rate
            f.write(
                (
                    0.05 * rng.standard_normal(n)
                    + 0.1 * np.sin(2 * np.pi * 250 * t) * (np.sin(2 * np.pi * 0.25 * t) > 0)
                ).astype(np.float32)
            )


def peak_run(cmd: list[str], logs: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, last stdout line) of one command, in its own process."""
    start = time.perf_counter()
    with (logs / "out.txt").open("w") as out, (logs / "err.txt").open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(logs / 'err.txt').read_text()}")
    return wall, usage.ru_maxrss / 1024, (logs / "out.txt").read_text().strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0], help="recording lengths (default: 10)")
    parser.add_argument(
        "--hops", nargs="+", default=["min", "1.35"], help="hops in seconds, or min (default: min 1.35)"
    )
    parser.add_argument("--model", type=Path, help="a trained checkpoint (default: an untrained one of params.yaml)")
    parser.add_argument("--arch", choices=list(ARCHITECTURES), help="model.arch of the untrained checkpoint")
    parser.add_argument("--no-cbam", dest="cbam", action="store_false", default=None)
    parser.add_argument("--duration", type=float, help="segment.duration of the untrained checkpoint")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = args.model or tmp / "untrained.pt"
        params = (
            torch.load(model, weights_only=True)["params"]
            if args.model
            else untrained_checkpoint(model, args.arch, args.cbam, args.duration)
        )
        low = params["stft"]["n_fft"] / params["resample"]["rate"]
        m = params["model"]
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
            f"torch {torch.__version__}; model {get_architecture(m['arch']).label(m['cbam'])} "
            f"({'given' if args.model else 'untrained'}), {params['segment']['duration']:g} s cycles at {params['resample']['rate']} Hz; "
            f"batch {args.batch_size}; window 2.7 s (default); min hop {low:g} s",
            file=sys.stderr,
        )
        print("| recording | hop (s) | windows | peak RSS (MiB) | wall (s) |\n|---|---:|---:|---:|---:|")
        for minutes in args.minutes:
            wav = tmp / f"long_{minutes:g}min.wav"
            long_recording(wav, minutes)
            for hop in args.hops:
                hop_s = low if hop == "min" else float(hop)
                cmd = [sys.executable, "-m", "respiro", "predict", str(wav), "--model", str(model), "--annotations", "none",
                       "--hop", repr(hop_s), "--device", "cpu", "--batch-size", str(args.batch_size), "--out", str(tmp / "out.csv")]  # fmt: skip
                wall, rss, _ = peak_run(cmd, tmp)
                windows = sum(1 for _ in (tmp / "out.csv").open()) - 1
                print(
                    f"| {minutes:g} min, 44.1 kHz | {hop_s:g}{' (min)' if hop == 'min' else ''} | {windows} | {rss:.0f} | {wall:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
