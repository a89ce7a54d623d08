"""The report speaks the model's class scheme: its scores (SPRSound's AS and HS, not the ICBHI
score), its normal class (what is not flagged), whatever the scheme's class names are."""

from __future__ import annotations

from html import unescape

import numpy as np

from respiro.commands.predict import main as predict
from respiro.core.schemes import SCHEMES, own_scheme
from respiro.inference.figures import group_scores_figure
from respiro.inference.page import score_names
from respiro.inference.report import agreement, flagged_units
from tests.test_report import make_checkpoint, make_recordings

EVENT_BINARY = SCHEMES["event_binary"]


def test_an_event_binary_models_report_says_as_and_hs_not_icbhi_score(tmp_path):
    model = make_checkpoint(tmp_path / "model.pt", EVENT_BINARY.classes, "event_binary")
    page = tmp_path / "report.html"
    predict(
        [
            str(make_recordings(tmp_path / "rec")),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "p.csv"),
            "--report",
            str(page),
        ]
    )
    html = page.read_text()
    text = unescape(html)  # as a reader sees it: the page escapes the apostrophes it shows
    assert "<th>AS</th><th>HS</th>" in html and "&amp;" not in html  # escaped once, not twice
    assert "Accuracy, SE, SP, AS and HS compare" in text and "SPRSound's (BioCAS 2022) definitions" in text
    assert "ICBHI score" not in text and "ICBHI challenge" not in text


def test_agreement_and_the_pages_words_follow_the_scheme():
    found = agreement([0, 1, 1, 0], [0, 1, 0, 0], EVENT_BINARY.classes)
    assert found is not None and list(found.scores) == ["accuracy", "se", "sp", "as", "hs"]
    assert found.scores["se"] == 0.5 and found.scores["sp"] == 1.0 and found.scores["hs"] == 2 * 0.5 / 1.5
    assert score_names(EVENT_BINARY.classes) == {"accuracy": "accuracy", "se": "SE", "sp": "SP", "as": "AS", "hs": "HS"}
    four = SCHEMES["four"].classes
    assert list(score_names(four).values()) == ["accuracy", "SE", "SP", "ICBHI score"]


def test_the_normal_class_is_the_schemes_first_whatever_its_name():
    """A lab's own classes with a lower-case `normal` (classes.own): its units are not flagged."""
    classes = own_scheme(("normal", "crackles", "wheezes")).classes
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    assert flagged_units(probabilities, classes, max_maps=5) == ([1, 2], 2)


def test_the_score_bars_take_the_schemes_scores():
    scores = {"A": {"se": 0.5, "sp": 0.9, "as": 0.7, "hs": None, "cycles": 10}}
    png = group_scores_figure(scores, EVENT_BINARY.score_labels, "Scores per device", "Device")
    assert png.startswith(b"\x89PNG")


def test_scores_per_group_carry_the_schemes_scores():
    """The error page draws per-device and per-patient bars of the scheme's scores: SPRSound's
    groups carry AS and HS as well, ICBHI's the keys they always had."""
    from respiro.evaluation.reports import per_group_scores

    true, pred, groups = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array(["a", "a", "b", "b"])
    sprsound = per_group_scores(true, pred, groups, EVENT_BINARY.classes)
    assert list(sprsound["a"]) == ["accuracy", "se", "sp", "icbhi_score", "as", "hs", "cycles"]
    four = per_group_scores(true, pred, groups, SCHEMES["four"].classes)
    assert list(four["a"]) == ["accuracy", "se", "sp", "icbhi_score", "cycles"]
    group_scores_figure(sprsound, EVENT_BINARY.score_labels, "Scores per device", "Device")


def test_each_class_has_its_schemes_colour():
    """The Okabe-Ito palette by class index, from its start again after eight classes."""
    assert SCHEMES["four"].colours == ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
    nine = own_scheme(tuple(f"c{i}" for i in range(9))).colours
    assert len(nine) == 9 and nine[8] == nine[0] != nine[1]


def test_the_timeline_draws_each_class_in_the_schemes_colour(monkeypatch):
    """Given other colours, the scheme's, the picture's strip and curves take them."""
    import io
    from pathlib import Path

    from PIL import Image

    from respiro.core.schemes import ClassScheme
    from respiro.inference.figures import Spectrum, timeline_figure
    from respiro.inference.recording import RecordingPrediction

    colours = ("#FF00FF", "#00FFFF", "#FF0000", "#0000FF")
    monkeypatch.setattr(ClassScheme, "colours", property(lambda self: colours))
    probabilities = np.array([[0.1, 0.9, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0]])
    result = RecordingPrediction(Path("a.wav"), "cycle", [0.0, 1.0], [1.0, 2.0], [None, None], probabilities, 0, [0, 1])
    spectrum = Spectrum(np.random.default_rng(0).normal(size=(33, 100)), 4000, 80, "log")
    png = timeline_figure(spectrum, 2.0, result, SCHEMES["four"]).png
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in colours[:2]:  # the two classes drawn: predicted and annotated
        wanted = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - wanted).max(axis=1) <= 8).sum() > 500, colour
