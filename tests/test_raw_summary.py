"""data/reports/raw.json on five real ICBHI recordings, through the same path as the real data:
materialize_raw(source=local) -> the ICBHI database's catalog -> summarize_raw, and the download stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from respiro.core.config import load_params, parse_params
from respiro.core.errors import IcbhiFormatError
from respiro.data.databases import database_of
from respiro.data.databases.icbhi import UNKNOWN_44K_DEVICE
from respiro.data.icbhi import ERRATUM_FILE, SPLIT_FILE
from respiro.data.raw_folder import IN_PLACE_FILE, raw_root
from respiro.data.raw_summary import summarize_raw

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("ICBHI_SAMPLE_DIR", REPO.parent / "shared" / "icbhi-sample"))
METADATA = Path(os.environ.get("ICBHI_METADATA_DIR", REPO.parent / "shared" / "icbhi-metadata"))

pytestmark = pytest.mark.skipif(
    not (SAMPLE / "101_1b1_Al_sc_Meditron.wav").is_file() or not (METADATA / SPLIT_FILE).is_file(),
    reason=f"the real ICBHI sample ({SAMPLE}, env ICBHI_SAMPLE_DIR) or metadata ({METADATA}, "
    "env ICBHI_METADATA_DIR) is absent",
)

# From the sample's README: cycles (N/C/W/B) per recording, and the official split file.
CLASS_TOTALS = {"Normal": 37, "Crackle": 0, "Wheeze": 14, "Both": 0}
AUDIO_SECONDS = 3 * 882000 / 44100 + (63424 + 102336) / 4000


def summary_of(local_path: Path, out_dir: Path, erratum: Path | None) -> dict:
    base = load_params(REPO / "params.yaml").as_dict()
    params = parse_params(
        {
            **base,
            "data": {**base["data"], "source": "local", "local_path": str(local_path)},
            "icbhi": {**base["icbhi"], "erratum_file": str(erratum) if erratum else None},
        }
    )
    out_dir.mkdir()
    icbhi = database_of(params)
    source = icbhi.acquire(params.data, params.synthetic, out_dir, progress=False)
    return summarize_raw(icbhi.build_catalog(raw_root(out_dir)), source, icbhi)


def copy_sample(to: Path) -> Path:
    """The five recordings in pytest's tmp folder (never into the project tree)."""
    shutil.copytree(SAMPLE, to, ignore=shutil.ignore_patterns("README.md"))
    return to


def test_five_real_recordings_with_the_erratum(tmp_path: Path) -> None:
    summary = summary_of(SAMPLE, tmp_path / "raw", METADATA / ERRATUM_FILE)
    assert summary["source"] == f"local({SAMPLE})" and summary["synthetic"] is False
    assert summary["recordings"] == 5 and summary["patients"] == 4
    assert summary["cycles"] == 51 and summary["cycles_per_class"] == CLASS_TOTALS
    assert summary["recordings_per_device"] == {"Litt3200": 2, "LittC2SE": 1, "Meditron": 2}
    # The two 44.1 kHz "Meditron" files are AKGC417L recordings according to the erratum.
    assert summary["recordings_per_device_corrected"] == {"AKGC417L": 2, "Litt3200": 2, "LittC2SE": 1}
    assert summary["recordings_per_sample_rate"] == {"4000": 2, "44100": 3}
    assert summary["recordings_per_subtype"] == {"PCM_16": 3, "PCM_24": 1, "PCM_32": 1}
    assert summary["audio_seconds"] == pytest.approx(AUDIO_SECONDS, abs=1e-3)
    assert summary["device_erratum"] == str(METADATA / ERRATUM_FILE)
    assert (summary["skipped_files"], summary["unreadable_files"], summary["split_file_names_unknown"]) == (0, 0, 0)
    # No split file: every cycle is outside the official split.
    assert summary["recordings_per_split"] == {"train": 0, "test": 0, "unlisted": 5}
    assert summary["cycles_per_split"] == {"train": 0, "test": 0, "unlisted": 51}


def test_without_the_erratum_a_44k_meditron_is_not_called_a_meditron(tmp_path: Path) -> None:
    summary = summary_of(SAMPLE, tmp_path / "raw", None)
    assert summary["recordings_per_device_corrected"] == {UNKNOWN_44K_DEVICE: 2, "Litt3200": 2, "LittC2SE": 1}
    assert summary["device_erratum"] == ""


def test_the_official_split_file_beside_the_recordings(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "icbhi")
    shutil.copy(METADATA / SPLIT_FILE, folder / SPLIT_FILE)
    summary = summary_of(folder, tmp_path / "raw", METADATA / ERRATUM_FILE)
    # 103_2b2_Ar_mc_LittC2SE (2 Normal, 4 Wheeze) is train, the other four are test.
    assert summary["recordings_per_split"] == {"train": 1, "test": 4, "unlisted": 0}
    assert summary["cycles_per_split"] == {"train": 6, "test": 45, "unlisted": 0}
    assert summary["cycles_per_split_class"] == {
        "train": {"Normal": 2, "Crackle": 0, "Wheeze": 4, "Both": 0},
        "test": {"Normal": 35, "Crackle": 0, "Wheeze": 10, "Both": 0},
        "unlisted": {"Normal": 0, "Crackle": 0, "Wheeze": 0, "Both": 0},
    }
    assert summary["patients"] == 4 and summary["patients_on_both_sides"] == []
    assert summary["split_file_names_unknown"] == 920 - 5


def test_a_malformed_annotation_names_its_file_and_line(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "icbhi")
    broken = folder / "104_1b1_Al_sc_Litt3200.txt"
    lines = broken.read_text().splitlines()
    broken.write_text("\n".join([*lines[:2], "0.5 1.0 2 0", *lines[2:]]) + "\n")
    with pytest.raises(IcbhiFormatError, match=r"104_1b1_Al_sc_Litt3200\.txt:3: crackles must be 0 or 1"):
        summary_of(folder, tmp_path / "raw", None)


def stage_tree(tmp_path: Path, erratum_file: str | None = None, **data: object) -> Path:
    """A copy of what `python -m stages.download` needs, with `data:` values (and icbhi.erratum_file) replaced."""
    repo = tmp_path / "repo"
    for folder in ("src", "stages"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(data)
    raw["icbhi"]["erratum_file"] = erratum_file
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    return repo


def run_download(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run(
        [sys.executable, "-m", "stages.download"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )


def test_download_stage_on_a_local_folder(tmp_path: Path) -> None:
    repo = stage_tree(tmp_path, source="local", local_path=str(SAMPLE), erratum_file=str(METADATA / ERRATUM_FILE))
    done = run_download(repo)
    assert done.returncode == 0, done.stderr
    line = f"download: local({SAMPLE}): 5 recordings, 4 patients, 51 cycles, {AUDIO_SECONDS / 60:.1f} min of audio in "
    assert done.stdout.startswith(line) and done.stdout.count("\n") == 1
    assert [p.name for p in (repo / "data" / "raw").iterdir()] == [IN_PLACE_FILE]  # the folder is read in place
    metrics = json.loads((repo / "data" / "reports" / "raw.json").read_text())
    assert metrics["recordings"] == 5 and metrics["cycles_per_class"] == CLASS_TOTALS
    assert metrics["recordings_per_device_corrected"]["AKGC417L"] == 2
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["raw", "reports"]  # no temporaries left
    assert [p.name for p in (repo / "data" / "reports").iterdir()] == ["raw.json"]


def test_download_stage_on_the_default_local_folder_fails_in_one_line(tmp_path: Path) -> None:
    repo = stage_tree(tmp_path, source="local")
    shutil.copytree(
        REPO / "data" / "local",
        repo / "data" / "local",
        ignore=lambda _, names: [n for n in names if n not in ("README.md", ".gitignore")],
    )
    done = run_download(repo)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("download: error: data.local_path=data/local holds no ICBHI recordings; put ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (repo / "data" / "raw").exists() and not (repo / "data" / "reports").exists()
