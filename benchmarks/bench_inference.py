"""Inference benchmark: the deployable model's size and CPU time per cycle, PyTorch vs ONNX.

Exports the checkpoint with the export command's function (src/respiro/commands/export.py) to a
temporary file, then times, on CPU, the probabilities of a batch of spectrograms:

- PyTorch: predict's own path (src/inference/recording.classify_spectrograms: per-bin
  standardization, channels_last, float32, softmax);
- onnxruntime: the exported file (standardization and softmax inside), CPUExecutionProvider.

Inputs are the stft stage's spectrograms when the folder is there, else random ones drawn
around the checkpoint's per-bin statistics (the time does not depend on the values). Run from
the repository root and paste the printed table into benchmarks/RESULTS_inference.md:

    python -m benchmarks.bench_inference --model models/model.pt --batches 1 32 --repeats 5 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from respiro.data.dataset import load_spectrograms
from respiro.inference.onnx import export_onnx, onnx_probabilities
from respiro.inference.recording import classify_spectrograms
from respiro.training.checkpoint import load_checkpoint


def inputs(folder: Path, trained, count: int) -> tuple[np.ndarray, str]:
    """`count` spectrograms `(count, F, T)` and where they came from."""
    if (folder / "spectrograms.npy").is_file():
        specs, _ = load_spectrograms(folder)
        if specs.shape[1:] == trained.chain.shape and len(specs):
            index = np.arange(count) % len(specs)
            return np.asarray(specs[index], dtype=np.float32), f"{folder} (real)"
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((count, *trained.chain.shape)).astype(np.float32)
    return trained.mean[None, :, None] + trained.std[None, :, None] * noise, "random around the training statistics"


def ms_per_cycle(
    runners: dict[str, Callable[[np.ndarray], np.ndarray]], batch: np.ndarray, repeats: int, rounds: int = 2
) -> dict[str, float]:
    """Best timing of each runner on `batch`, in ms per cycle: `rounds` rounds in which every
    runner in turn gets one warm-up and `repeats` timed runs in a row (a busy machine then
    slows them alike; back-to-back runs of one runner keep the other's spinning worker
    threads, onnxruntime's and OpenMP's, from eating into its time)."""
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            run(batch)
            for _ in range(repeats):
                start = time.perf_counter()
                run(batch)
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: 1000 * seconds / len(batch) for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"), help="checkpoint (default: %(default)s)")
    parser.add_argument(
        "--spectrograms",
        type=Path,
        default=Path("data/spectrograms"),
        help="input spectrograms when present (default: %(default)s)",
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes timed (default: 1 32)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per setting; the best is kept (default: %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="intra-op threads of both runtimes (default: torch's, %(default)s)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    trained = load_checkpoint(args.model)
    specs, origin = inputs(args.spectrograms, trained, max(args.batches))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        opset = export_onnx(trained, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        runners = {
            "PyTorch (predict's path)": lambda x: classify_spectrograms(trained, x, len(x)),
            "onnxruntime": lambda x: session.run(None, {"spectrogram": x[:, None]})[0],
        }
        difference = float(
            np.abs(onnx_probabilities(onnx_path, specs) - classify_spectrograms(trained, specs, 64)).max()
        )
        rows = [
            (name, batch, ms)
            for batch in args.batches
            for name, ms in ms_per_cycle(runners, specs[:batch], args.repeats).items()
        ]
        onnx_size = onnx_path.stat().st_size

    print(
        f"model: {trained.arch.label(trained.params['model']['cbam'])}, input (batch, 1, {trained.chain.shape[0]}, {trained.chain.shape[1]}), {sum(p.numel() for p in trained.model.parameters()):,} parameters"
    )
    print(
        f"files: checkpoint {args.model.stat().st_size / 2**20:.1f} MiB, ONNX (opset {opset}) {onnx_size / 2**20:.1f} MiB"
    )
    print(f"inputs: {origin}; max |p_onnx - p_torch| = {difference:.1e}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads each"
    )
    print()
    print("| runtime | batch | ms per cycle | cycles/s |")
    print("|---|---:|---:|---:|")
    for name, batch, ms in rows:
        print(f"| {name} | {batch} | {ms:.1f} | {1000 / ms:.0f} |")


if __name__ == "__main__":
    main()
