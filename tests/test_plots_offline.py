"""`dvc plots show` draws every plot with no network (README, "Plots, offline").

DVC's default page loads Vega from a CDN; `.dvc/config` points `plots.html_template` at
.dvc/plots/offline.html, which carries Vega itself. Checked as a person would see it: the
page DVC writes for the committed baseline is opened in headless Chromium with networking
off, and every plot must have been drawn.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import pytest

from tests.conftest import ROOT, make_project_copy, run

PAGE = ROOT / ".dvc" / "plots" / "offline.html"


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
    result = subprocess.run(["python", "scripts/offline_plots_page.py", "--check"], cwd=ROOT, capture_output=True, text=True)
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
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    return subprocess.run([*_offline_prefix(), browser, *flags, *args], capture_output=True, text=True, timeout=120)


def test_plots_show_renders_every_plot_offline_in_a_browser(tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("no Chromium installed (apt-get install chromium) to render the plots page")
    project = make_project_copy(tmp_path / "clone")  # the committed baseline's plot files
    run(["dvc", "plots", "show"], project)
    page = project / "dvc_plots" / "index.html"
    plot_files = [p for p in (project / "metrics").rglob("*") if p.suffix in (".tsv", ".json") and "plots" in p.parts]
    assert len(plot_files) >= 2
    dom = chromium("--virtual-time-budget=20000", "--dump-dom", page.as_uri()).stdout
    # vega-embed marks each container it filled and draws the marks (canvas by default).
    embedded = len(re.findall(r'class="[^"]*\bvega-embed\b', dom))
    drawn = len(re.findall(r"<canvas|<svg[^>]*class=\"marks\"", dom))
    assert embedded == len(plot_files) and drawn >= len(plot_files), f"{embedded} embedded, {drawn} drawn, {len(plot_files)} plot files"
    shot = tmp_path / "plots.png"
    chromium("--virtual-time-budget=20000", "--window-size=1400,2600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
