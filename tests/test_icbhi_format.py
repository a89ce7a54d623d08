"""src/respiro/data/icbhi.py against the real database's files, and against the ways a file can be wrong.

The real files stay beside the project (five recordings in ../shared/icbhi-sample, the
metadata files in ../shared/icbhi-metadata, or the folders named by ICBHI_SAMPLE_DIR and
ICBHI_METADATA_DIR); tests that need them skip with the reason where they are absent.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from respiro.core.errors import IcbhiFormatError
from respiro.data.icbhi import (
    DEMOGRAPHIC_FILE,
    DIAGNOSIS_FILE,
    ERRATUM_FILE,
    SPLIT_FILE,
    is_recording_name,
    parse_recording_name,
    read_annotations,
    read_demographics,
    read_device_erratum,
    read_diagnosis,
    read_patient_folds,
    read_split_file,
    scan_folder,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# The sample's README: cycles per class (Normal, Crackle, Wheeze, Both) of each recording.
SAMPLE_COUNTS = {
    "101_1b1_Al_sc_Meditron": (12, 0, 0, 0),
    "102_1b1_Ar_sc_Meditron": (13, 0, 0, 0),
    "103_2b2_Ar_mc_LittC2SE": (2, 0, 4, 0),
    "104_1b1_Al_sc_Litt3200": (6, 0, 0, 0),
    "104_1b1_Ar_sc_Litt3200": (4, 0, 10, 0),
}


def shared_folder(variable: str, name: str) -> Path:
    folder = Path(os.environ.get(variable, SHARED / name))
    if not folder.is_dir():
        pytest.skip(f"real ICBHI files not found at {folder} (set {variable} to the folder of {name})")
    return folder


@pytest.fixture(scope="module")
def sample() -> Path:
    return shared_folder("ICBHI_SAMPLE_DIR", "icbhi-sample")


@pytest.fixture(scope="module")
def metadata() -> Path:
    return shared_folder("ICBHI_METADATA_DIR", "icbhi-metadata")


# --- the real files -------------------------------------------------------------------------


def test_real_annotations_give_the_documented_cycles(sample: Path) -> None:
    total = 0
    for stem, expected in SAMPLE_COUNTS.items():
        cycles = read_annotations(sample / f"{stem}.txt")
        labels = Counter(c.label for c in cycles)
        assert tuple(labels[k] for k in range(4)) == expected, stem
        assert all(a.end <= b.start + 1e-9 for a, b in zip(cycles, cycles[1:]))
        total += len(cycles)
    assert total == 51


def test_scan_folder_finds_the_real_recordings(sample: Path) -> None:
    scan = scan_folder(sample)
    assert sorted(found.name.stem for found in scan.recordings) == sorted(SAMPLE_COUNTS)
    assert scan.skipped == []
    assert scan.ignored == ["README.md"]
    name = parse_recording_name("103_2b2_Ar_mc_LittC2SE")
    assert (name.patient, name.index, name.location, name.mode, name.device) == (103, "2b2", "Ar", "mc", "LittC2SE")


def test_real_split_file(metadata: Path) -> None:
    split = read_split_file(metadata / SPLIT_FILE)
    assert len(split) == 920
    assert Counter(split.values()) == {"train": 539, "test": 381}
    sides: dict[int, set[str]] = {}
    for stem, side in split.items():
        sides.setdefault(parse_recording_name(stem).patient, set()).add(side)
    assert len(sides) == 126
    assert sorted(p for p, s in sides.items() if len(s) == 2) == [156, 218]


def test_real_diagnosis_and_demographics(metadata: Path) -> None:
    diagnosis = read_diagnosis(metadata / DIAGNOSIS_FILE)
    assert len(diagnosis) == 126
    assert Counter(diagnosis.values()) == {
        "COPD": 64,
        "Healthy": 26,
        "URTI": 14,
        "Bronchiectasis": 7,
        "Bronchiolitis": 6,
        "Pneumonia": 6,
        "LRTI": 2,
        "Asthma": 1,
    }
    demographics = read_demographics(metadata / DEMOGRAPHIC_FILE)  # CRLF, a blank first line
    assert len(demographics) == 126 and set(demographics) == set(diagnosis)
    first = demographics[101]
    assert (first.age, first.sex, first.adult_bmi, first.child_weight, first.child_height) == (3, "F", None, 19, 99)
    assert demographics[103].adult_bmi == 33 and demographics[103].child_weight is None


def test_real_erratum_and_folds(metadata: Path) -> None:
    erratum = read_device_erratum(metadata / ERRATUM_FILE)
    assert len(erratum) == 91
    assert erratum["101_1b1_Al_sc_Meditron"] == "AKGC417L"
    assert all(stem.endswith("_Meditron") for stem in erratum)
    folds = read_patient_folds(metadata / "patient_list_foldwise.txt")
    assert len(folds) == 126 and set(folds.values()) == {0, 1, 2, 3, 4}


# --- line endings and malformed files -------------------------------------------------------

ANNOTATION = "0.036\t0.579\t0\t0\n0.579\t2.45\t1\t0\n2.45\t3.893\t0\t1\n3.893\t5.793\t1\t1\n"
SPLIT = "101_1b1_Al_sc_Meditron\ttest\n103_2b2_Ar_mc_LittC2SE\ttrain"


def test_lf_and_crlf_files_parse_alike(tmp_path: Path) -> None:
    for name, text in (("101_1b1_Al_sc_Meditron.txt", ANNOTATION), (SPLIT_FILE, SPLIT)):
        (tmp_path / "lf").mkdir(exist_ok=True)
        (tmp_path / "crlf").mkdir(exist_ok=True)
        (tmp_path / "lf" / name).write_bytes(text.encode())
        (tmp_path / "crlf" / name).write_bytes(text.replace("\n", "\r\n").encode())
    lf = read_annotations(tmp_path / "lf" / "101_1b1_Al_sc_Meditron.txt")
    crlf = read_annotations(tmp_path / "crlf" / "101_1b1_Al_sc_Meditron.txt")
    assert lf == crlf and [c.label for c in lf] == [0, 1, 2, 3]
    assert (
        read_split_file(tmp_path / "lf" / SPLIT_FILE)
        == read_split_file(tmp_path / "crlf" / SPLIT_FILE)
        == {
            "101_1b1_Al_sc_Meditron": "test",
            "103_2b2_Ar_mc_LittC2SE": "train",
        }
    )
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("0.036   0.579 0\t0\n")
    assert read_annotations(spaced)[0].end == pytest.approx(0.579)


@pytest.mark.parametrize(
    "bad_line",
    [
        "2.45\t3.893\t0",  # three columns
        "2.45\tabc\t0\t0",  # not a number
        "3.893\t2.45\t0\t0",  # start after end
        "2.45\t3.893\t2\t0",  # a label other than 0/1
        "2.45\t3.893\t0\t1\t1",  # five columns
    ],
)
def test_malformed_annotation_lines_name_the_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "101_1b1_Al_sc_Meditron.txt"
    path.write_text(f"0.036\t0.579\t0\t0\n0.579\t2.45\t0\t0\n{bad_line}\n")
    with pytest.raises(IcbhiFormatError, match=r"101_1b1_Al_sc_Meditron\.txt:3\b"):
        read_annotations(path)


@pytest.mark.parametrize(
    "stem",
    [
        "101_1b1_Al_sc_Meditron.wav",  # with its extension
        "1011_1b1_Al_sc_Meditron",  # four-digit patient
        "101_1b1_Xx_sc_Meditron",  # unknown location
        "101_1b1_Al_zz_Meditron",  # unknown mode
        "101_1b1_Al_sc_iPhone",  # unknown device
        "101_b1_Al_sc_Meditron",  # RecIdx without its number
        "README",
    ],
)
def test_names_outside_the_pattern_are_rejected(stem: str) -> None:
    assert not is_recording_name(stem)
    with pytest.raises(IcbhiFormatError, match=re.escape(repr(stem))):
        parse_recording_name(stem)


# --- scanning a folder ----------------------------------------------------------------------


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scan_folder_pairs_files_and_reports_what_it_skips(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "101_1b1_Al_sc_Meditron.wav")
    touch(tmp_path / "a" / "101_1b1_Al_sc_Meditron.txt", ANNOTATION)
    touch(tmp_path / "b" / "102_1b1_Ar_sc_Meditron.wav")  # no annotation
    touch(tmp_path / "103_2b2_Ar_mc_LittC2SE.txt", ANNOTATION)  # no audio
    touch(tmp_path / "README.txt", "about this folder")
    touch(tmp_path / SPLIT_FILE, SPLIT)
    touch(tmp_path / DIAGNOSIS_FILE, "101\tURTI")
    touch(tmp_path / "notes.wav")  # not an ICBHI name

    scan = scan_folder(tmp_path)
    assert [found.name.stem for found in scan.recordings] == ["101_1b1_Al_sc_Meditron"]
    assert dict(scan.skipped) == {
        str(Path("b") / "102_1b1_Ar_sc_Meditron.wav"): "wav without its annotation .txt",
        "103_2b2_Ar_mc_LittC2SE.txt": "annotation without its .wav",
        "notes.wav": "file name is not PID_RecIdx_Location_Mode_Device",
    }
    assert scan.ignored == ["README.txt"]
    assert set(scan.metadata) == {SPLIT_FILE, DIAGNOSIS_FILE}


def test_scan_folder_refuses_a_stem_in_two_folders(tmp_path: Path) -> None:
    for folder in ("first", "second"):
        touch(tmp_path / folder / "101_1b1_Al_sc_Meditron.wav")
        touch(tmp_path / folder / "101_1b1_Al_sc_Meditron.txt", ANNOTATION)
    with pytest.raises(IcbhiFormatError, match="appears twice"):
        scan_folder(tmp_path)


def test_scan_folder_of_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path / "missing")
