"""Export a trained checkpoint to ONNX for deployment, checked against PyTorch.

    respiro export [--model models/model.pt] [--out models/model.onnx]
        [--spectrograms data/spectrograms] [--check 64]

The file takes log-power spectrograms (batch, 1, F, T) and gives class probabilities; the
per-bin standardization is inside it, and its metadata hold the class names, every step that
makes the input from a recording (`input_recipe`: reading, the resampler's kernel,
normalization, cutting and padding, STFT, scale; enough for numpy and scipy to rebuild it,
to 1e-5 in the probabilities: tests/test_predict.py) and which data the model was trained on. Before the file is put in
place, onnxruntime's probabilities on real spectrograms of the pipeline are compared with
PyTorch's: a difference above 1e-4 stops the export and leaves nothing behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from respiro.commands.options import add_model_option, add_output_option
from respiro.core.cli import run_stage
from respiro.core.errors import MissingInputError, StageError
from respiro.core.outputs import StageTimer, atomic_file, check_output_file
from respiro.data.dataset import load_spectrograms
from respiro.inference.onnx import export_onnx, onnx_probabilities
from respiro.inference.recording import classify_spectrograms
from respiro.training.checkpoint import load_checkpoint

TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted: float32 kernels differ in summation order only


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="respiro export",
        description=(
            "Export a trained checkpoint to one ONNX file (standardization and softmax inside: "
            "log-power spectrogram (batch, 1, F, T) in, probabilities out; dynamic batch; its metadata "
            "'input_recipe' gives every step from a recording to that input), after "
            f"checking it with onnxruntime against PyTorch on real spectrograms (max difference <= {TOLERANCE:g})."
        ),
    )
    add_model_option(parser)
    add_output_option(parser, "models/model.onnx", "ONNX file written")
    parser.add_argument(
        "--spectrograms",
        type=Path,
        default=Path("data/spectrograms"),
        help="the stft stage's output folder, whose spectrograms check the export; they must have the checkpoint's shape (default: %(default)s)",
    )
    parser.add_argument(
        "--check", type=int, default=64, help="how many of them, spread over the folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check < 1:
        parser.error(f"--check must be >= 1; got {args.check}")
    return args


def check_inputs(folder: Path, shape: tuple[int, int], count: int) -> np.ndarray:
    """Up to `count` spectrograms `(n, F, T)` spread evenly over the stft stage's `folder`."""
    if not (folder / "spectrograms.npy").is_file():
        raise MissingInputError(
            f"{folder}: no spectrograms.npy to check the export with; run the pipeline (dvc repro) or pass --spectrograms"
        )
    specs, _ = load_spectrograms(folder)
    if specs.shape[1:] != shape:
        raise StageError(
            f"{folder} holds {specs.shape[1]} x {specs.shape[2]} spectrograms but the checkpoint takes {shape[0]} x {shape[1]}: its stft params differ; rerun the pipeline or pass --spectrograms"
        )
    index = np.unique(np.linspace(0, len(specs) - 1, min(count, len(specs))).round().astype(int))
    return np.asarray(specs[index], dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    timer = StageTimer("export")
    inputs = [args.model, args.spectrograms / "spectrograms.npy"]
    check_output_file(args.out, (".onnx",), inputs)
    trained = load_checkpoint(args.model)
    specs = check_inputs(args.spectrograms, trained.chain.shape, args.check)
    with atomic_file(args.out, (".onnx",), inputs) as tmp:
        opset = export_onnx(trained, tmp)
        difference = float(np.abs(onnx_probabilities(tmp, specs) - classify_spectrograms(trained, specs, 64)).max())
        if not difference <= TOLERANCE:
            raise StageError(
                f"onnxruntime and PyTorch differ by {difference:.2e} > {TOLERANCE:g} on {len(specs)} spectrograms; {args.out} not written"
            )
        size = tmp.stat().st_size
    timer.done(
        f"{args.model} -> {args.out} ({size / 2**20:.1f} MiB, opset {opset}, input (batch, 1, {trained.chain.shape[0]}, {trained.chain.shape[1]})); "
        f"onnxruntime vs PyTorch on {len(specs)} spectrograms: max difference {difference:.1e}; trained on {trained.provenance['data_source']}"
    )


def run(argv: list[str] | None = None) -> None:
    """`respiro export ...`: expected errors and Ctrl-C end with one line."""
    run_stage("export", lambda: main(argv), resume="respiro export ... (the same command)")
