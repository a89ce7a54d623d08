"""Classifying one recording with a trained model: its annotated cycles, or windows.

Each recording goes through the checkpoint's own audio chain (src/audio/chain.py) and the
evaluate stage's batching and standardization (src/dataset.cycle_loader, src/training.predict),
then is dropped: a folder of any size needs the memory of one recording at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from respiro.audio.segment import CycleSpan, cycle_span
from respiro.audio.wavio import read_mono
from respiro.data.dataset import cycle_loader
from respiro.data.icbhi import read_annotations
from respiro.training.checkpoint import TrainedModel
from respiro.inference.windows import window_spans
from respiro.training.loop import predict

class SkippedRecording(ValueError):
    """A recording that cannot be classified; the message names the file and why."""


@dataclass(frozen=True)
class RecordingPrediction:
    """The rows of one recording: one per cycle (from its annotation) or per window."""

    file: Path
    unit: str  # "cycle" or "window"
    starts: list[float]  # seconds; for cycles as written in the annotation
    ends: list[float]
    annotated: list[int | None]  # the annotation's class of each cycle; None for windows
    probabilities: np.ndarray  # (n, C) float64
    cycles_without_audio: int  # annotated cycles left out: zero length or after the audio's end

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


@dataclass(frozen=True)
class RecordingInput:
    """What the network sees of one recording: spectrograms `(n, F, T)` and where they lie."""

    unit: str
    starts: list[float]
    ends: list[float]
    annotated: list[int | None]
    spectrograms: np.ndarray
    cycles_without_audio: int


def prepare_recording(trained: TrainedModel, wav: Path, annotation: Path | None, window_s: float, hop_s: float) -> RecordingInput:
    """Read `wav` and turn it into spectrograms with the checkpoint's audio chain: one per
    annotated cycle of `annotation`, or, when it is None, one per window.

    Raises AudioReadError (unreadable file), IcbhiFormatError (malformed annotation) or
    SkippedRecording (silent, shorter than one STFT window, no cycle with audio).
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
    spans: list[CycleSpan] = []
    if annotation is not None:
        cycles = read_annotations(annotation)
        if not cycles:
            raise SkippedRecording(f"{annotation}: annotation file has no cycles")
        kept = [(c, cycle_span(c.start, c.end, chain.rate, len(audio))) for c in cycles]
        kept = [(c, s) for c, s in kept if s is not None]
        if not kept:
            raise SkippedRecording(f"{annotation}: none of its {len(cycles)} cycles has audio in {wav.name}")
        unit, spans = "cycle", [s for _, s in kept]
        starts, ends = [c.start for c, _ in kept], [c.end for c, _ in kept]
        annotated: list[int | None] = [c.label for c, _ in kept]
        without_audio = len(cycles) - len(kept)
    else:
        unit, spans = "window", window_spans(len(audio), chain.rate, window_s, hop_s)
        starts, ends = [s.start / chain.rate for s in spans], [s.end / chain.rate for s in spans]
        annotated, without_audio = [None] * len(spans), 0
    specs = chain.spectrograms(chain.cycles(audio, spans))
    return RecordingInput(unit, starts, ends, annotated, specs, without_audio)


def classify_spectrograms(trained: TrainedModel, specs: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities `(n, C)` float64 of spectrograms `(n, F, T)`, standardized and
    batched exactly as the evaluate stage does."""
    index = np.arange(len(specs))
    loader = cycle_loader(specs, np.zeros(len(specs), np.int64), index, trained.mean, trained.std, batch_size, device=trained.device)
    probs, _ = predict(trained.model, loader, trained.device)
    return probs


def classify_recording(trained: TrainedModel, wav: Path, annotation: Path | None, window_s: float, hop_s: float, batch_size: int) -> RecordingPrediction:
    """One recording's cycles (or windows) and their class probabilities; see prepare_recording."""
    item = prepare_recording(trained, wav, annotation, window_s, hop_s)
    probs = classify_spectrograms(trained, item.spectrograms, batch_size)
    return RecordingPrediction(wav, item.unit, item.starts, item.ends, item.annotated, probs, item.cycles_without_audio)
