"""Classifying one recording with a trained model: its annotated cycles, or windows.

Each recording goes through the checkpoint's own audio chain (audio/chain.py) and the
evaluate stage's batching and standardization (data/dataset.cycle_loader, training.prediction.predict),
then is dropped: a folder of any size needs the memory of one recording at a time. Within a
recording, cycles or windows are cut, turned into spectrograms and classified one batch at
a time, so a long recording cut into many windows needs the memory of the recording and one
batch, not of all its windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from respiro.audio.segment import CycleSpan, cycle_span
from respiro.audio.wavio import read_mono
from respiro.core.schemes import scheme_of_classes
from respiro.data.databases import database_of_annotation
from respiro.data.databases.base import AnnotationRef, Database
from respiro.data.dataset import CycleSet, cycle_loader
from respiro.inference.windows import batched, iter_window_spans
from respiro.training.checkpoint import TrainedModel
from respiro.training.prediction import predict

# A recording's annotation: the database that wrote it and where its events are.
RecordingAnnotation = tuple[Database, AnnotationRef]


def annotation_in(file: Path, audio: Path) -> RecordingAnnotation:
    """The annotation of `audio` in the file the user named, its database known by its content."""
    database = database_of_annotation(file)
    return database, database.annotation_in(file, audio)


class SkippedRecording(ValueError):
    """A recording that cannot be classified; the message names the file and why."""


@dataclass(frozen=True)
class RecordingPrediction:
    """The rows of one recording: one per cycle (from its annotation) or per window."""

    file: Path
    unit: str  # "cycle" or "window"
    starts: list[float]  # seconds; for cycles as written in the annotation
    ends: list[float]
    annotated: list[str | None]  # the annotation's own label of each cycle; None for windows
    probabilities: np.ndarray  # (n, C) float64
    cycles_without_audio: int  # annotated cycles left out: zero length or after the audio's end
    # The annotated label as a class of the model's scheme (what agreement is scored on); None
    # for windows, and where the scheme leaves such an event out or does not know its database.
    annotated_classes: list[int | None]

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


@dataclass(frozen=True)
class RecordingInput:
    """What the network sees of one recording: spectrograms `(n, F, T)` and where they lie."""

    unit: str
    starts: list[float]
    ends: list[float]
    annotated: list[str | None]
    spectrograms: np.ndarray
    cycles_without_audio: int


@dataclass(frozen=True)
class Piece:
    """One cycle or window of a recording: its place in seconds, its class if annotated, its samples."""

    start: float
    end: float
    annotated: str | None  # the annotation's own label (its database's)
    span: CycleSpan
    annotated_class: int | None = None  # that label in the model's scheme (annotated_class_of)


def read_recording(trained: TrainedModel, wav: Path) -> np.ndarray:
    """`wav` through the checkpoint's chain up to cutting: resampled and normalized `(time,)`.

    Raises AudioReadError (unreadable file) or SkippedRecording (silent, shorter than one
    STFT window).
    """
    chain = trained.chain
    samples, rate = read_mono(wav)
    if not samples.any():
        raise SkippedRecording(f"{wav}: all samples are zero (silent recording)")
    audio = chain.recording(samples, rate)
    if len(audio) < chain.stft.n_fft:
        raise SkippedRecording(
            f"{wav}: {len(samples) / rate * 1000:.0f} ms of audio, shorter than one STFT window "
            f"({chain.stft.n_fft} samples at {chain.rate} Hz = {chain.stft.n_fft / chain.rate * 1000:.0f} ms)"
        )
    return audio


def annotated_class_of(class_names: tuple[str, ...], database: Database, label: str) -> int | None:
    """A `database` label as a class index of the model whose classes are `class_names`, or
    None where its scheme leaves the label out or the database does not map onto it."""
    try:
        return database.class_of(scheme_of_classes(class_names), label)
    except (KeyError, ValueError):
        return None


def pieces_of(
    trained: TrainedModel,
    wav: Path,
    length: int,
    annotation: RecordingAnnotation | None,
    window_s: float,
    hop_s: float,
) -> tuple[str, Iterator[Piece], int]:
    """`(unit, pieces, cycles without audio)` of a prepared recording of `length` samples: its
    annotated cycles (read and checked now, by the database that wrote `annotation`), or,
    when `annotation` is None, its windows, made lazily. Raises the database's format error
    or SkippedRecording (no cycle with audio, a record left out)."""
    rate = trained.chain.rate
    if annotation is None:
        windows = (
            Piece(s.start / rate, s.end / rate, None, s) for s in iter_window_spans(length, rate, window_s, hop_s)
        )
        return "window", windows, 0
    database, ref = annotation
    found = database.read_annotation(ref)
    where = f"{ref.file}" + (f" ({ref.recording})" if ref.recording else "")
    if found.excluded:
        raise SkippedRecording(f"{where}: {found.excluded}")
    cycles = found.events
    if not cycles:
        raise SkippedRecording(f"{where}: annotation file has no cycles")
    kept = [
        Piece(c.start, c.end, c.source_label, s, annotated_class_of(trained.class_names, database, c.source_label))
        for c in cycles
        if (s := cycle_span(c.start, c.end, rate, length)) is not None
    ]
    if not kept:
        raise SkippedRecording(f"{where}: none of its {len(cycles)} cycles has audio in {wav.name}")
    return "cycle", iter(kept), len(cycles) - len(kept)


def spectrogram_batches(
    trained: TrainedModel, audio: np.ndarray, pieces: Iterator[Piece], batch_size: int
) -> Iterator[tuple[list[Piece], np.ndarray]]:
    """`(pieces, spectrograms (len(pieces), F, T))` for consecutive groups of `batch_size`."""
    chain = trained.chain
    for group in batched(pieces, batch_size):
        yield group, chain.spectrograms(chain.cycles(audio, [p.span for p in group]))


def prepare_recording(
    trained: TrainedModel, wav: Path, annotation: RecordingAnnotation | None, window_s: float, hop_s: float
) -> RecordingInput:
    """Every spectrogram of `wav` at once, made with the checkpoint's audio chain: one per
    annotated cycle of `annotation`, or, when it is None, one per window (for tests and
    tools that need them all; classify_recording holds one batch at a time).

    Raises AudioReadError, a database's format error or SkippedRecording (see read_recording, pieces_of).
    """
    audio = read_recording(trained, wav)
    unit, pieces, without_audio = pieces_of(trained, wav, len(audio), annotation, window_s, hop_s)
    groups = list(spectrogram_batches(trained, audio, pieces, 256))
    kept = [p for group, _ in groups for p in group]
    specs = np.concatenate([s for _, s in groups]) if groups else np.zeros((0, *trained.chain.shape), np.float32)
    return RecordingInput(
        unit, [p.start for p in kept], [p.end for p in kept], [p.annotated for p in kept], specs, without_audio
    )


def classify_spectrograms(trained: TrainedModel, specs: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities `(n, C)` float64 of spectrograms `(n, F, T)`, standardized and
    batched exactly as the evaluate stage does."""
    index = np.arange(len(specs))
    cycles = CycleSet(specs, np.zeros(len(specs), np.int64), index, trained.mean, trained.std)
    loader = cycle_loader(cycles, batch_size, device=trained.device)
    probs, _ = predict(trained.model, loader, trained.device)
    return probs


def classify_recording(
    trained: TrainedModel,
    wav: Path,
    annotation: RecordingAnnotation | None,
    window_s: float,
    hop_s: float,
    batch_size: int,
) -> RecordingPrediction:
    """One recording's cycles (or windows) and their class probabilities, `batch_size` at a
    time: cut, spectrograms, one forward pass (the same batches as one pass over all of
    them would make, so the numbers are those of the evaluate stage's batching)."""
    audio = read_recording(trained, wav)
    unit, pieces, without_audio = pieces_of(trained, wav, len(audio), annotation, window_s, hop_s)
    starts: list[float] = []
    ends: list[float] = []
    annotated: list[str | None] = []
    classes: list[int | None] = []
    probs: list[np.ndarray] = []
    for group, specs in spectrogram_batches(trained, audio, pieces, batch_size):
        probs.append(classify_spectrograms(trained, specs, batch_size))
        starts += [p.start for p in group]
        ends += [p.end for p in group]
        annotated += [p.annotated for p in group]
        classes += [p.annotated_class for p in group]
    return RecordingPrediction(wav, unit, starts, ends, annotated, np.concatenate(probs), without_audio, classes)
