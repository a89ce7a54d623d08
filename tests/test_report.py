"""`respiro predict --report`: the page says what the CSV says, holds its pictures and audio,
and is written whole or not at all.

The model is a ResNet-18 + CBAM checkpoint with untrained weights and a head biased to
Crackle (every unit is predicted Crackle, so that the page draws maps and the summary says
so); the recordings are written here: two annotated, one without annotation (windows).
"""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from respiro.commands.predict import main
from respiro.core.errors import OutputPathError, StageError
from respiro.core.outputs import read_csv
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.model.resnet import build_model
from tests.conftest import ROOT, write_untrained_checkpoint

RATE = 8000
RECORDINGS = {  # stem: (seconds, annotation lines or None for windows)
    "201_1b1_Al_sc_Meditron": (6.0, ["0.0 1.5 0 0", "1.5 3.2 1 0", "3.2 4.6 0 1", "4.6 6.0 1 1"]),
    "202_1b1_Ar_sc_Meditron": (5.0, ["0.2 2.0 0 0", "2.0 3.7 0 1", "3.7 4.9 1 0"]),
    "203_1b1_Tc_sc_Meditron": (7.0, None),
}


def make_checkpoint(path: Path, class_names: tuple[str, ...] = CLASS_NAMES, scheme: str = "four") -> Path:
    """A ResNet-18 checkpoint of `scheme` that predicts its second class for every unit."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["arch"] = "resnet18"
    params["classes"]["scheme"] = scheme
    torch.manual_seed(0)
    model = build_model(18, True, params["model"]["cbam_reduction"], len(class_names))
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([0.0, 6.0] + [0.0] * (len(class_names) - 2)))
    write_untrained_checkpoint(path, model, params, class_names)
    return path


def make_recordings(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, (seconds, lines) in RECORDINGS.items():
        t = np.arange(int(seconds * RATE)) / RATE
        audio = 0.01 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 400 * t) * (np.sin(np.pi * t / 1.5) > 0)
        sf.write(folder / f"{stem}.wav", audio.astype(np.float32), RATE, subtype="PCM_16")
        if lines is not None:
            (folder / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(page, CSV, recordings folder) of one predict run with --report."""
    root = tmp_path_factory.mktemp("report")
    model = make_checkpoint(root / "model.pt")
    recordings = make_recordings(root / "recordings")
    page, out = root / "report.html", root / "predictions.csv"
    main([str(recordings), "--model", str(model), "--out", str(out), "--report", str(page), "--report-maps", "2"])
    return page, out, recordings


class PageParts(HTMLParser):
    """The page's sections: heading, audio source, image sources, timeline spans, map buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.timelines: list[dict[str, str]] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "section":
            self.sections.append({"id": a["id"], "heading": "", "audio": [], "units": [], "buttons": []})
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "audio":
            self.sections[-1]["audio"].append(a["src"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "div" and a.get("class") == "timeline":
            self.timelines.append(a)
        elif tag == "div" and a.get("class") == "unit":
            self.sections[-1]["units"].append(a)
        elif tag == "button":
            self.sections[-1]["buttons"].append(a)

    def handle_endtag(self, tag):
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.sections[-1]["heading"] += data


def parse(page: Path) -> PageParts:
    parts = PageParts()
    parts.feed(page.read_text(encoding="utf-8"))
    return parts


def decoded(uri: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix) :])


def test_one_section_per_recording_with_its_name_and_playable_audio(report_run):
    page, _, recordings = report_run
    parts = parse(page)
    assert [s["heading"] for s in parts.sections] == sorted(RECORDINGS)
    for section in parts.sections:
        (audio,) = section["audio"]
        samples, rate = sf.read(io.BytesIO(decoded(audio, "audio/wav")))
        # The audio the model heard: the checkpoint's rate (4 kHz), the recording's length.
        assert rate == 4000 and len(samples) / rate == pytest.approx(RECORDINGS[section["id"]][0], abs=1e-3)
        assert np.abs(samples).max() > 0.01


def test_the_page_holds_everything_it_shows_and_links_nowhere(report_run):
    page, _, _ = report_run
    parts = parse(page)
    assert parts.images and all(src.startswith("data:image/png;base64,") for src in parts.images)
    assert all(link.startswith(("data:", "#")) for link in parts.links), [link[:40] for link in parts.links]
    assert not re.search(r"https?://", page.read_text(encoding="utf-8"))
    assert page.stat().st_size < 20e6 / 5 * len(RECORDINGS)  # the bound: 20 MB for five recordings


def test_timeline_times_are_the_csvs(report_run):
    page, out, _ = report_run
    rows = read_csv(out)
    parts = parse(page)
    for section in parts.sections:
        mine = [r for r in rows if r["recording"] == section["id"]]
        assert len(section["units"]) == len(mine) > 0
        assert {r["unit"] for r in mine} == {"cycle" if RECORDINGS[section["id"]][1] else "window"}
        for span, row in zip(section["units"], mine):
            assert span["data-index"] == row["index"]
            # The CSV rounds window times to ms; cycle times are the annotation's.
            assert float(span["data-start"]) == pytest.approx(float(row["start"]), abs=5e-4)
            assert float(span["data-end"]) == pytest.approx(float(row["end"]), abs=5e-4)


def test_each_span_sits_on_its_line_in_the_picture(report_run):
    """A span's left edge (from the axis' place in the picture and the unit's start) falls on
    the white line the picture draws at that start: page and picture share one time axis."""
    page, _, _ = report_run
    parts = parse(page)
    image = matplotlib.image.imread(io.BytesIO(decoded(parts.images[0], "image/png")))  # first: the timeline
    height, width = image.shape[:2]
    timeline, section = parts.timelines[0], parts.sections[0]
    top = float(re.search(r"top:([\d.]+)%", section["units"][0]["style"]).group(1)) / 100
    bottom = top + float(re.search(r"height:([\d.]+)%", section["units"][0]["style"]).group(1)) / 100
    row = int((top + 0.6 * (bottom - top)) * height)  # below the unit numbers
    white = image[row, :, :3].min(axis=1) > 0.7  # viridis has no colour this pale in every channel
    for span in section["units"][1:]:
        left = float(re.search(r"left:([\d.]+)%", span["style"]).group(1)) / 100
        column = left * width
        assert white[int(column) - 1 : int(column) + 2].any(), (span["data-start"], column)
    assert float(timeline["data-t1"]) == pytest.approx(RECORDINGS[section["id"]][0], abs=1e-3)


def test_maps_are_bounded_and_summary_says_one_class(report_run, capsys):
    page, _, _ = report_run
    parts = parse(page)
    for section in parts.sections:
        assert len(section["buttons"]) == 2  # --report-maps 2; every unit is flagged (Crackle)
    text = page.read_text(encoding="utf-8")
    total = sum(len(s["units"]) for s in parts.sections)
    assert f"all {total} cycles and windows predicted Crackle" in text
    assert "NOT ICBHI 2017 results" in text and 'class="warning"' in text  # synthetic-trained: in red
    assert "accuracy" in text and "annotated \\ predicted" in text


def test_summary_line_says_every_cycle_got_one_class(tmp_path, capsys):
    model = make_checkpoint(tmp_path / "model.pt")
    recordings = make_recordings(tmp_path / "recordings")
    main([str(recordings / "201_1b1_Al_sc_Meditron.wav"), "--model", str(model), "--out", str(tmp_path / "p.csv")])
    assert "all 4 cycles predicted Crackle" in capsys.readouterr().out


def test_bad_input_writes_no_page(tmp_path):
    model = make_checkpoint(tmp_path / "model.pt")
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    page = tmp_path / "report.html"
    with pytest.raises(StageError, match="none of the 1 files could be classified"):
        main([str(junk), "--model", str(model), "--out", str(tmp_path / "p.csv"), "--report", str(page)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "model.pt"]  # no page, CSV or temporary


@pytest.mark.parametrize("report", ["folder", "report.csv", "model.pt"])
def test_a_report_path_follows_the_out_rules(tmp_path, report):
    model = make_checkpoint(tmp_path / "model.pt")
    recordings = make_recordings(tmp_path / "recordings")
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputPathError):
        main(
            [
                str(recordings),
                "--model",
                str(model),
                "--out",
                str(tmp_path / "p.csv"),
                "--report",
                str(tmp_path / report),
            ]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == before
