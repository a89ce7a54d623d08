"""The project's DVC plot templates, drawn by the Vega that .dvc/plots/offline.html carries.

`dvc plots show --json` fills the templates with the committed plot files; headless Chromium
draws them as SVG (network blocked) and the test reads back what was drawn:
- the validation chart: one colour per score, and a rule at the kept epoch that is the
  epoch the evaluate stage reports (metrics/eval/metrics.json, `checkpoint_epoch`);
- the confusion matrix: every one of the 16 cells shows its count, a pair no test cycle
  has included (as 0: DVC's data has no row for it, so a count alone draws nothing there).
Skipped where Chromium is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter

import pytest

from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.core.schemes import SCHEMES
from tests.conftest import ROOT, run

PAGE = ROOT / ".dvc" / "plots" / "offline.html"
SCORES, CONFUSION = "validation_scores", "metrics/eval/plots/sklearn/confusion_matrix.json"
MISSING = ("Wheeze", "Crackle")  # the pair the confusion test takes out of the data


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> dict[str, str]:
    """{plot id: the SVG Vega drew for it}, and the confusion rows it was given under 'rows'."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium) to draw the plots")
    plots = json.loads(run(["dvc", "plots", "show", "--json"], ROOT).stdout)["data"]
    scores = plots[SCORES][0]["content"]
    confusion = plots[CONFUSION][0]["content"]
    rows = [r for r in confusion["data"]["values"] if (r["actual"], r["predicted"]) != MISSING]
    confusion["data"]["values"] = rows
    embeds = ", ".join(
        f"vegaEmbed('#{name}', {json.dumps(spec)}, {{renderer: 'svg', actions: false}})"
        for name, spec in (("scores", scores), ("confusion", confusion))
    )
    script = (
        f'<div id="scores"></div><div id="confusion"></div><script>Promise.all([{embeds}]).then('
        "function () { var p = document.createElement('pre'); p.id = 'done'; document.body.appendChild(p); });</script>"
    )
    page = tmp_path_factory.mktemp("plots") / "plots.html"
    page.write_text(PAGE.read_text(encoding="utf-8").replace("{plot_divs}", script), encoding="utf-8")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9"]
        + ["--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert '<pre id="done">' in dom, "Vega drew nothing"
    out = {name: re.search(rf'<div id="{name}".*?</svg>', dom, re.S).group(0) for name in ("scores", "confusion")}
    out["rows"] = json.dumps(rows)
    return out


def mark_texts(svg: str) -> list[str]:
    """The text of every text mark (not axis or legend labels)."""
    groups = re.findall(r'<g class="mark-text role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S)
    return [t for g in groups for t in re.findall(r"<text[^>]*>([^<]*)</text>", g)]


def test_each_validation_score_has_its_own_colour(drawn):
    lines = re.findall(r'<g class="mark-line role-mark[^"]*"[^>]*>(.*?)</g>', drawn["scores"], re.S)
    colours = {c for g in lines for c in re.findall(r'stroke="(#[0-9a-fA-F]{6})"', g)}
    assert len(colours) == 3, colours
    assert {"SE", "SP", "ICBHI score"} <= set(re.findall(r"<text[^>]*>([^<]*)</text>", drawn["scores"]))


def test_the_rule_marks_the_epoch_the_evaluate_stage_reports(drawn):
    kept = json.loads((ROOT / "metrics/eval/metrics.json").read_text())["checkpoint_epoch"]
    assert mark_texts(drawn["scores"]) == [f"kept: epoch {kept}"]
    assert '<g class="mark-rule role-mark' in drawn["scores"]


def test_every_confusion_cell_shows_its_count_zero_included(drawn):
    rows = json.loads(drawn["rows"])
    counts = Counter((r["actual"], r["predicted"]) for r in rows)
    expected = Counter(str(counts[(a, p)]) for a in CLASS_NAMES for p in CLASS_NAMES)
    assert counts[MISSING] == 0 and "0" in expected
    assert Counter(mark_texts(drawn["confusion"])) == expected


def test_the_own_scheme_template_takes_its_classes_from_the_data():
    """classes.scheme own: the user's classes are not known to a template; it fixes none."""
    spec = json.loads((ROOT / ".dvc" / "plots" / "confusion_own.json").read_text())["spec"]
    assert all("keyvals" not in step for step in spec["transform"][1:])
    assert "scale" not in spec["encoding"]["x"] and "scale" not in spec["encoding"]["y"]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_class_scheme_has_a_confusion_template_in_its_class_order(scheme):
    """dvc.yaml draws the confusion matrix with `confusion_${classes.scheme}`: each scheme's
    template lists its classes, in its order, on both axes and in both impute steps."""
    classes = list(SCHEMES[scheme].classes)
    template = json.loads((ROOT / ".dvc" / "plots" / f"confusion_{scheme}.json").read_text())
    spec = template["spec"]
    assert [step["keyvals"] for step in spec["transform"][1:]] == [classes, classes]
    assert spec["encoding"]["x"]["scale"]["domain"] == classes == spec["encoding"]["y"]["scale"]["domain"]
    assert "template: confusion_${classes.scheme}" in (ROOT / "dvc.yaml").read_text()
