"""The report as one HTML page that opens offline: pictures and audio inside it as data URIs,
no link, script or font from anywhere else.

A summary first (files, units, counts per class, the model's provenance, agreement with the
annotations), then one section per recording (report.RecordingReport). The only script,
`SCRIPT`, plays a cycle or window when it is clicked (on the timeline, in the table or
beside its maps) and moves a playhead over the timeline while the audio plays; without it
the page still shows everything and the player still plays.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

import numpy as np

from respiro.core.schemes import scheme_of_classes
from respiro.evaluation.metrics import format_score
from respiro.inference.recording import RecordingPrediction
from respiro.inference.report import Agreement, RecordingReport, agreement, annotated_pairs

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}.warning{color:#c00;font-weight:bold}
.timeline{position:relative}.timeline img{width:100%;display:block}
.unit{position:absolute;cursor:pointer}.unit:hover,.unit.playing{background:rgba(255,255,255,.25);outline:1px solid #fff}
.playhead{position:absolute;width:2px;background:#d00;pointer-events:none}
tr[data-start],button{cursor:pointer}tr[data-start]:hover{background:#eef}
.maps img{width:100%}.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.2em}
"""

# Clicking anything with data-start/data-end plays that stretch of its section's audio; the
# playhead follows the audio (every animation frame while it plays, and after a seek).
SCRIPT = """
document.querySelectorAll('section.recording').forEach(function (sec) {
  var audio = sec.querySelector('audio'), tl = sec.querySelector('.timeline'), head = sec.querySelector('.playhead');
  var d = tl.dataset, stopAt = null;
  function place() {
    var t = Math.min(Math.max(audio.currentTime, +d.t0), +d.t1);
    head.style.left = (100 * (+d.left + (t - d.t0) / (d.t1 - d.t0) * (d.right - d.left))) + '%';
    if (stopAt !== null && audio.currentTime >= stopAt) { audio.pause(); stopAt = null; }
    if (!audio.paused) requestAnimationFrame(place);
  }
  sec.querySelectorAll('[data-start]').forEach(function (el) {
    el.addEventListener('click', function () {
      audio.currentTime = +el.dataset.start; stopAt = +el.dataset.end; audio.play();
    });
  });
  ['play', 'seeked', 'timeupdate', 'loadedmetadata'].forEach(function (e) { audio.addEventListener(e, place); });
});
"""


def data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _seconds(value: float) -> str:
    """A time for a data attribute: every digit the float has, so the page says what the CSV says."""
    return repr(float(value))


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.4f}%"


def class_key(names: Sequence[str]) -> str:
    colours = scheme_of_classes(tuple(names)).colours
    return " ".join(f'<span class="swatch" style="background:{c}"></span>{escape(n)}' for c, n in zip(colours, names))


def one_class_note(counts: np.ndarray, names: Sequence[str], what: str) -> str:
    """`all 51 cycles predicted Crackle` when every unit got one class, else ''."""
    total = int(counts.sum())
    nonzero = np.flatnonzero(counts)
    return f"all {total} {what} predicted {names[nonzero[0]]}" if total > 1 and len(nonzero) == 1 else ""


def confusion_table(found: Agreement, names: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{escape(n)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for n, row in zip(names, found.confusion.tolist())
    )
    return f'<table class="confusion"><tr><th>annotated \\ predicted</th>{head}</tr>{rows}</table>'


def score_names(names: Sequence[str]) -> dict[str, str]:
    """Accuracy and the scheme's scores (the scheme whose classes are `names`), in a page's words."""
    return {"accuracy": "accuracy", **scheme_of_classes(tuple(names)).score_labels}


def _in_words(labels: Sequence[str]) -> str:
    """`SE, SP and ICBHI score`."""
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else "".join(labels)


def _agreement_cells(found: Agreement | None, names: Sequence[str]) -> str:
    return "".join(f"<td>{'' if found is None else format_score(found.scores[k])}</td>" for k in score_names(names))


def summary_section(
    results: Sequence[RecordingPrediction],
    names: Sequence[str],
    model_line: str,
    synthetic_note: str | None,
    skipped: Sequence[str],
    disclaimer: str,
) -> str:
    """The table that opens the page: one row per recording and one for all of them."""
    n_classes = len(names)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for result in results:
        counts = np.bincount(result.predicted, minlength=n_classes)
        found = agreement(*annotated_pairs([result]), names)
        rows.append(
            f'<tr><td><a href="#{escape(result.file.stem)}">{escape(result.file.name)}</a></td><td>{escape(result.unit)}s</td>'
            f"<td>{len(result.starts)}</td>"
            + "".join(f"<td>{c}</td>" for c in counts)
            + _agreement_cells(found, names)
            + "</tr>"
        )
    totals = sum((np.bincount(r.predicted, minlength=n_classes) for r in results), np.zeros(n_classes, np.int64))
    overall = agreement(*annotated_pairs(list(results)), names)
    units = sorted({r.unit for r in results})
    what = " and ".join(f"{u}s" for u in units)
    rows.append(
        f"<tr><th>all {len(results)} recordings</th><td>{what}</td><td>{int(totals.sum())}</td>"
        + "".join(f"<td>{c}</td>" for c in totals)
        + _agreement_cells(overall, names)
        + "</tr>"
    )
    note = one_class_note(totals, names, what)
    scheme = scheme_of_classes(tuple(names))
    labels = list(scheme.score_labels.values())
    score_heads = "".join(f"<th>{escape(n)}</th>" for n in score_names(names).values())
    parts = [
        "<h1>respiro predict: report</h1>",
        f"<p>Model: {escape(model_line)}. The output is {escape(disclaimer)}.</p>",
        f'<p class="warning">{escape(synthetic_note)}: this model has never heard a real patient.</p>'
        if synthetic_note
        else "",
        f'<p class="warning">{escape(note)}.</p>' if note else "",
        '<table class="summary"><tr><th>recording</th><th>unit</th><th>count</th>'
        f"{head}{score_heads}</tr>{''.join(rows)}</table>",
        f"<p>Counts are of predicted classes. Accuracy, {_in_words(labels)} compare predicted with "
        f"annotated cycles ({scheme.challenge} definitions; empty where a recording has no annotation, "
        "n/a where a denominator is empty).</p>",
    ]
    if overall is not None:
        parts.append(f"<h3>All annotated cycles</h3>{confusion_table(overall, names)}")
    if skipped:
        items = "".join(f"<li>{escape(s)}</li>" for s in skipped)
        parts.append(f"<p>Skipped (not classified):</p><ul>{items}</ul>")
    return "\n".join(parts)


def recording_section(report: RecordingReport, names: Sequence[str]) -> str:
    """One recording: heading, player, timeline with clickable units and a playhead, the
    per-unit table, agreement with its annotation, and the maps of its flagged units."""
    result, tl = report.result, report.timeline
    stem = escape(result.file.stem)
    span = tl.end - tl.start
    spans = []
    for n, (start, end) in enumerate(zip(result.starts, result.ends)):
        # Windows overlap: alternate halves of the spectrogram's height, as the picture's labels do.
        top, bottom = tl.axis_top, tl.axis_bottom
        if result.unit == "window":
            middle = (top + bottom) / 2
            top, bottom = (top, middle) if n % 2 == 0 else (middle, bottom)
        left = tl.axis_left + (start - tl.start) / span * (tl.axis_right - tl.axis_left)
        width = (min(end, tl.end) - start) / span * (tl.axis_right - tl.axis_left)
        spans.append(
            f'<div class="unit" data-index="{n + 1}" data-start="{_seconds(start)}" data-end="{_seconds(end)}" '
            f'title="{result.unit} {n + 1}: {start:.2f}-{end:.2f} s, {escape(names[int(result.predicted[n])])}" '
            f'style="left:{_percent(left)};width:{_percent(width)};top:{_percent(top)};height:{_percent(bottom - top)}"></div>'
        )
    timeline = (
        f'<div class="timeline" data-left="{tl.axis_left:.6f}" data-right="{tl.axis_right:.6f}" '
        f'data-t0="{_seconds(tl.start)}" data-t1="{_seconds(tl.end)}">'
        f'<img alt="spectrogram, classes and probabilities of {stem}" src="{data_uri("image/png", tl.png)}">'
        f'{"".join(spans)}<div class="playhead" style="left:{_percent(tl.axis_left)};top:{_percent(tl.axis_top)};'
        f'height:{_percent(tl.plots_bottom - tl.axis_top)}"></div></div>'
    )
    head = "".join(f"<th>p {escape(n)}</th>" for n in names)
    rows = []
    for n, (start, end, annotated, probs) in enumerate(
        zip(result.starts, result.ends, result.annotated, result.probabilities)
    ):
        predicted = int(probs.argmax())
        rows.append(
            f'<tr data-start="{_seconds(start)}" data-end="{_seconds(end)}"><td>{n + 1}</td>'
            f"<td>{start:.3f}</td><td>{end:.3f}</td><td>{'' if annotated is None else escape(annotated)}</td>"
            f'<td><span class="swatch" style="background:{scheme_of_classes(tuple(names)).colours[predicted]}"></span>{escape(names[predicted])}</td>'
            + "".join(f"<td>{p:.3f}</td>" for p in probs)
            + "</tr>"
        )
    found = agreement(*annotated_pairs([result]), names)
    agreement_html = (
        ""
        if found is None
        else "<p>Against the annotation: "
        + ", ".join(f"{score_names(names)[k]} {format_score(v)}" for k, v in found.scores.items())
        + f"</p>{confusion_table(found, names)}"
    )
    if report.maps:
        what = f"{report.attention_text[0].upper()}{report.attention_text[1:]} and " if report.has_attention else ""
        maps_html = (
            f"<h3>Where the model looked</h3><p>{what}Grad-CAM of the predicted class, on the spectrogram the "
            f"model saw (the {result.unit} fit to the model's cycle length; a dashed line where its own audio ends), "
            f"for the {len(report.maps)} most confident of the {report.flagged} {result.unit}s predicted abnormal.</p>"
            + "".join(
                f'<div class="maps"><button data-start="{_seconds(result.starts[m.index])}" '
                f'data-end="{_seconds(result.ends[m.index])}">play {result.unit} {m.index + 1}</button>'
                f'<img alt="maps of {result.unit} {m.index + 1}" src="{data_uri("image/png", m.png)}"></div>'
                for m in report.maps
            )
        )
    else:
        maps_html = f"<p>No {result.unit} predicted abnormal: no maps drawn.</p>"
    counts = ", ".join(f"{n} {c}" for n, c in zip(names, report.counts))
    unit_note = "" if result.unit == "cycle" else " (no annotation: overlapping windows, not breaths)"
    extra = (
        f"; {result.cycles_without_audio} annotated cycles without audio left out"
        if result.cycles_without_audio
        else ""
    )
    return (
        f'<section class="recording" id="{stem}"><h2>{stem}</h2>'
        f"<p>{escape(str(result.file))}: {report.duration:.2f} s, {len(result.starts)} {result.unit}s{unit_note}: "
        f"{escape(counts)}{escape(extra)}.</p>"
        f'<audio controls preload="auto" src="{data_uri("audio/wav", report.wav)}"></audio>'
        f"<p>The audio the model heard (resampled and normalized). Click a {result.unit} on the spectrogram "
        f"or in the table to play it. {class_key(names)}</p>"
        f"{timeline}{agreement_html}"
        f'<table class="units"><tr><th>{result.unit}</th><th>start (s)</th><th>end (s)</th><th>annotated</th>'
        f"<th>predicted</th>{head}</tr>{''.join(rows)}</table>{maps_html}</section>"
    )


def render_page(title: str, summary_html: str, sections: Sequence[str]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{summary_html}\n{''.join(sections)}\n<script>{SCRIPT}</script></body></html>\n"
    )
