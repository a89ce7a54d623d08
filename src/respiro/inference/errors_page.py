"""The errors stage's page of the test cycles the model got wrong (data/reports/errors.html).

Grouped by confusion cell (annotated -> predicted), the most confident errors of each
(evaluation/errors.py), each with the spectrogram the network saw, its attention view and
Grad-CAM of the predicted class (report.unit_maps, as `predict --report` draws them) and
the cycle's audio; after the scores per device and per patient as pictures. Offline and
self-contained as predict's report is: the data is gathered here, the markup is
templates/errors.html.j2 (on templates/base.html.j2, as page.py's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from respiro.core.schemes import scheme_of_classes
from respiro.evaluation.reports import per_group_scores
from respiro.evaluation.test_set import CyclePredictions
from respiro.inference.figures import MapsOfUnit, Spectrum, group_scores_figure, maps_figure
from respiro.inference.page import score_names
from respiro.inference.report import unit_maps, wav_bytes
from respiro.inference.templating import data_uri, render
from respiro.training.checkpoint import TrainedModel


@dataclass(frozen=True)
class WrongCycles:
    """What the errors stage hands over: `predictions` on the test cycles and `cycles`, their
    manifest rows; `cells` from most_confident_errors (positions among the test cycles);
    `specs` and `audio` (normalized samples at the model's rate) of every position in `cells`."""

    predictions: CyclePredictions
    cycles: Sequence[Mapping[str, str]]
    cells: Mapping[tuple[int, int], list[int]]
    specs: Mapping[int, np.ndarray]
    audio: Mapping[int, np.ndarray]


@dataclass(frozen=True)
class WrongCycle:
    title: str  # which cycle, what it is and what the model said
    audio: str  # data URI of its WAV
    maps: str  # data URI of its maps_figure


@dataclass(frozen=True)
class CellSection:
    annotated: int  # class index
    predicted: int
    count: int  # wrong test cycles in the cell (those shown are `cycles`)
    cycles: list[WrongCycle]


def cell_section(trained: TrainedModel, errors: WrongCycles, cell: tuple[int, int], count: int) -> CellSection:
    """The errors shown of one cell, with their maps and audio."""
    names, chain = trained.class_names, trained.chain
    positions = errors.cells[cell]
    stack = np.stack([errors.specs[n] for n in positions])
    attention, cams = unit_maps(trained, stack, np.full(len(positions), cell[1], np.int64))
    shown = []
    for k, n in enumerate(positions):
        c, audio = errors.cycles[n], errors.audio[n]
        title = (
            f"{c['recording']} {float(c['start']):.2f}-{float(c['end']):.2f} s (patient {c['patient']}, "
            f"{c['device_corrected']}): annotated {names[cell[0]]}, predicted {names[cell[1]]} ({errors.predictions.probs[n, cell[1]]:.2f})"
        )
        spectrum = Spectrum(stack[k], chain.rate, chain.stft.hop_length, chain.stft.scale)
        unit = MapsOfUnit(
            spectrum, None if attention is None else attention[k], cams[k], len(audio) / chain.rate, title
        )
        png = maps_figure(unit, trained.arch.attention_label, trained.arch.no_attention)
        shown.append(WrongCycle(title, data_uri("audio/wav", wav_bytes(audio, chain.rate)), data_uri("image/png", png)))
    return CellSection(cell[0], cell[1], count, shown)


def error_page(trained: TrainedModel, errors: WrongCycles, details: Mapping[str, Any]) -> str:
    """The page of `errors`; `details` the evaluate stage's evaluation.json."""
    names = trained.class_names
    scheme = scheme_of_classes(names)
    confusion = np.asarray(details["confusion_matrix"]["counts"])
    words = score_names(names)
    patients = np.array([c["patient"] for c in errors.cycles])
    device_png = group_scores_figure(
        details["per_device"], scheme.score_labels, "Scores per device (test cycles)", "Device"
    )
    patient_png = group_scores_figure(
        per_group_scores(errors.predictions.true, errors.predictions.pred, patients, names),
        scheme.score_labels,
        "Scores per patient (test cycles)",
        "Patient",
    )
    return render(
        "errors.html.j2",
        scheme=scheme,
        words=words,
        model=trained.describe(),
        cycles=len(errors.predictions.true),
        scores={k: details[k] for k in words},
        note=details.get("note"),
        confusion=confusion,
        attention_text=trained.arch.attention_text,
        per_device=data_uri("image/png", device_png),
        per_patient=data_uri("image/png", patient_png),
        sections=[cell_section(trained, errors, cell, int(confusion[cell])) for cell in errors.cells],
    )
