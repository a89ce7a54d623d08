"""Classify recordings with a trained checkpoint: one CSV row per cycle (or window).

    respiro predict RECORDING.wav [MORE.wav | FOLDER ...] [--model models/model.pt]
        [--annotations auto|none|PATH] [--window S --hop S [--allow-gaps]] [--out predictions.csv]
        [--report report.html [--report-maps N]]

The audio chain (sample rate, normalization, cycle length and padding, STFT, per-bin
standardization) is the one the checkpoint was trained with, read from it. A research
tool's screening aid, not a diagnosis.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from respiro.commands.options import add_model_option, add_output_option
from respiro.core.cli import run_stage
from respiro.core.errors import (
    AudioReadError,
    DatabaseFormatError,
    IcbhiFormatError,
    MissingInputError,
    OptionError,
    StageError,
)
from respiro.core.outputs import StageTimer, atomic_file, check_output_file
from respiro.data.databases import database_of_annotation, find_annotation
from respiro.inference.page import RecordingSection, one_class_note, page_summary, recording_section, report_page
from respiro.inference.recording import (
    RecordingAnnotation,
    RecordingPrediction,
    SkippedRecording,
    annotation_in,
    classify_recording,
)
from respiro.inference.report import recording_report
from respiro.inference.windows import check_windows, default_window
from respiro.training.checkpoint import TrainedModel, load_checkpoint
from respiro.training.device import resolve_device, use_model_kernels

AUDIO_SUFFIXES = (".wav",)  # what a FOLDER argument is searched for (any file may be named directly)


def columns(class_names: tuple[str, ...]) -> list[str]:
    """The output's columns for a model of `class_names` (its checkpoint's)."""
    return [*COLUMNS_BEFORE, *(f"p_{name}" for name in class_names), "model_trained_on"]


COLUMNS_BEFORE = [
    "file",
    "recording",
    "unit",
    "index",
    "start",
    "end",
    "annotated_label",
    "predicted_label",
]
OUT_SUFFIXES = (".csv",)
REPORT_SUFFIXES = (".html",)
DISCLAIMER = "a research tool's screening aid, not a diagnosis"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="respiro predict",
        description=(
            "Classify respiratory sound recordings into the classes of a trained checkpoint (its class scheme's: "
            "by default the paper's Normal, Crackle, Wheeze, Both) "
            "using exactly the audio chain it was trained with (read from the checkpoint). "
            f"The output is {DISCLAIMER}; a model trained on the synthetic corpus knows nothing about "
            "real patients (the model_trained_on column and the summary say which data it saw)."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="RECORDING_OR_FOLDER",
        help="audio files (any rate, PCM width or channel count soundfile reads) or folders searched recursively for .wav files",
    )
    add_model_option(parser)
    parser.add_argument(
        "--annotations",
        default="auto",
        metavar="auto|none|PATH",
        help=(
            "where the cycle annotations come from, in any database's format (ICBHI .txt: start end crackles "
            "wheezes; SPRSound .json): auto (default) uses the annotation a database keeps with each recording "
            "(RECORDING.txt or RECORDING.json beside it) when present; none classifies windows; an annotation "
            "file (of one recording) or a folder holding <recording stem>.txt or .json files. A recording without "
            "annotation is cut into windows"
        ),
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help=(
            "window length in seconds for recordings without annotation (default: the median length of "
            "the model's training cycles, stored in its checkpoint; about 2.7 s for ICBHI's cycles, which "
            "last 0.2-16 s); each window is fit to the model's cycle length as a short cycle is. At least "
            "one STFT window of the model (stft.n_fft samples at its rate: 0.064 s with the default params)"
        ),
    )
    parser.add_argument(
        "--hop",
        type=float,
        default=None,
        help=(
            "seconds between window starts (default: half the window, so every event shorter than half a "
            "window lies wholly in some window). At least one STFT window, as --window; at most the window "
            "(and the model's cycle length, which a longer window is cropped to), so that no audio goes "
            "unclassified, unless --allow-gaps"
        ),
    )
    parser.add_argument(
        "--allow-gaps",
        action="store_true",
        help="accept a --hop longer than the window: the audio between windows is not classified",
    )
    add_output_option(parser, "predictions.csv", "CSV written, one row per cycle or window")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE.html",
        help=(
            "also write one self-contained page (opens offline: pictures and audio inside it) with, per "
            "recording, the spectrogram, the class probabilities over time, a player that plays the cycle or "
            "window clicked, and where the model looked (CBAM attention, Grad-CAM); a summary table first. "
            "Follows --out's rules: an existing .html file is replaced, a folder or an input is refused"
        ),
    )
    parser.add_argument(
        "--report-maps",
        type=int,
        default=4,
        metavar="N",
        help="per recording, draw the maps of at most N units predicted abnormal, the most confident first (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="cycles or windows per forward pass; a recording is cut, transformed and classified this many at a time, so memory does not grow with its length or the number of windows (default: %(default)s)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present, else CPU (default)"
    )
    args = parser.parse_args(argv)
    for option, value in (("--window", args.window), ("--hop", args.hop)):
        # argparse's float() takes "nan" and "inf": refused here, with the option's name.
        if value is not None and not (math.isfinite(value) and value > 0):
            raise OptionError(f"{option} {value:g}: must be a finite number of seconds > 0")
    if args.batch_size < 1:
        raise OptionError(f"--batch-size {args.batch_size}: must be >= 1")
    if args.report_maps < 0:
        raise OptionError(f"--report-maps {args.report_maps}: must be >= 0")
    return args


def expand_inputs(inputs: list[Path]) -> Iterator[Path]:
    """Each input file as given; each folder's audio files (AUDIO_SUFFIXES), sorted, recursively.
    A path that does not exist is yielded as it is, for the caller to report and skip."""
    for path in inputs:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        else:
            yield path


def check_annotations(setting: str, files: list[Path]) -> None:
    """Stop before any work when `--annotations PATH` cannot apply to `files`."""
    if setting in ("auto", "none") or Path(setting).is_dir():
        return
    if not Path(setting).is_file():
        raise MissingInputError(f"--annotations {setting}: no such file or folder")
    database = database_of_annotation(Path(setting))
    if len(files) != 1 and not database.annotation_holds_many:
        raise StageError(
            f"--annotations {setting} is one file, for one recording; give a folder of <recording stem>.txt files for {len(files)}"
        )


def annotation_for(wav: Path, setting: str) -> RecordingAnnotation | None:
    """The annotation of `wav` under `--annotations` (see parse_args), or None for windows."""
    if setting == "none":
        return None
    if setting == "auto":
        return find_annotation(wav)
    if Path(setting).is_dir():
        # The folder stands where the recording's own folder would (<stem>.txt, <stem>.json, ...).
        return find_annotation(Path(setting) / wav.name)
    return annotation_in(Path(setting), wav)


def rows_of(result: RecordingPrediction, trained_on: str, class_names: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """One row per cycle or window; `class_names` are the model's (annotated labels are the
    annotation file's own: ICBHI's four, SPRSound's seven types)."""
    for n, (start, end, annotated, probs) in enumerate(
        zip(result.starts, result.ends, result.annotated, result.probabilities), start=1
    ):
        yield {
            "file": str(result.file),
            "recording": result.file.stem,
            "unit": result.unit,
            "index": str(n),
            "start": f"{start:g}" if result.unit == "cycle" else f"{start:.3f}",
            "end": f"{end:g}" if result.unit == "cycle" else f"{end:.3f}",
            "annotated_label": annotated or "",
            "predicted_label": class_names[int(probs.argmax())],
            **{f"p_{name}": f"{probs[c]:.6f}" for c, name in enumerate(class_names)},
            "model_trained_on": trained_on,
        }


def summary_of(result: RecordingPrediction, window: float, hop: float, class_names: tuple[str, ...]) -> str:
    """`file: 12 cycles: Normal 10, Crackle 2, Wheeze 0, Both 0; abnormal 17 %`."""
    counts = np.bincount(result.predicted, minlength=len(class_names))
    total = int(counts.sum())
    mix = ", ".join(f"{name} {c}" for name, c in zip(class_names, counts))
    unit = (
        f"{total} cycles"
        if result.unit == "cycle"
        else f"{total} windows of {window:g} s every {hop:g} s (no annotation: windows, not cycles)"
    )
    extra = (
        f"; {result.cycles_without_audio} annotated cycles without audio left out"
        if result.cycles_without_audio
        else ""
    )
    return f"{result.file}: {unit}: {mix}; abnormal {100 * (total - counts[0]) / total:.0f} %{extra}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    timer = StageTimer("predict")
    files = list(expand_inputs(args.inputs))
    if not files:
        raise StageError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {', '.join(map(str, args.inputs))}")
    check_annotations(args.annotations, files)
    inputs = [*files, args.model] + ([] if args.annotations in ("auto", "none") else [Path(args.annotations)])
    check_output_file(args.out, OUT_SUFFIXES, inputs)
    if args.report is not None:
        check_output_file(args.report, REPORT_SUFFIXES, inputs)
    trained: TrainedModel = load_checkpoint(args.model, resolve_device(args.device, "--device"))
    # A strict model predicts on strict kernels: the command may start again with them.
    strict = use_model_kernels(trained.kernels, trained.device)["kernels"] == "strict"
    trained_on = trained.provenance["data_source"]
    window, hop = default_window(trained.cycle_seconds, args.window, args.hop)
    check_windows(trained.chain, window, hop, args.allow_gaps)
    kernels = " (strict kernels)" if strict else ""
    print(
        f"predict: model {args.model}: {trained.describe()}{kernels}; output is {DISCLAIMER}",
        file=sys.stderr,
        flush=True,
    )
    units: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    skipped: list[str] = []
    results: list[RecordingPrediction] = []
    sections: list[RecordingSection] = []  # each recording's part of the report, gathered as it is done
    with atomic_file(args.out, OUT_SUFFIXES, inputs) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(trained.class_names), lineterminator="\n")
        writer.writeheader()
        bar = tqdm(files, desc="predict", unit="file", leave=False, disable=len(files) < 2)
        for wav in bar:
            try:
                if not wav.is_file():
                    raise SkippedRecording(f"{wav}: no such file")
                annotation = annotation_for(wav, args.annotations)
                result = classify_recording(trained, wav, annotation, window, hop, args.batch_size)
            except (AudioReadError, IcbhiFormatError, DatabaseFormatError, SkippedRecording) as err:
                skipped.append(str(wav))
                bar.write(f"predict: skipped {' '.join(str(err).splitlines())}", file=sys.stderr)
                continue
            writer.writerows(rows_of(result, trained_on, trained.class_names))
            units[result.unit] += len(result.starts)
            predicted.update(trained.class_names[c] for c in result.predicted)
            bar.write(summary_of(result, window, hop, trained.class_names))
            if args.report is not None:
                results.append(result)
                report = recording_report(trained, result, annotation, window, hop, args.report_maps)
                sections.append(recording_section(report, trained.class_names))
        bar.close()
        if len(skipped) == len(files):
            raise StageError(f"none of the {len(files)} files could be classified (each reason above); nothing written")
        if args.report is not None:
            write_report(args.report, inputs, trained, results, sections, skipped)
    counts = np.array([predicted[name] for name in trained.class_names])
    what = " and ".join(f"{u}s" for u in sorted(units))
    note = one_class_note(counts, trained.class_names, what)
    report_note = f" and {args.report}" if args.report is not None else ""
    timer.done(
        f"{len(files) - len(skipped)} of {len(files)} files classified ({len(skipped)} skipped), {units['cycle']} cycles, "
        f"{units['window']} windows -> {args.out}{report_note}; {note + '; ' if note else ''}model trained on {trained_on}"
    )


def write_report(
    path: Path,
    inputs: list[Path],
    trained: TrainedModel,
    results: list[RecordingPrediction],
    sections: list[RecordingSection],
    skipped: list[str],
) -> None:
    """The report page (inference/page.py), written atomically as --out is."""
    origin = trained.provenance
    summary = page_summary(results, trained.class_names, trained.describe(), origin.get("note"), skipped, DISCLAIMER)
    with atomic_file(path, REPORT_SUFFIXES, inputs) as tmp:
        tmp.write_text(report_page(summary, sections), encoding="utf-8")


def run(argv: list[str] | None = None) -> None:
    """`respiro predict ...`: expected errors and Ctrl-C end with one line."""
    run_stage("predict", lambda: main(argv), resume="respiro predict ... (the same command)")
