"""The evaluate stage's page of the test cycles the model got wrong (data/reports/errors.html).

Grouped by confusion cell (annotated -> predicted), the most confident errors of each
(evaluation/errors.py), each with the spectrogram the network saw, its attention view and
Grad-CAM of the predicted class (report.unit_maps, as `predict --report` draws them) and
the cycle's audio; after the scores per device and per patient as pictures. Offline and
self-contained as predict's report is (page.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from respiro.core.schemes import scheme_of_classes
from respiro.evaluation.metrics import format_score
from respiro.evaluation.reports import per_group_scores
from respiro.inference.figures import MapsOfUnit, Spectrum, group_scores_figure, maps_figure
from respiro.inference.page import STYLE, confusion_table, data_uri, score_names
from respiro.inference.report import Agreement, unit_maps, wav_bytes
from respiro.training.checkpoint import TrainedModel


def _cell_section(
    trained: TrainedModel,
    cell: tuple[int, int],
    positions: list[int],
    count: int,
    specs: Mapping[int, np.ndarray],
    audio: Mapping[int, np.ndarray],
    cycles: Sequence[Mapping[str, str]],
    probs: np.ndarray,
) -> str:
    names, chain = trained.class_names, trained.chain
    stack = np.stack([specs[n] for n in positions])
    attention, cams = unit_maps(trained, stack, np.full(len(positions), cell[1], np.int64))
    items = []
    for k, n in enumerate(positions):
        c = cycles[n]
        seconds = len(audio[n]) / chain.rate
        title = (
            f"{c['recording']} {float(c['start']):.2f}-{float(c['end']):.2f} s (patient {c['patient']}, "
            f"{c['device_corrected']}): annotated {names[cell[0]]}, predicted {names[cell[1]]} ({probs[n, cell[1]]:.2f})"
        )
        spectrum = Spectrum(stack[k], chain.rate, chain.stft.hop_length, chain.stft.scale)
        unit = MapsOfUnit(spectrum, None if attention is None else attention[k], cams[k], seconds, title)
        png = maps_figure(unit, trained.arch.attention_label, trained.arch.no_attention)
        items.append(
            f'<div class="error"><audio controls preload="metadata" src="{data_uri("audio/wav", wav_bytes(audio[n], chain.rate))}">'
            f'</audio><img alt="{escape(title)}" src="{data_uri("image/png", png)}"></div>'
        )
    return (
        f'<section id="cell-{cell[0]}-{cell[1]}"><h2>Annotated {escape(names[cell[0]])}, predicted '
        f"{escape(names[cell[1]])}: {count} cycles</h2>"
        f"<p>The {len(positions)} the model was most sure of.</p>{''.join(items)}</section>"
    )


def error_page(
    trained: TrainedModel,
    cells: Mapping[tuple[int, int], list[int]],
    specs: Mapping[int, np.ndarray],
    audio: Mapping[int, np.ndarray],
    cycles: Sequence[Mapping[str, str]],
    true: np.ndarray,
    pred: np.ndarray,
    probs: np.ndarray,
    details: Mapping[str, Any],
) -> str:
    """The page: `cells` from most_confident_errors over the test cycles (positions into
    `cycles`, their manifest rows, and `true`, `pred`, `probs (n, C)`); `specs` and `audio`
    (normalized samples at the model's rate) of every position in `cells`; `details` the
    evaluate stage's evaluation.json."""
    names = trained.class_names
    confusion = np.asarray(details["confusion_matrix"]["counts"])
    words = score_names(names)
    scores = {k: details[k] for k in words}
    overall = ", ".join(f"{words[k]} {format_score(v)}" for k, v in scores.items())
    labels = scheme_of_classes(names).score_labels
    patients = np.array([c["patient"] for c in cycles])
    device_png = group_scores_figure(details["per_device"], labels, "Scores per device (test cycles)", "Device")
    patient_png = group_scores_figure(
        per_group_scores(true, pred, patients, names), labels, "Scores per patient (test cycles)", "Patient"
    )
    note = details.get("note")
    sections = [
        _cell_section(trained, cell, positions, int(confusion[cell]), specs, audio, cycles, probs)
        for cell, positions in cells.items()
    ]
    links = " ".join(f'<a href="#cell-{t}-{p}">{escape(names[t])} &rarr; {escape(names[p])}</a>' for t, p in cells)
    body = [
        "<h1>The test cycles the model got wrong</h1>",
        f"<p>Model: {escape(trained.describe())}; {len(true)} test cycles: {overall}.</p>",
        f'<p class="warning">{escape(note)}.</p>' if note else "",
        "<h3>Confusion matrix of the test cycles</h3>",
        confusion_table(Agreement(scores, confusion), names),
        f"<p>Errors shown, per cell: {links or 'none: every test cycle is right'}. Each: the audio of the "
        f"cycle (as the pipeline normalized it), the spectrogram the network saw, {trained.arch.attention_text} "
        "and Grad-CAM of the predicted class.</p>",
        f'<img alt="scores per device" src="{data_uri("image/png", device_png)}">',
        f'<img alt="scores per patient" src="{data_uri("image/png", patient_png)}">',
        *sections,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Test errors</title>'
        f"<style>{STYLE}.error img{{width:100%}}</style></head><body>\n{''.join(body)}\n</body></html>\n"
    )
