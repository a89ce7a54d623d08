"""The pages' templates (src/respiro/inference/templates/): they ship with the package, show
every value as text (autoescape), stop on a name the code did not give (StrictUndefined), and
take class names and colours from the model's scheme. The pages are built here from
hand-made records (no model, no pictures drawn); tests/test_report.py and
tests/test_errors_page.py build them from real runs.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from html import unescape
from importlib.resources import files
from pathlib import Path

import jinja2
import numpy as np
import pytest

from respiro.core.schemes import ClassScheme, own_scheme
from respiro.inference.errors_page import CellSection, WrongCycle
from respiro.inference.figures import TimelineFigure
from respiro.inference.page import page_summary, recording_section, report_page, score_names
from respiro.inference.recording import RecordingPrediction
from respiro.inference.report import RecordingReport, UnitMaps
from respiro.inference.templating import ENVIRONMENT, TEMPLATES, render
from tests.conftest import ROOT

PAGES = {"base.html.j2", "macros.html.j2", "report.html.j2", "errors.html.j2"}
HOSTILE_CLASS = "<script>alert('class')</script>"
HOSTILE_FILE = 'a<img src=x onerror="alert(1)">.wav'


def hostile_page(classes: tuple[str, ...] = ("Normal", HOSTILE_CLASS)) -> str:
    """A report page of one recording named HOSTILE_FILE, its units predicted HOSTILE_CLASS."""
    probabilities = np.array([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    result = RecordingPrediction(
        Path("folder") / HOSTILE_FILE, "cycle", [0.0, 1.0, 2.0], [1.0, 2.0, 3.0], ["w", None, "<b>"], probabilities, 0,
        [1, 0, None],
    )  # fmt: skip
    timeline = TimelineFigure(b"png", 0.1, 0.9, 0.05, 0.5, 0.9, 0.0, 3.0)
    report = RecordingReport(result, 3.0, timeline, b"wav", [UnitMaps(0, b"maps")], 2, True, "CBAM's attention")
    summary = page_summary([result], classes, "a model", None, [], "a disclaimer")
    return report_page(summary, [recording_section(report, classes)])


def test_the_templates_ship_with_the_package():
    """Found through the package, as an installed wheel finds them, and each named by
    pyproject.toml's package-data, without which a non-editable install leaves them out."""
    folder = files(TEMPLATES[0]).joinpath(TEMPLATES[1])
    found = {entry.name for entry in folder.iterdir() if entry.name.endswith(".j2")}
    assert found == PAGES and set(ENVIRONMENT.list_templates()) == PAGES
    for name in found:
        ENVIRONMENT.get_template(name)  # parses
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data[TEMPLATES[0]]
    assert all(any(fnmatch(f"{TEMPLATES[1]}/{name}", p) for p in patterns) for name in found), patterns


def test_a_name_with_markup_shows_as_text():
    html = hostile_page()
    assert html.count("<script") == 1  # the page's own player script, and no other
    assert "<img src=x" not in html and "<b>" not in html
    text = unescape(html)
    assert HOSTILE_CLASS in text and HOSTILE_FILE in text and "<td><b></td>" in text  # shown, as text
    assert 'title="cycle 1: 0.00-1.00 s, &lt;script&gt;alert(&#39;class&#39;)&lt;/script&gt;"' in html


def test_the_error_page_escapes_its_titles_and_class_names():
    scheme = own_scheme(("Normal", HOSTILE_CLASS))
    cell = CellSection(0, 1, 1, [WrongCycle('a "quoted" <title>', "data:audio/wav;base64,", "data:,")])
    html = render(
        "errors.html.j2", scheme=scheme, words=score_names(scheme.classes), model="m", cycles=1,
        scores={"accuracy": 0.5, "se": None, "sp": 1.0, "icbhi_score": None}, note=None,
        confusion=np.array([[0, 1], [0, 0]]), attention_text="x", per_device="data:,", per_patient="data:,",
        sections=[cell],
    )  # fmt: skip
    assert "<script" not in html and 'alt="a &#34;quoted&#34; &lt;title&gt;"' in html
    assert "Annotated Normal, predicted <script>alert('class')</script>: 1 cycles" in unescape(html)


def test_a_name_the_code_does_not_give_stops_the_page():
    assert ENVIRONMENT.undefined is jinja2.StrictUndefined
    summary = page_summary([], ("Normal", "Crackle"), "a model", None, [], "a disclaimer")
    words = score_names(("Normal", "Crackle"))
    with pytest.raises(jinja2.UndefinedError, match="sections"):
        render("report.html.j2", summary=summary, words=words)  # a plain Undefined would print `0 recordings`
    assert "<title>respiro predict: 0 recordings</title>" in render(
        "report.html.j2", summary=summary, sections=[], words=words
    )


def test_the_page_takes_each_class_colour_from_the_scheme(monkeypatch):
    colours = ("#ABCDEF", "#FEDCBA")
    monkeypatch.setattr(ClassScheme, "colours", property(lambda self: colours))
    swatches = re.findall(r'class="swatch" style="background:([^"]+)"', hostile_page(("Normal", "Crackle")))
    # The class key, then each unit's predicted class (Crackle, Normal, Crackle).
    assert swatches == [*colours, "#FEDCBA", "#ABCDEF", "#FEDCBA"]


def test_no_module_writes_html():
    """The markup is the templates': no Python file of the package holds a tag or escapes one."""
    tag = re.compile(r"<(div|p|table|tr|td|th|span|section|img|audio|h\d|a|script|style|html)[\s>]|</\w+>|escape\(")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if tag.search(line)
    ]
    assert found == []
