"""The CSV database (`data.database: csv`): a lab's folder of audio plus one events.csv.

Its layout, every bad input of docs/own-data.md by name (each one line naming the file, row
and column, nothing half-written), the mapping of labels onto a scheme, predict's lookup of a
recording's rows, the synthetic corpus in its layout, and, with DVC, the five real ICBHI
recordings read through a CSV giving the same manifest rows as read as ICBHI.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from respiro.core.config import SyntheticParams, load_params, parse_params
from respiro.core.errors import DatabaseFormatError, MissingInputError, ParamsError
from respiro.core.schemes import SCHEMES, own_scheme
from respiro.data.databases import database_of, database_of_annotation, find_annotation, get_database
from respiro.data.databases.base import AnnotationRef
from respiro.data.databases.events_csv import CsvParams, EventsCsv
from respiro.data.raw_summary import summarize_raw
from tests.conftest import ROOT, TINY_PARAMS, make_project_copy, run

RATE = 4000
HEADER = "recording,start,end,label,patient"


def tone(path: Path, seconds: float, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def lab(tmp_path: Path, rows: str, header: str = HEADER, audio: dict[str, float] | None = None) -> Path:
    """A folder with the audio files `audio` ({path: seconds}) and events.csv of `rows`."""
    folder = tmp_path / "lab"
    for rel, seconds in (audio or {"site1/a.wav": 10.0, "site2/b.flac": 8.0}).items():
        tone(folder / rel, seconds)
    (folder / "events.csv").write_text(f"{header}\n{rows}")
    return folder


GOOD = "site1/a.wav,0.5,2.0,Normal,P1\nsite1/a.wav,2.0,3.5,Crackle,P1\nsite2/b.flac,1.0,2.5,wheezy,BP7\n"
CSV = EventsCsv()


def catalog_of(folder: Path, params: CsvParams | None = None):
    return EventsCsv(params).build_catalog(folder)


# --- the layout ---------------------------------------------------------------------------


def test_any_subfolders_any_names_wav_and_flac_patients_as_strings(tmp_path):
    folder = lab(tmp_path, GOOD)
    tone(folder / "site3" / "never-named.wav", 2.0)
    catalog = catalog_of(folder)
    got = {e.stem: (e.patient, e.sample_rate, e.official_split, e.wav.suffix) for e in catalog.entries}
    assert got == {"site1/a": ("P1", RATE, "", ".wav"), "site2/b": ("BP7", RATE, "", ".flac")}
    # An audio file no row names is counted, not refused.
    assert catalog.skipped == [("site3/never-named.wav", "an audio file events.csv never names")]
    entry = catalog.entries[0]
    events = CSV.read_annotation(entry.annotation).events
    assert [(e.start, e.end, e.source_label, e.entry) for e in events] == [
        (0.5, 2.0, "Normal", " row 2"),
        (2.0, 3.5, "Crackle", " row 3"),
    ]
    summary = summarize_raw(catalog, "local(lab)", EventsCsv())
    assert summary["patients"] == 2 and summary["skipped_files"] == 1


def test_the_split_column_is_the_official_part(tmp_path):
    rows = "a.wav,0,1,Normal,P1,train\nb.wav,0,1,Normal,P2,test_siteB\n"
    folder = lab(tmp_path, rows, HEADER + ",split", {"a.wav": 2.0, "b.wav": 2.0})
    assert {e.stem: e.official_split for e in catalog_of(folder).entries} == {"a": "train", "b": "test_siteB"}


def test_labels_that_are_classes_need_no_mapping_and_the_mapping_maps_the_rest(tmp_path):
    four = SCHEMES["four"]
    database = EventsCsv()
    b = next(e for e in catalog_of(lab(tmp_path, GOOD)).entries if e.stem == "site2/b")
    assert [e.source_label for e in database.read_annotation(b.annotation).events] == ["wheezy"]
    assert database.class_of(four, "Crackle") == 1
    with pytest.raises(
        DatabaseFormatError,
        match=r"events.csv row 4, column label: label 'wheezy' is not a class of classes.scheme four",
    ):
        database.class_of(four, "wheezy")
    mapped = EventsCsv(label_mapping={"wheezy": "Wheeze", "cough": None})
    assert mapped.class_of(four, "wheezy") == 2 and mapped.class_of(four, "cough") is None
    raw = load_params(ROOT / "params.yaml").as_dict()
    classes = {"scheme": "four", "own": None, "mapping": {"wheezy": "Squeak"}}
    with pytest.raises(
        ParamsError, match=r"^classes.mapping: 'wheezy' goes to 'Squeak', not a class of classes.scheme four"
    ):
        parse_params({**raw, "classes": classes})


def test_the_own_scheme_learns_the_labels_as_they_are_written():
    own = own_scheme(("normal breath", "crackles", "wheezes"))
    assert [CSV.class_of(own, label) for label in ("normal breath", "wheezes")] == [0, 2]
    mapped = EventsCsv(label_mapping={"fine crackles": "crackles", "coarse crackles": "crackles"})
    assert mapped.class_of(own, "coarse crackles") == 1
    with pytest.raises(DatabaseFormatError, match=r"label 'squeak' is not a class of classes.scheme own"):
        CSV.class_of(own, "squeak")


def test_params_choose_the_events_file_and_check_the_group():
    raw = load_params(ROOT / "params.yaml").as_dict()
    params = parse_params({**raw, "data": {**raw["data"], "database": "csv"}})
    assert database_of(params).params == CsvParams()
    with pytest.raises(ParamsError, match=r"^unknown key csv.events; csv takes events_file$"):
        database_of(parse_params({**params.as_dict(), "csv": {**raw["csv"], "events": "x.csv"}}))


# --- bad input, each by name ----------------------------------------------------------------


@pytest.mark.parametrize(
    "header,rows,message",
    [
        ("recording,start,end,label", "a.wav,0,1,Normal\n", r"events.csv: no column 'patient' in its header"),
        (HEADER, "site1/a.wav,2.0,1.5,Normal,P1\n", r"events.csv row 2, column end: 1.5 s is not after start 2 s"),
        (HEADER, "site1/a.wav,x,1.5,Normal,P1\n", r"events.csv row 2, column start: expected seconds >= 0; got 'x'"),
        (HEADER, "site1/a.wav,0,1,Normal,\n", r"events.csv row 2, column patient: empty"),
        (HEADER, "../a.wav,0,1,Normal,P1\n", r"events.csv row 2, column recording: '../a.wav' must be a path inside"),
        ("", "", r"events.csv: empty; expected a header recording,start,end,label,patient"),
        (HEADER, "", r"events.csv: no events \(a header and no rows\)"),
        (
            HEADER,
            "site1/a.wav,0,2,Normal,P1\nsite1/a.wav,1.5,3,Crackle,P1\n",
            r"events.csv rows 2 and 3, column start: events of site1/a.wav overlap \(0-2 s and 1.5-3 s\)",
        ),
        (
            HEADER,
            "site1/a.wav,0,1,Normal,P1\nsite1/a.wav,1,2,Normal,P2\n",
            r"events.csv row 3, column patient: 'P2', but row 2 gives site1/a.wav 'P1'",
        ),
        (
            HEADER + ",split",
            "site1/a.wav,0,1,Normal,P1,train\nsite2/b.flac,0,1,Normal,P1,test\n",
            r"events.csv rows 2 and 3, column split: patient 'P1' is in train \(site1/a.wav\) and test "
            r"\(site2/b.flac\); a patient on both sides leaks",
        ),
        (
            HEADER + ",split",
            "site1/a.wav,0,1,Normal,P1,dev\n",
            r"events.csv row 2, column split: expected train, test or test_<part>; got 'dev'",
        ),
    ],
    ids=[
        "missing-column",
        "end-before-start",
        "not-seconds",
        "empty-patient",
        "outside-the-folder",
        "empty-csv",
        "header-only",
        "overlapping-events",
        "two-patients-one-recording",
        "patient-in-train-and-test",
        "unknown-split",
    ],
)
def test_a_malformed_events_file_is_refused_naming_file_row_and_column(tmp_path, header, rows, message):
    folder = lab(tmp_path, rows, header)
    if not header:
        (folder / "events.csv").write_text("")
    with pytest.raises(DatabaseFormatError, match=message):
        catalog_of(folder)


def test_a_recording_the_csv_names_that_is_not_there(tmp_path):
    folder = lab(tmp_path, "site1/a.wav,0,1,Normal,P1\nsite1/gone.wav,0,1,Normal,P1\n")
    with pytest.raises(DatabaseFormatError, match=r"events.csv row 3, column recording: site1/gone.wav is not in"):
        catalog_of(folder)


def test_an_event_past_the_end_of_its_recording(tmp_path):
    folder = lab(tmp_path, "site2/b.flac,7.5,8.005,Normal,P1\nsite1/a.wav,9,10.5,Normal,P2\n")
    # 5 ms past the end of b.flac is rounding; half a second past a.wav's is not.
    with pytest.raises(
        DatabaseFormatError, match=r"events.csv row 3, column end: 10.5 s is past the end of site1/a.wav"
    ):
        catalog_of(folder)


def test_the_download_stage_leaves_nothing_half_written(tmp_path):
    """A bad events.csv stops the download stage in one line; data/raw is not written."""
    folder = lab(tmp_path, "site1/a.wav,0,1,Normal,P1\nsite1/a.wav,0.5,2,Normal,P1\n")
    repo = tmp_path / "repo"
    for part in ("src", "stages"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(database="csv", source="local", local_path=str(folder))
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        [sys.executable, "-m", "stages.download"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"download: error: {(folder / 'events.csv').resolve()} rows 2 and 3, column start: events of site1/a.wav "
        "overlap (0-1 s and 0.5-2 s); each event is its own span: trim or merge them"
    ]
    assert not (repo / "data" / "raw").exists()


def test_a_local_folder_without_the_events_file_is_refused(tmp_path):
    folder = tmp_path / "audio-only"
    tone(folder / "a.wav", 1.0)
    with pytest.raises(MissingInputError, match=r"holds no events.csv \(csv.events_file\)"):
        CSV.use_local(str(folder), tmp_path / "raw")


# --- predict --------------------------------------------------------------------------------


def test_predict_finds_a_recordings_rows_in_the_nearest_events_file(tmp_path):
    folder = lab(tmp_path, GOOD)
    found = find_annotation(folder / "site1" / "a.wav")
    assert found is not None and found[0].name == "csv" and found[1].recording == "site1/a"
    assert [e.source_label for e in found[0].read_annotation(found[1]).events] == ["Normal", "Crackle"]
    assert find_annotation(tone(folder / "site1" / "unnamed.wav", 1.0)) is None
    # Named explicitly (--annotations events.csv), it is known by its header.
    database = database_of_annotation(folder / "events.csv")
    assert database.name == "csv" and database.annotation_holds_many
    assert database.annotation_in(folder / "events.csv", folder / "site2" / "b.flac") == AnnotationRef(
        (folder / "events.csv").resolve(), "site2/b"
    )


# --- the synthetic corpus in this layout ----------------------------------------------------

SMALL = SyntheticParams(seed=5, patients=6, recordings=12, recording_seconds=6.0)


def test_the_synthetic_corpus_in_the_csv_layout_is_icbhis_events(tmp_path):
    for run_dir in ("a", "b", "icbhi"):
        (tmp_path / run_dir).mkdir()
    CSV.write_synthetic(tmp_path / "a", SMALL, progress=False)
    CSV.write_synthetic(tmp_path / "b", SMALL, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    icbhi = get_database("icbhi")
    icbhi.write_synthetic(tmp_path / "icbhi", SMALL, progress=False)
    expected = sorted(
        (e.patient, e.stem, ev.start, ev.end, ev.source_label)
        for e in icbhi.build_catalog(tmp_path / "icbhi").entries
        for ev in icbhi.read_annotation(e.annotation).events
    )
    database = EventsCsv()
    got = sorted(
        (e.patient, e.stem.split("/")[1], ev.start, ev.end, ev.source_label)
        for e in database.build_catalog(tmp_path / "a").entries
        for ev in database.read_annotation(e.annotation).events
    )
    assert got == expected and not any((tmp_path / "a").glob("tmp*"))


# --- with DVC: the five real recordings, as ICBHI and as a CSV ------------------------------


def icbhi_sample_as_csv(sample: Path, folder: Path) -> None:
    """The sample's recordings in `folder`, described by one events.csv converted from their .txt."""
    folder.mkdir()
    rows = []
    for txt in sorted(sample.glob("*.txt")):
        shutil.copy(txt.with_suffix(".wav"), folder / txt.with_suffix(".wav").name)
        for line in txt.read_text().splitlines():
            start, end, crackles, wheezes = line.split()
            label = ("Normal", "Crackle", "Wheeze", "Both")[int(crackles) + 2 * int(wheezes)]
            rows.append(f"{txt.stem}.wav,{start},{end},{label},{txt.name.split('_')[0]}")
    (folder / "events.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")


MANIFEST_COLUMNS = ("recording", "patient", "start", "end", "seconds", "label", "label_name", "source_label")


@pytest.mark.slow
def test_the_real_sample_through_a_csv_gives_the_manifest_rows_of_icbhi(tmp_path, icbhi_sample):
    folder = tmp_path / "lab"
    icbhi_sample_as_csv(icbhi_sample, folder)
    manifests = {}
    for database, local in (("icbhi", icbhi_sample), ("csv", folder)):
        data = {"database": database, "source": "local", "local_path": str(local)}
        project = make_project_copy(tmp_path / database, {**TINY_PARAMS, "data": data})
        run(["dvc", "repro", "segment"], project)
        with (project / "data" / "cycles" / "manifest.csv").open() as f:
            manifests[database] = [{k: r[k] for k in MANIFEST_COLUMNS} for r in csv.DictReader(f)]
    assert len(manifests["icbhi"]) == 51 and manifests["csv"] == manifests["icbhi"]


@pytest.mark.slow
def test_own_recordings_run_to_scores_per_test_part_and_predict_reads_their_rows(tmp_path):
    """The tiny synthetic corpus as a lab's folder with two test sites and a label of its own:
    dvc repro runs it from raw files to scores per test part; predict --report reads a
    recording's rows; crossdb scores each site."""
    folder = tmp_path / "lab"
    folder.mkdir()
    synthetic = yaml.safe_load((ROOT / "params.yaml").read_text())["synthetic"] | TINY_PARAMS["synthetic"]
    CSV.write_synthetic(folder, SyntheticParams(**synthetic), progress=False)
    with (folder / "events.csv").open() as f:
        rows = list(csv.DictReader(f))
    test_patients = sorted({r["patient"] for r in rows if r["split"] == "test"})
    for r in rows:  # half the test patients were recorded at a second site
        if r["split"] == "test" and r["patient"] in test_patients[: len(test_patients) // 2]:
            r["split"] = "test_siteB"
        r["label"] = {"Wheeze": "wheezes"}.get(r["label"], r["label"])  # the lab's own word
    with (folder / "events.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = {"database": "csv", "source": "local", "local_path": str(folder)}
    project = make_project_copy(
        tmp_path / "project", {**TINY_PARAMS, "data": data, "classes": {"mapping": {"wheezes": "Wheeze"}}}
    )
    run(["dvc", "repro"], project)
    metrics = json.loads((project / "metrics" / "eval" / "metrics.json").read_text())
    assert metrics["database"] == "csv" and set(metrics["part_score"]) == {"test", "test_siteB"}
    recording = next(r["recording"] for r in rows if r["split"] == "test_siteB")
    report = tmp_path / "report.html"
    predict = ["predict", str(folder / recording), "--model", "models/model.pt", "--report", str(report)]
    done = run([sys.executable, "-m", "respiro", *predict, "--out", str(tmp_path / "p.csv")], project)
    predicted = list(csv.DictReader((tmp_path / "p.csv").open()))
    expected = [r for r in rows if r["recording"] == recording]
    assert {p["unit"] for p in predicted} == {"cycle"} and len(predicted) == len(expected), done.stderr
    assert [p["annotated_label"] for p in predicted] == [r["label"] for r in expected]
    assert report.is_file()
    # The lab's own classes instead of the paper's four: only segment, train and evaluate rerun.
    own = ["Normal", "Crackle", "wheezes", "Both"]
    rerun = run(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "classes.scheme=own",
            "-S",
            f"classes.own=[{','.join(own)}]",
            "-S",
            "classes.mapping=null",
        ],
        project,
    )
    assert "Running stage 'segment'" in rerun.stdout and "Running stage 'resample'" not in rerun.stdout
    metrics = json.loads((project / "metrics" / "eval" / "metrics.json").read_text())
    assert metrics["scheme"] == "own" and list(metrics["recall"]) == own
    # crossdb scores a checkpoint on this workspace's test parts: the lab's two sites too.
    out = tmp_path / "crossdb.json"
    run([sys.executable, "-m", "respiro", "crossdb", "--model", "models/model.pt", "--out", str(out)], project)
    assert set(json.loads(out.read_text())["scores"]) == {"all", "test", "test_siteB"}
