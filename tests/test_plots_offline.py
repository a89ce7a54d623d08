"""`dvc plots show` draws plots a person reads, with no network (docs/experiments-plots-remotes.md).

dvc.yaml's top-level `plots:` give the training curves titles and axis labels (train and
validation loss on one chart, validation SE / SP / score on another, the learning rate), and
the confusion matrix is drawn by .dvc/plots/confusion_four.json (the default scheme's) in class order.
DVC's default page loads Vega from a CDN; `.dvc/config` points `plots.html_template` at
.dvc/plots/offline.html, which carries Vega itself. Checked as a person would see it: the
page DVC writes for the committed baseline is opened in headless Chromium with networking
off, and every plot must have been drawn.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from tests.conftest import ROOT, make_project_copy, run

PAGE = ROOT / ".dvc" / "plots" / "offline.html"
CONFUSION_TEMPLATE = ROOT / ".dvc" / "plots" / "confusion_four.json"
CURVES = "metrics/train/plots/metrics"


def test_training_curves_are_titled_labelled_and_grouped():
    plots = {k: v for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] for k, v in entry.items()}
    for plot in plots.values():
        assert plot["title"] and plot["x_label"] == "Epoch" and plot["y_label"], plot
    assert plots["loss"]["y"] == {f"{CURVES}/train/loss.tsv": "loss", f"{CURVES}/val/loss.tsv": "loss"}
    assert plots["validation_scores"]["y"] == {f"{CURVES}/val/{k}.tsv": k for k in ("se", "sp", "icbhi_score")}
    assert plots["learning_rate"]["y"] == {f"{CURVES}/lr.tsv": "lr"}
    for plot in plots.values():  # every file drawn is one the train stage writes
        assert all((ROOT / path).is_file() for path in plot["y"]), plot["y"]


def test_confusion_matrix_is_drawn_in_class_order():
    """DVC's own `confusion` template sorts the classes alphabetically (Both first)."""
    evaluate = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    [declared] = [p["metrics/eval/plots"] for p in evaluate["plots"] if "metrics/eval/plots" in p]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert declared["template"].replace("${classes.scheme}", params["classes"]["scheme"]) == CONFUSION_TEMPLATE.stem
    encoding = json.loads(CONFUSION_TEMPLATE.read_text())["spec"]["encoding"]
    assert encoding["x"]["scale"]["domain"] == encoding["y"]["scale"]["domain"] == list(CLASS_NAMES)


def test_page_carries_vega_and_loads_nothing_from_the_network():
    page = PAGE.read_text(encoding="utf-8")
    assert "{plot_divs}" in page  # DVC's slot for the plots
    assert "{scripts}" not in page  # DVC's slot for its CDN <script> tags
    assert not re.search(r"<script[^>]+src=", page)
    assert "window.vegaEmbed=" in page


def test_dvc_config_uses_the_offline_page():
    shown = run(["dvc", "config", "plots.html_template"], ROOT).stdout.strip()
    assert (ROOT / ".dvc" / shown).resolve() == PAGE.resolve()


def test_page_is_what_the_generator_writes():
    pytest.importorskip("vl_convert", reason="vl-convert-python is not installed (only needed to regenerate the page)")
    result = subprocess.run(
        ["python", "scripts/offline_plots_page.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _offline_prefix() -> list[str]:
    """Run Chromium in a network namespace of its own (no interface but loopback) where the
    kernel allows it; otherwise the proxy flags below still refuse every request."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


def chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium) to render the plots page")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ]
    return subprocess.run([*_offline_prefix(), browser, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_plots_show_renders_every_plot_offline_in_a_browser(tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("no Chromium installed (apt-get install chromium) to render the plots page")
    project = make_project_copy(tmp_path / "clone")  # the committed baseline's plot files
    plot_ids = list(json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)["data"])
    # The titled charts first, then the curve files DVC draws on their own, and the matrix.
    assert plot_ids[:3] == ["loss", "validation_scores", "learning_rate"], plot_ids
    assert "metrics/eval/plots/sklearn/confusion_matrix.json" in plot_ids
    run(["dvc", "plots", "show"], project)
    page = project / "dvc_plots" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "Loss per epoch, training and validation cycles" in html
    assert json.dumps(list(CLASS_NAMES)).replace(" ", "") in html.replace(" ", "")  # the matrix's axis order
    dom = chromium("--virtual-time-budget=20000", "--dump-dom", page.as_uri()).stdout
    # vega-embed marks each container it filled and draws the marks (canvas by default).
    embedded = len(re.findall(r'class="[^"]*\bvega-embed\b', dom))
    drawn = len(re.findall(r"<canvas|<svg[^>]*class=\"marks\"", dom))
    assert embedded == len(plot_ids) and drawn >= len(plot_ids), (
        f"{embedded} embedded, {drawn} drawn, {len(plot_ids)} plots"
    )
    shot = tmp_path / "plots.png"
    chromium("--virtual-time-budget=20000", "--window-size=1400,2600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
