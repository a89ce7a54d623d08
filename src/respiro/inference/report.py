"""What the report page shows of one classified recording, gathered with predict's own code.

The audio is the checkpoint's chain (read_recording: resampled and normalized, what the
network heard), the units are predict's (pieces_of: the annotated cycles or the windows),
the maps are inference/maps.py's on the units' own spectrograms, standardized as the
evaluate stage does (cycle_loader). Nothing is held but the pictures and the audio of the
page: each recording is read again here, after predict classified it, and dropped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from respiro.core.schemes import scheme_of_classes
from respiro.data.dataset import CycleSet, cycle_loader
from respiro.evaluation.metrics import confusion_matrix, scores_of
from respiro.inference.figures import MapsOfUnit, Spectrum, TimelineFigure, maps_figure, timeline_figure
from respiro.inference.maps import attention_and_grad_cam, upsample
from respiro.inference.recording import Piece, RecordingAnnotation, RecordingPrediction, pieces_of, read_recording
from respiro.training.checkpoint import TrainedModel


@dataclass(frozen=True)
class UnitMaps:
    index: int  # 0-based position among the recording's units
    png: bytes


@dataclass(frozen=True)
class Agreement:
    """Predicted against annotated classes: scores (evaluation.metrics) and the confusion counts."""

    scores: dict[str, float | None]  # accuracy and the scheme's scores (ClassScheme.score_labels)
    confusion: np.ndarray  # (C, C) rows annotated, columns predicted


@dataclass(frozen=True)
class RecordingReport:
    result: RecordingPrediction
    duration: float  # seconds of the prepared audio
    timeline: TimelineFigure
    wav: bytes  # the prepared audio as 16-bit PCM WAV
    maps: list[UnitMaps]
    flagged: int  # units predicted other than the normal class (maps are drawn for at most `max_maps`)
    has_attention: bool
    attention_text: str  # what the attention view is, in the page's words (the architecture's)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.result.predicted, minlength=self.result.probabilities.shape[1])


def agreement(true: list[int], pred: list[int], class_names: Sequence[str]) -> Agreement | None:
    """Scores of `pred` against `true`, or None without annotated units."""
    if not true:
        return None
    s = scores_of(true, pred, class_names)
    keys = ("accuracy", *scheme_of_classes(tuple(class_names)).score_labels)
    return Agreement({k: s[k] for k in keys}, confusion_matrix(true, pred, len(class_names)))


def annotated_pairs(results: list[RecordingPrediction]) -> tuple[list[int], list[int]]:
    """`(annotated, predicted)` class of every annotated unit of `results`."""
    true: list[int] = []
    pred: list[int] = []
    for result in results:
        for a, p in zip(result.annotated_classes, result.predicted.tolist()):
            if a is not None:
                true.append(a)
                pred.append(int(p))
    return true, pred


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """`audio (time,)` float as 16-bit PCM WAV; scaled down only if it would clip (normalization
    sets the RMS level, so a peak may exceed full scale)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    buffer = io.BytesIO()
    sf.write(buffer, audio / peak if peak > 1 else audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def unit_maps(trained: TrainedModel, specs: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The architecture's attention view (None without one: a CNN without CBAM) and Grad-CAM
    of `classes (n,)`, both `(n, F, T)` on the grid of spectrograms `specs (n, F, T)`, which
    are standardized as the evaluate stage does."""
    loader = cycle_loader(
        CycleSet(specs, classes, np.arange(len(specs)), trained.mean, trained.std), 16, device=trained.device
    )
    arch = trained.arch
    grid = (arch.feature_stride, arch.feature_offset)
    attention: list[np.ndarray] = []
    cams: list[np.ndarray] = []
    for x, y in loader:
        x = x.to(trained.device).contiguous(memory_format=torch.channels_last)
        a, cam = attention_and_grad_cam(arch, trained.model, x, y)
        if a is not None:
            attention.append(upsample(a, specs.shape[1:], *grid))
        cams.append(upsample(cam, specs.shape[1:], *grid))
    return (np.concatenate(attention) if attention else None), np.concatenate(cams)


def flagged_units(probabilities: np.ndarray, class_names: tuple[str, ...], max_maps: int) -> tuple[list[int], int]:
    """`(chosen, flagged)`: the units predicted other than the scheme's normal class, the
    `max_maps` most confident of them in time order, and how many there are in all."""
    predicted = probabilities.argmax(axis=1)
    normal = class_names.index(scheme_of_classes(class_names).normal)
    flagged = np.flatnonzero(predicted != normal)
    confidence = probabilities[flagged, predicted[flagged]]
    chosen = flagged[np.argsort(-confidence, kind="stable")[:max_maps]]
    return sorted(chosen.tolist()), len(flagged)


def recording_report(
    trained: TrainedModel,
    result: RecordingPrediction,
    annotation: RecordingAnnotation | None,
    window_s: float,
    hop_s: float,
    max_maps: int,
) -> RecordingReport:
    """The pictures and audio of one recording classified by classify_recording, with maps
    for at most `max_maps` of its units flagged abnormal."""
    chain, names = trained.chain, trained.class_names
    audio = read_recording(trained, result.file)
    duration = len(audio) / chain.rate
    whole = Spectrum(chain.spectrograms(audio[None])[0], chain.rate, chain.stft.hop_length, chain.stft.scale)
    timeline = timeline_figure(whole, duration, result, scheme_of_classes(names))
    chosen, flagged = flagged_units(result.probabilities, names, max_maps)
    maps: list[UnitMaps] = []
    attention_found = trained.arch.attention_layer(trained.model) is not None
    if chosen:
        _, units, _ = pieces_of(trained, result.file, len(audio), annotation, window_s, hop_s)
        wanted = set(chosen)
        pieces: list[Piece] = [p for n, p in enumerate(units) if n in wanted]
        specs = chain.spectrograms(chain.cycles(audio, [p.span for p in pieces]))
        classes = result.predicted[chosen]
        attention, cams = unit_maps(trained, specs, classes)
        attention_found = attention is not None
        for k, (n, piece) in enumerate(zip(chosen, pieces)):
            spectrum = Spectrum(specs[k], chain.rate, chain.stft.hop_length, chain.stft.scale)
            seconds = (piece.span.end - piece.span.start) / chain.rate
            title = (
                f"{result.unit} {n + 1}, {piece.start:.2f}-{piece.end:.2f} s: predicted {names[classes[k]]} "
                f"({result.probabilities[n, classes[k]]:.2f})"
                + ("" if piece.annotated is None else f", annotated {piece.annotated}")
            )
            unit = MapsOfUnit(spectrum, None if attention is None else attention[k], cams[k], seconds, title)
            png = maps_figure(unit, trained.arch.attention_label, trained.arch.no_attention)
            maps.append(UnitMaps(n, png))
    return RecordingReport(
        result,
        duration,
        timeline,
        wav_bytes(audio, chain.rate),
        maps,
        flagged,
        bool(attention_found),
        trained.arch.attention_text,
    )
