"""SPRSound as a database: its layout, its JSON's known quirks (each test names its quirk), bad
input in one line naming the file and the entry, and its synthetic corpus.

The fixtures are written here, in the real files' form (SJTU-YONGFU-RESEARCH-GRP/SPRSound,
BioCAS2022): `{"record_annotation": "Normal", "event_annotation": [{"start": "5778", "end":
"7419", "type": "Normal"}, ...]}`, times in milliseconds as strings of digits.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from respiro.core.config import SyntheticParams
from respiro.core.errors import DatabaseFormatError
from respiro.core.schemes import SCHEMES
from respiro.data.databases import get_database
from respiro.data.databases.base import AnnotationRef
from respiro.data.databases.sprsound import PARTS, read_events
from respiro.data.databases.sprsound import TYPES as SPRSOUND_TYPES
from respiro.data.raw_summary import summarize_raw
from respiro.data.synthetic.sprsound_layout import write_synthetic_sprsound
from tests.conftest import ROOT, TINY_PARAMS, make_project_copy, run

SPRSOUND = get_database("sprsound")


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def event(start: object, end: object, kind: str) -> dict[str, object]:
    return {"start": start, "end": end, "type": kind}


def recording(root: Path, part: str, stem: str, annotation: object, seconds: float = 2.0) -> None:
    """One recording of the release's layout: its WAV (8 kHz, silence) and its JSON."""
    json_dir, wav_dir = PARTS[part]
    (root / wav_dir).mkdir(parents=True, exist_ok=True)
    sf.write(root / wav_dir / f"{stem}.wav", np.zeros(int(8000 * seconds), np.float32), 8000, subtype="PCM_16")
    write_json(root / json_dir / f"{stem}.json", annotation)


# --- the real files' quirks -------------------------------------------------------------


def test_quirk_record_annotation_key_as_in_the_files_or_recording_annotation_as_in_the_readme(tmp_path):
    files = write_json(tmp_path / "a.json", {"record_annotation": "CAS", "event_annotation": []})
    readme = write_json(tmp_path / "b.json", {"recording_annotation": "CAS", "event_annotation": []})
    assert read_events(files)[0] == read_events(readme)[0] == "CAS"


def test_quirk_start_and_end_as_digit_strings_as_in_the_files_or_numbers_as_in_the_readme(tmp_path):
    strings = write_json(
        tmp_path / "a.json", {"record_annotation": "DAS", "event_annotation": [event("1200", "2100", "Fine Crackle")]}
    )
    numbers = write_json(
        tmp_path / "b.json", {"record_annotation": "DAS", "event_annotation": [event(1200, 2100.0, "Fine Crackle")]}
    )
    (_, a, _), (_, b, _) = read_events(strings), read_events(numbers)
    assert [(e.start, e.end, e.source_label) for e in a] == [(1.2, 2.1, "Fine Crackle")]
    assert [(e.start, e.end) for e in a] == [(e.start, e.end) for e in b]


def test_quirk_events_out_of_time_order_are_sorted_by_start(tmp_path):
    path = write_json(
        tmp_path / "a.json",
        {
            "record_annotation": "Normal",
            "event_annotation": [
                event("9234", "10888", "Normal"),
                event("5778", "7419", "Normal"),
                event("7702", "8879", "Normal"),
            ],
        },
    )
    _, events, merged = read_events(path)
    assert [e.start for e in events] == [5.778, 7.702, 9.234] and merged == 0
    assert [e.entry for e in events] == [" event 2", " event 3", " event 1"]  # messages name the file's order


def test_quirk_overlapping_events_of_one_type_are_merged_and_counted(tmp_path):
    path = write_json(
        tmp_path / "a.json",
        {
            "record_annotation": "CAS",
            "event_annotation": [
                event("1000", "3000", "Wheeze"),
                event("2500", "4000", "Wheeze"),  # overlaps the first wheeze: one event 1.0-4.0 s
                event("2000", "2600", "Rhonchi"),  # overlaps, but another type: kept
                event("4000", "5000", "Wheeze"),  # touches, does not overlap: kept
            ],
        },
    )
    _, events, merged = read_events(path)
    assert merged == 1
    assert [(e.start, e.end, e.source_label) for e in events] == [
        (1.0, 4.0, "Wheeze"),
        (2.0, 2.6, "Rhonchi"),
        (4.0, 5.0, "Wheeze"),
    ]


def test_quirk_poor_quality_recordings_are_left_out_of_event_tasks(tmp_path):
    path = write_json(tmp_path / "a.json", {"record_annotation": "Poor Quality", "event_annotation": []})
    annotation = SPRSOUND.read_annotation(AnnotationRef(path))
    assert annotation.events == [] and "Poor Quality" in annotation.excluded


# --- bad input: one line naming the file and the entry ----------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"record_annotation": "Normal", "event_annotation": [', "not a JSON file"),
        (
            json.dumps(
                {
                    "record_annotation": "Normal",
                    "event_annotation": [event("10", "20", "Normal"), event("500", "400", "Normal")],
                }
            ),
            "event 2: end 400 ms is before start 500 ms",
        ),
        (
            json.dumps({"record_annotation": "CAS", "event_annotation": [event("10", "20", "Squawk")]}),
            "event 1: unknown type 'Squawk'",
        ),
        (
            json.dumps({"record_annotation": "CAS", "event_annotation": [event("1o", "20", "Wheeze")]}),
            "event 1: start must be",
        ),
        (json.dumps({"record_annotation": "Fine", "event_annotation": []}), "record_annotation must be one of"),
        (json.dumps({"event_annotation": []}), "no record_annotation"),
    ],
)
def test_bad_json_gives_one_line_naming_the_file_and_entry(tmp_path, text, says):
    path = write_json(tmp_path / "41000101_3.3_0_p1_1.json", text)
    with pytest.raises(DatabaseFormatError) as err:
        read_events(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_a_wav_without_its_json_is_named(tmp_path):
    recording(tmp_path, "train", "41000101_3.3_0_p1_1", {"record_annotation": "Normal", "event_annotation": []})
    (tmp_path / "train2022_json" / "41000101_3.3_0_p1_1.json").unlink()
    with pytest.raises(DatabaseFormatError, match=r"41000101_3.3_0_p1_1.wav: a WAV without its JSON in train2022_json"):
        SPRSOUND.build_catalog(tmp_path)


# --- the layout -----------------------------------------------------------------------


def test_the_release_layout_gives_parts_patients_and_locations(tmp_path):
    normal = {"record_annotation": "Normal", "event_annotation": [event("100", "900", "Normal")]}
    recording(tmp_path, "train", "41000101_3.3_0_p1_1", normal)
    recording(tmp_path, "train", "41000102_5.1_1_p3_2", normal)
    recording(tmp_path, "test_inter", "41000103_0.8_0_p2_3", normal)
    recording(tmp_path, "test_intra", "41000101_3.3_0_p4_4", normal)
    catalog = SPRSOUND.build_catalog(tmp_path)
    got = {e.stem: (e.official_split, e.patient, e.location) for e in catalog.entries}
    assert got == {
        "41000101_3.3_0_p1_1": ("train", "41000101", "p1"),
        "41000102_5.1_1_p3_2": ("train", "41000102", "p3"),
        "41000103_0.8_0_p2_3": ("test_inter", "41000103", "p2"),
        "41000101_3.3_0_p4_4": ("test_intra", "41000101", "p4"),
    }
    summary = summarize_raw(catalog, "local(x)", SPRSOUND)
    assert summary["recordings_per_split"] == {"train": 2, "test_inter": 1, "test_intra": 1, "unlisted": 0}
    assert summary["patients_on_both_sides"] == ["41000101"]  # the intra-patient test part, by design


def test_every_sprsound_type_has_a_class_in_the_four_class_scheme():
    four = SCHEMES["four"]
    assert {t: four.classes[SPRSOUND.class_of(four, t)] for t in SPRSOUND_TYPES} == {
        "Normal": "Normal",
        "Rhonchi": "Wheeze",
        "Wheeze": "Wheeze",
        "Stridor": "Wheeze",
        "Coarse Crackle": "Crackle",
        "Fine Crackle": "Crackle",
        "Wheeze+Crackle": "Both",
    }


SMALL = SyntheticParams(seed=5, patients=6, recordings=12, recording_seconds=6.0)


def test_the_synthetic_corpus_in_sprsound_layout(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        write_synthetic_sprsound(folder, SMALL, progress=False)
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second).as_posix() for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)  # byte-identical
    catalog = SPRSOUND.build_catalog(first)
    assert len(catalog.entries) == 12 and not catalog.skipped
    parts = Counter(e.official_split for e in catalog.entries)
    assert set(parts) == {"train", "test_inter", "test_intra"}
    poor = [e for e in catalog.entries if e.extra["record_label"] == "Poor Quality"]
    assert len(poor) == 1 and SPRSOUND.read_annotation(poor[0].annotation).excluded
    # The real files' forms: times as digit strings.
    raw = json.loads(next((first / "train2022_json").glob("*.json")).read_text())
    assert all(isinstance(e["start"], str) and e["start"].isdigit() for e in raw["event_annotation"])


@pytest.mark.slow
def test_dvc_repro_on_the_synthetic_sprsound_corpus(tmp_path):
    """The whole pipeline with data.database: sprsound: the manifest's counts per type and part
    equal the JSON files', Poor Quality is counted, and the metrics name the database, the
    scheme and each test part."""
    project = make_project_copy(
        tmp_path / "project", {**TINY_PARAMS, "data": {"database": "sprsound"}, "classes": {"scheme": "event_binary"}}
    )
    run(["dvc", "repro", "evaluate"], project)
    raw = project / "data" / "raw"
    expected: Counter[tuple[str, str]] = Counter()
    for part, (json_dir, _) in PARTS.items():
        for path in (raw / json_dir).glob("*.json"):
            data = json.loads(path.read_text())
            if data["record_annotation"] != "Poor Quality":
                expected.update((part, e["type"]) for e in data["event_annotation"])
    with (project / "data" / "cycles" / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert Counter((r["official_split"], r["source_label"]) for r in rows) == expected
    assert {r["label_name"] for r in rows} <= {"Normal", "Adventitious"}
    segment = json.loads((project / "data" / "reports" / "segment.json").read_text())
    assert sum(segment["recordings_left_out_of_event_tasks"].values()) == 1
    metrics = json.loads((project / "metrics" / "eval" / "metrics.json").read_text())
    assert (metrics["database"], metrics["scheme"]) == ("sprsound", "event_binary")
    assert set(metrics["part_score"]) == {"test_inter", "test_intra"} and "hs" in metrics
    shutil.rmtree(project)


@pytest.mark.slow
def test_a_local_folder_in_the_release_layout_runs_from_raw_files_to_scores(tmp_path):
    """data.database: sprsound, data.source: local and a folder laid out as the 2022 release
    (train2022_wav, train2022_json, test2022_wav, test2022_json/{inter,intra}_test_json): the
    whole pipeline runs, read in place, to scores per official test part."""
    release = tmp_path / "SPRSound"  # what the download stage writes for the tiny params, made in process
    release.mkdir()
    synthetic = yaml.safe_load((ROOT / "params.yaml").read_text())["synthetic"] | TINY_PARAMS["synthetic"]
    write_synthetic_sprsound(release, SyntheticParams(**synthetic), progress=False)
    assert {p.name for p in release.iterdir()} == {"train2022_wav", "train2022_json", "test2022_wav", "test2022_json"}
    data = {"database": "sprsound", "source": "local", "local_path": str(release)}
    project = make_project_copy(
        tmp_path / "project", {**TINY_PARAMS, "data": data, "classes": {"scheme": "event_types"}}
    )
    run(["dvc", "repro"], project)
    expected: Counter[tuple[str, str]] = Counter()
    for part, (json_dir, _) in PARTS.items():
        for path in (release / json_dir).glob("*.json"):
            record = json.loads(path.read_text())
            if record["record_annotation"] != "Poor Quality":
                expected.update((part, e["type"]) for e in record["event_annotation"])
    with (project / "data" / "cycles" / "manifest.csv").open() as f:
        assert Counter((r["official_split"], r["source_label"]) for r in csv.DictReader(f)) == expected
    metrics = json.loads((project / "metrics" / "eval" / "metrics.json").read_text())
    assert (metrics["database"], metrics["scheme"]) == ("sprsound", "event_types")
    assert set(metrics["part_score"]) == {"test_inter", "test_intra"}


def test_a_scheme_without_a_mapping_for_the_database_is_refused_naming_the_key():
    from respiro.core.config import load_params, parse_params
    from respiro.core.errors import ParamsError
    from respiro.data.databases import database_of

    raw = load_params(ROOT / "params.yaml").as_dict()
    with pytest.raises(ParamsError, match=r"^classes.scheme: event_types has no mapping for data.database icbhi"):
        database_of(parse_params({**raw, "classes": {"scheme": "event_types", "own": None, "mapping": None}}))
    with pytest.raises(ParamsError, match=r"^loss.alpha: a list needs 2 weights .*\[Normal, Adventitious\]; got 4"):
        parse_params(
            {
                **raw,
                "classes": {"scheme": "event_binary", "own": None, "mapping": None},
                "loss": {**raw["loss"], "alpha": [1, 1, 1, 1]},
            }
        )


def test_crossdb_scores_every_test_part_and_each_alone():
    from respiro.commands.crossdb import cross_scores, is_test_part

    assert [is_test_part(s) for s in ("train", "test", "test_inter", "test_intra", "")] == [
        False,
        True,
        True,
        True,
        False,
    ]
    four = SCHEMES["four"].classes
    true, pred = np.array([0, 1, 2, 0]), np.array([0, 1, 0, 1])
    scores = cross_scores(true, pred, np.array(["test_inter", "test_inter", "test_intra", "test_intra"]), four)
    assert list(scores) == ["all", "test_inter", "test_intra"]
    assert scores["test_inter"]["icbhi_score"] == 1.0 and scores["test_intra"]["icbhi_score"] == 0.0
    assert scores["all"]["cycles"] == 4 and "hs" not in scores["all"]  # the four classes: the ICBHI score


def test_predict_finds_an_icbhi_txt_or_a_sprsound_json_beside_a_recording(tmp_path):
    from respiro.commands.predict import annotation_for
    from respiro.data.databases import database_of_annotation

    wav = tmp_path / "41000101_3.3_0_p1_1.wav"
    assert annotation_for(wav, "auto") is None
    path = write_json(tmp_path / "41000101_3.3_0_p1_1.json", {"record_annotation": "Normal", "event_annotation": []})
    for found in (annotation_for(wav, "auto"), annotation_for(wav, str(tmp_path))):
        assert found is not None and found[0].name == "sprsound" and found[1].file == path
    assert database_of_annotation(path).name == "sprsound"
    icbhi_txt = tmp_path / "101_1b1_Al_sc_Meditron.txt"
    icbhi_txt.write_text("0.036\t0.579\t0\t0\n")
    assert database_of_annotation(icbhi_txt).name == "icbhi"
    # Known by content, not suffix: a .txt that is not ICBHI's is nobody's.
    (tmp_path / "notes.txt").write_text("recorded in the morning\n")
    for other in (tmp_path / "notes.txt", tmp_path / "x.csv"):
        with pytest.raises(DatabaseFormatError, match=rf"{other.name}: not an annotation file of a known database"):
            database_of_annotation(other)


def test_the_download_stage_stops_on_a_bad_sprsound_file_in_one_line(tmp_path):
    """A local SPRSound folder with one event whose end precedes its start: the stage ends
    with one line naming the file and the event, and writes no summary."""
    import os
    import subprocess
    import sys

    release = tmp_path / "BioCAS2022"
    good = {"record_annotation": "Normal", "event_annotation": [event("100", "900", "Normal")]}
    recording(release, "train", "41000101_3.3_0_p1_1", good)
    bad = {
        "record_annotation": "Normal",
        "event_annotation": [event("100", "900", "Normal"), event("1500", "1200", "Normal")],
    }
    recording(release, "test_inter", "41000102_5.1_1_p3_2", bad)
    repo = tmp_path / "repo"
    for folder in ("src", "stages"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(database="sprsound", source="local", local_path=str(release))
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        [sys.executable, "-m", "stages.download"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": f"{repo / 'src'}:{repo}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    bad_file = release / "test2022_json" / "inter_test_json" / "41000102_5.1_1_p3_2.json"
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"download: error: {bad_file}: event 2: end 1200 ms is before start 1500 ms"
    assert not (repo / "data" / "reports" / "raw.json").exists()
