"""The report as one HTML page that opens offline: pictures and audio inside it as data URIs,
no link, script or font from anywhere else.

A summary first (files, units, counts per class, the model's provenance, agreement with the
annotations), then one section per recording (report.RecordingReport). Here the page's data
is gathered as records (Summary, RecordingSection); the markup is the template's
(templates/report.html.j2, on templates/base.html.j2 and templates/macros.html.j2). Its only
script plays a cycle or window when it is clicked (on the timeline, in the table or beside
its maps) and moves a playhead over the timeline while the audio plays; without it the page
still shows everything and the player still plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from respiro.core.schemes import ClassScheme, scheme_of_classes
from respiro.inference.recording import RecordingPrediction
from respiro.inference.report import Agreement, RecordingReport, agreement, annotated_pairs
from respiro.inference.templating import data_uri, render


@dataclass(frozen=True)
class Box:
    """A rectangle over a picture, in fractions of its width (left, width) and height (top, height)."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class UnitRow:
    """One cycle or window: its row in the table and its clickable box on the timeline."""

    number: int  # 1-based, the CSV's index
    start: float  # seconds
    end: float
    annotated: str  # the annotation's own label; '' for a window
    predicted: int  # class index
    probabilities: list[float]  # one per class
    box: Box


@dataclass(frozen=True)
class Timeline:
    picture: str  # data URI of the PNG (figures.timeline_figure)
    left: float  # where time `start` lies, as a fraction of the picture's width
    right: float  # where time `end` lies
    start: float  # seconds
    end: float
    playhead: Box  # where it starts; its width is the style's


@dataclass(frozen=True)
class UnitMapsPicture:
    number: int  # 1-based, as UnitRow.number
    start: float  # seconds: the stretch its button plays
    end: float
    picture: str  # data URI of the PNG (figures.maps_figure)


@dataclass(frozen=True)
class RecordingSection:
    """What the page shows of one recording."""

    name: str  # the file's stem: heading and anchor
    path: str  # the file as predict was given it
    unit: str  # "cycle" or "window"
    duration: float  # seconds of the prepared audio
    counts: list[int]  # units predicted per class
    cycles_without_audio: int
    wav: str  # data URI of the audio the model heard
    timeline: Timeline
    units: list[UnitRow]
    agreement: Agreement | None  # None without annotated units
    maps: list[UnitMapsPicture]
    flagged: int  # units predicted abnormal (maps are drawn for at most --report-maps)
    attention_text: str  # the architecture's attention view in words; '' without one


@dataclass(frozen=True)
class SummaryRow:
    name: str  # the recording's file name, or `all N recordings`
    anchor: str  # the id of its section; '' for the row of all
    units: str  # `cycles`, `windows`, `cycles and windows`
    counts: list[int]  # units predicted per class
    agreement: Agreement | None


@dataclass(frozen=True)
class Summary:
    """The top of the page: one row per recording and one for all of them."""

    scheme: ClassScheme  # the model's: class names, colours and scores of the whole page
    model: str  # provenance, as predict prints it
    disclaimer: str
    synthetic_note: str | None  # set when the model was trained on the synthetic corpus
    rows: list[SummaryRow]
    total: SummaryRow
    one_class: str  # one_class_note of all units, or ''
    skipped: list[str]


def one_class_note(counts: np.ndarray, names: Sequence[str], what: str) -> str:
    """`all 51 cycles predicted Crackle` when every unit got one class, else ''."""
    total = int(counts.sum())
    nonzero = np.flatnonzero(counts)
    return f"all {total} {what} predicted {names[nonzero[0]]}" if total > 1 and len(nonzero) == 1 else ""


def score_names(names: Sequence[str]) -> dict[str, str]:
    """Accuracy and the scheme's scores (the scheme whose classes are `names`), in a page's words."""
    return {"accuracy": "accuracy", **scheme_of_classes(tuple(names)).score_labels}


def page_summary(
    results: Sequence[RecordingPrediction],
    names: Sequence[str],
    model_line: str,
    synthetic_note: str | None,
    skipped: Sequence[str],
    disclaimer: str,
) -> Summary:
    """The table that opens the page: one row per recording and one for all of them."""
    rows = [
        SummaryRow(
            r.file.name,
            r.file.stem,
            f"{r.unit}s",
            np.bincount(r.predicted, minlength=len(names)).tolist(),
            agreement(*annotated_pairs([r]), names),
        )
        for r in results
    ]
    totals = np.array([row.counts for row in rows], np.int64).reshape(-1, len(names)).sum(axis=0)
    what = " and ".join(f"{u}s" for u in sorted({r.unit for r in results}))
    total = SummaryRow(
        f"all {len(results)} recordings", "", what, totals.tolist(), agreement(*annotated_pairs(list(results)), names)
    )
    note = one_class_note(totals, names, what)
    scheme = scheme_of_classes(tuple(names))
    return Summary(scheme, model_line, disclaimer, synthetic_note, rows, total, note, list(skipped))


def unit_box(report: RecordingReport, n: int) -> Box:
    """Where unit `n` of the recording lies on its timeline picture."""
    result, tl = report.result, report.timeline
    start, end = result.starts[n], result.ends[n]
    span = tl.end - tl.start
    top, bottom = tl.axis_top, tl.axis_bottom
    if result.unit == "window":
        # Windows overlap: alternate halves of the spectrogram's height, as the picture's labels do.
        middle = (top + bottom) / 2
        top, bottom = (top, middle) if n % 2 == 0 else (middle, bottom)
    left = tl.axis_left + (start - tl.start) / span * (tl.axis_right - tl.axis_left)
    width = (min(end, tl.end) - start) / span * (tl.axis_right - tl.axis_left)
    return Box(left, top, width, bottom - top)


def recording_section(report: RecordingReport, names: Sequence[str]) -> RecordingSection:
    """One recording: heading, player, timeline with clickable units and a playhead, the
    per-unit table, agreement with its annotation, and the maps of its flagged units."""
    result, tl = report.result, report.timeline
    units = [
        UnitRow(
            n + 1,
            start,
            end,
            annotated or "",
            int(probs.argmax()),
            probs.tolist(),
            unit_box(report, n),
        )
        for n, (start, end, annotated, probs) in enumerate(
            zip(result.starts, result.ends, result.annotated, result.probabilities)
        )
    ]
    timeline = Timeline(
        data_uri("image/png", tl.png),
        tl.axis_left,
        tl.axis_right,
        tl.start,
        tl.end,
        Box(tl.axis_left, tl.axis_top, 0.0, tl.plots_bottom - tl.axis_top),
    )
    maps = [
        UnitMapsPicture(m.index + 1, result.starts[m.index], result.ends[m.index], data_uri("image/png", m.png))
        for m in report.maps
    ]
    return RecordingSection(
        result.file.stem,
        str(result.file),
        result.unit,
        report.duration,
        report.counts.tolist(),
        result.cycles_without_audio,
        data_uri("audio/wav", report.wav),
        timeline,
        units,
        agreement(*annotated_pairs([result]), names),
        maps,
        report.flagged,
        report.attention_text if report.has_attention else "",
    )


def report_page(summary: Summary, sections: Sequence[RecordingSection]) -> str:
    """The whole page (templates/report.html.j2)."""
    names = summary.scheme.classes
    return render("report.html.j2", summary=summary, sections=sections, words=score_names(names))
