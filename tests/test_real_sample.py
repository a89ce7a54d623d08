"""The five real ICBHI recordings beside the project go through the real stage scripts,
download (as a local folder) -> resample -> normalize -> segment, with the counts of their
README: 51 cycles, Normal 37, Crackle 0, Wheeze 14, Both 0."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import yaml

from respiro.audio.segment import CycleTable
from respiro.audio.store import AudioStore
from tests.conftest import ROOT

EXPECTED = {  # recording: (Normal, Crackle, Wheeze, Both), from ../shared/icbhi-sample/README.md
    "101_1b1_Al_sc_Meditron": (12, 0, 0, 0),
    "102_1b1_Ar_sc_Meditron": (13, 0, 0, 0),
    "103_2b2_Ar_mc_LittC2SE": (2, 0, 4, 0),
    "104_1b1_Al_sc_Litt3200": (6, 0, 0, 0),
    "104_1b1_Ar_sc_Litt3200": (4, 0, 10, 0),
}


def test_real_recordings_through_download_to_segment(tmp_path, icbhi_sample):
    before = {p.name: p.stat().st_mtime_ns for p in icbhi_sample.iterdir()}
    for part in ("src", "stages"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="local", local_path=str(icbhi_sample))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("download", "resample", "normalize", "segment"):
        result = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, f"{stage}: {result.stderr}"

    report = json.loads((tmp_path / "data" / "reports" / "segment.json").read_text())
    assert report["cycles"] == 51 and report["skipped"] == 0
    assert report["cycles_per_class"] == {"Normal": 37, "Crackle": 0, "Wheeze": 14, "Both": 0}
    with (tmp_path / "data" / "cycles" / "manifest.csv").open() as f:
        manifest = list(csv.DictReader(f))
    for stem, counts in EXPECTED.items():
        labels = [int(r["label"]) for r in manifest if r["recording"] == stem]
        assert tuple(np.bincount(labels, minlength=4)) == counts, stem
    # Every cycle is cut at 4 kHz whatever the recording's own rate (44.1 kHz or 4 kHz): as
    # many samples as the manifest's seconds say.
    store = AudioStore(tmp_path / "data" / "resampled")
    cycles = CycleTable.open(tmp_path / "data" / "cycles", store)
    assert cycles.rate == 4000 and len(cycles) == 51
    lengths = [len(c) for c in cycles.cut(store, 0, 51)]
    assert lengths == [round(float(r["seconds"]) * 4000) for r in manifest]
    assert all(np.isfinite(c).all() for c in cycles.cut(store, 0, 51))
    rates = {r["recording"]: r["source_rate"] for r in manifest}
    assert rates["101_1b1_Al_sc_Meditron"] == "44100" and rates["104_1b1_Al_sc_Litt3200"] == "4000"
    # The real files are only read: none changed, nothing was written beside them.
    assert {p.name: p.stat().st_mtime_ns for p in icbhi_sample.iterdir()} == before
