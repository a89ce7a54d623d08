"""The ICBHI 2017 database's file formats: names, annotations, split and metadata files.

Everything that knows what an ICBHI file looks like lives here, so the synthetic corpus, the
real archive and a user's own folder go through the same parser. Every parser accepts LF and
CRLF line endings, tabs and runs of spaces (the copies of these files in circulation differ).

Errors raise `IcbhiFormatError` with the file and line, so a user can open the file at the
right place; what the pipeline may skip instead (a wav without annotation, ...) is decided by
`scan_folder`, which returns the skips for the caller to report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from respiro.core.errors import IcbhiFormatError, MissingInputError

LOCATIONS: tuple[str, ...] = ("Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr")
MODES: tuple[str, ...] = ("sc", "mc")
# Nominal sample rate of each device in the real database. Meditron files are 4 kHz, except
# a few at 10 kHz and the 91 of the erratum, which are really AKGC417L/LittC2SE at 44.1 kHz.
DEVICE_RATES: dict[str, int] = {"AKGC417L": 44100, "LittC2SE": 44100, "Litt3200": 4000, "Meditron": 4000}
SPLITS: tuple[str, ...] = ("train", "test")

SPLIT_FILE = "ICBHI_challenge_train_test.txt"
DIAGNOSIS_FILE = "ICBHI_Challenge_diagnosis.txt"
DEMOGRAPHIC_FILE = "ICBHI_Challenge_demographic_information.txt"
ERRATUM_FILE = "filename_differences.txt"

_NAME = re.compile(
    r"^(?P<patient>\d{3})_(?P<index>\d+[a-z]\d+)"
    rf"_(?P<location>{'|'.join(LOCATIONS)})_(?P<mode>{'|'.join(MODES)})_(?P<device>{'|'.join(DEVICE_RATES)})$"
)


def label_of(crackle: int, wheeze: int) -> int:
    """Class index of a cycle: (0,0) Normal=0, (1,0) Crackle=1, (0,1) Wheeze=2, (1,1) Both=3."""
    return int(crackle) + 2 * int(wheeze)


@dataclass(frozen=True)
class RecordingName:
    """The parts of an ICBHI recording stem `PID_RecIdx_Location_Mode_Device`."""

    stem: str
    patient: int
    index: str
    location: str
    mode: str
    device: str


def parse_recording_name(stem: str) -> RecordingName:
    """Split a stem such as `101_1b1_Al_sc_Meditron` into its fields, or raise IcbhiFormatError."""
    match = _NAME.match(stem)
    if match is None:
        raise IcbhiFormatError(
            f"{stem!r} is not an ICBHI recording name PID_RecIdx_Location_Mode_Device "
            f"(Location in {', '.join(LOCATIONS)}; Mode in {', '.join(MODES)}; "
            f"Device in {', '.join(DEVICE_RATES)})"
        )
    return RecordingName(
        stem=stem,
        patient=int(match["patient"]),
        index=match["index"],
        location=match["location"],
        mode=match["mode"],
        device=match["device"],
    )


def is_recording_name(stem: str) -> bool:
    return _NAME.match(stem) is not None


@dataclass(frozen=True)
class Cycle:
    """One annotated respiratory cycle, in seconds from the start of its recording."""

    start: float
    end: float
    crackle: int
    wheeze: int
    line: int  # 1-based line in the annotation file, for messages

    @property
    def label(self) -> int:
        return label_of(self.crackle, self.wheeze)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a text file as (1-based line number, whitespace-split fields)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise IcbhiFormatError(f"{path}: not a UTF-8 text file ({err})") from err
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _flag(path: Path, line: int, name: str, value: str) -> int:
    if value not in ("0", "1"):
        raise IcbhiFormatError(f"{path}:{line}: {name} must be 0 or 1, got {value!r}")
    return int(value)


def read_annotations(path: Path) -> list[Cycle]:
    """Parse an annotation file: one cycle per line, `start end crackles wheezes`, no header.

    An empty file gives an empty list (the caller decides what that means). A malformed
    line raises IcbhiFormatError naming the file and line: a silently dropped cycle would
    change the class counts that every score depends on.
    """
    cycles = []
    for n, fields in _lines(path):
        if len(fields) != 4:
            raise IcbhiFormatError(
                f"{path}:{n}: expected 4 columns 'start end crackles wheezes', got {len(fields)}: {' '.join(fields)!r}"
            )
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError as err:
            raise IcbhiFormatError(
                f"{path}:{n}: start and end must be numbers, got {fields[0]!r} {fields[1]!r}"
            ) from err
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise IcbhiFormatError(f"{path}:{n}: start and end must be finite and start >= 0, got {start} {end}")
        if start > end:
            raise IcbhiFormatError(f"{path}:{n}: start {start} is after end {end}")
        crackle = _flag(path, n, "crackles", fields[2])
        wheeze = _flag(path, n, "wheezes", fields[3])
        cycles.append(Cycle(start=start, end=end, crackle=crackle, wheeze=wheeze, line=n))
    return cycles


def read_split_file(path: Path) -> dict[str, str]:
    """Parse `stem<TAB>train|test` lines into {stem: split}; a repeated stem is an error."""
    split: dict[str, str] = {}
    for n, fields in _lines(path):
        if len(fields) != 2 or fields[1] not in SPLITS:
            raise IcbhiFormatError(f"{path}:{n}: expected 'stem train|test', got {' '.join(fields)!r}")
        stem, side = fields
        if stem in split:
            raise IcbhiFormatError(f"{path}:{n}: recording {stem!r} is listed twice")
        split[stem] = side
    return split


def read_diagnosis(path: Path) -> dict[int, str]:
    """Parse `pid<TAB>diagnosis` lines into {patient: diagnosis}."""
    diagnosis: dict[int, str] = {}
    for n, fields in _lines(path):
        if len(fields) != 2 or not fields[0].isdigit():
            raise IcbhiFormatError(f"{path}:{n}: expected 'patient diagnosis', got {' '.join(fields)!r}")
        diagnosis[int(fields[0])] = fields[1]
    return diagnosis


@dataclass(frozen=True)
class Demographics:
    """One row of the demographic file; None where the database writes NA."""

    age: float | None
    sex: str | None
    adult_bmi: float | None
    child_weight: float | None
    child_height: float | None


def read_demographics(path: Path) -> dict[int, Demographics]:
    """Parse `pid age sex adult_BMI child_weight child_height` rows (NA = missing)."""

    def number(value: str, n: int) -> float | None:
        if value == "NA":
            return None
        try:
            return float(value)
        except ValueError as err:
            raise IcbhiFormatError(f"{path}:{n}: expected a number or NA, got {value!r}") from err

    rows: dict[int, Demographics] = {}
    for n, fields in _lines(path):
        if len(fields) != 6 or not fields[0].isdigit():
            raise IcbhiFormatError(
                f"{path}:{n}: expected 6 columns 'pid age sex bmi weight height', got {' '.join(fields)!r}"
            )
        rows[int(fields[0])] = Demographics(
            age=number(fields[1], n),
            sex=None if fields[2] == "NA" else fields[2],
            adult_bmi=number(fields[3], n),
            child_weight=number(fields[4], n),
            child_height=number(fields[5], n),
        )
    return rows


def read_device_erratum(path: Path) -> dict[str, str]:
    """Parse the erratum list into {file stem: true device}.

    Each line is a quoted stem written with the true device, e.g. `'101_1b1_Al_sc_AKGC417L'`
    for the file `101_1b1_Al_sc_Meditron`; all such files are named Meditron.
    """
    corrected: dict[str, str] = {}
    for n, fields in _lines(path):
        written = " ".join(fields).strip("'\"")
        try:
            name = parse_recording_name(written)
        except IcbhiFormatError as err:
            raise IcbhiFormatError(f"{path}:{n}: {err}") from err
        file_stem = f"{name.patient:03d}_{name.index}_{name.location}_{name.mode}_Meditron"
        corrected[file_stem] = name.device
    return corrected


def read_patient_folds(path: Path) -> dict[str, int]:
    """Parse `pid fold` lines (RespireNet's patient-wise folds) into {patient id: fold}."""
    folds: dict[str, int] = {}
    for n, fields in _lines(path):
        if len(fields) != 2 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise IcbhiFormatError(f"{path}:{n}: expected 'patient fold', got {' '.join(fields)!r}")
        folds[str(int(fields[0]))] = int(fields[1])
    return folds


@dataclass(frozen=True)
class RecordingFiles:
    """A recording found on disk: its parsed name and its two files."""

    name: RecordingName
    wav: Path
    annotation: Path


@dataclass
class FolderScan:
    """What `scan_folder` found: complete recordings, metadata files, and what it skipped."""

    recordings: list[RecordingFiles]
    metadata: dict[str, Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    ignored: list[str] = field(default_factory=list)  # other files, never read as data


def scan_folder(root: Path) -> FolderScan:
    """Find ICBHI recordings (wav + txt pairs) and metadata files anywhere under `root`.

    A wav without its annotation, an annotation without its wav and a wav whose name is not
    an ICBHI name are skipped and returned in `skipped`; a .txt whose name is not an ICBHI
    name is metadata or documentation and is never read as an annotation. Two files with
    the same stem in different folders make the data ambiguous: that is an error.
    """
    if not root.is_dir():
        raise MissingInputError(f"{root}: raw data folder does not exist")
    wavs: dict[str, Path] = {}
    txts: dict[str, Path] = {}
    metadata: dict[str, Path] = {}
    scan = FolderScan(recordings=[], metadata=metadata)
    known_metadata = {name.lower(): name for name in (SPLIT_FILE, DIAGNOSIS_FILE, DEMOGRAPHIC_FILE, ERRATUM_FILE)}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        if suffix == ".txt" and path.name.lower() in known_metadata:
            metadata[known_metadata[path.name.lower()]] = path
        elif suffix in (".wav", ".txt"):
            if not is_recording_name(path.stem):
                if suffix == ".wav":
                    scan.skipped.append((rel, "file name is not PID_RecIdx_Location_Mode_Device"))
                else:
                    scan.ignored.append(rel)
                continue
            found = wavs if suffix == ".wav" else txts
            if path.stem in found:
                raise IcbhiFormatError(
                    f"recording {path.stem!r} appears twice: {found[path.stem].relative_to(root)} and {rel}"
                )
            found[path.stem] = path
        else:
            scan.ignored.append(rel)
    for stem in sorted(wavs.keys() | txts.keys()):
        if stem not in txts:
            scan.skipped.append((str(wavs[stem].relative_to(root)), "wav without its annotation .txt"))
        elif stem not in wavs:
            scan.skipped.append((str(txts[stem].relative_to(root)), "annotation without its .wav"))
        else:
            scan.recordings.append(RecordingFiles(parse_recording_name(stem), wavs[stem], txts[stem]))
    return scan
