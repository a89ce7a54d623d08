"""The catalog of a raw ICBHI folder: one row per usable recording, with what we know of it.

Built from the folder alone (file names, WAV headers, metadata files), without decoding audio,
so the download stage can summarise what was loaded and the audio stages know what to read.
Also the rows the audio stages write from it: one per recording (`recording_row`, the
resample stage's recordings.csv) and one per annotated cycle (`cycle_row`, the segment
stage's manifest.csv, which every later stage reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from respiro.core.config import CLASS_NAMES
from respiro.data.icbhi import (
    DIAGNOSIS_FILE,
    ERRATUM_FILE,
    SPLIT_FILE,
    Cycle,
    FolderScan,
    RecordingName,
    read_device_erratum,
    read_diagnosis,
    read_split_file,
    scan_folder,
)

# A file named Meditron at 44.1 kHz is one of the database's misnamed recordings (its
# erratum): without the erratum list we know it is not a Meditron, not which device it is.
UNKNOWN_44K_DEVICE = "AKGC417L-or-LittC2SE"


def corrected_device(name: RecordingName, sample_rate: int, erratum: dict[str, str]) -> str:
    """The device a recording was really made with: the erratum's word, else the file name's,
    except that a 44.1 kHz "Meditron" is never reported as a Meditron."""
    if name.stem in erratum:
        return erratum[name.stem]
    if name.device == "Meditron" and sample_rate == 44100:
        return UNKNOWN_44K_DEVICE
    return name.device


@dataclass(frozen=True)
class CatalogEntry:
    name: RecordingName
    wav: Path
    annotation: Path
    sample_rate: int
    frames: int
    channels: int
    subtype: str
    device_corrected: str
    official_split: str  # "train", "test", or "" where the split file does not name it
    diagnosis: str  # "" where unknown


@dataclass
class Catalog:
    entries: list[CatalogEntry]
    scan: FolderScan
    unreadable: list[tuple[str, str]]  # (file, reason): WAV headers soundfile cannot read
    split_unknown: list[str]  # stems the split file names that are not in the folder
    erratum_source: str  # where the device erratum came from, or "" if none


def build_catalog(raw_dir: Path, erratum_file: Path | None = None) -> Catalog:
    """Scan `raw_dir`, read every WAV header and the metadata files found there.

    `erratum_file` (the database's filename_differences.txt) overrides one found in the folder.
    """
    scan = scan_folder(raw_dir)
    split = read_split_file(scan.metadata[SPLIT_FILE]) if SPLIT_FILE in scan.metadata else {}
    diagnosis = read_diagnosis(scan.metadata[DIAGNOSIS_FILE]) if DIAGNOSIS_FILE in scan.metadata else {}
    erratum_path = erratum_file or scan.metadata.get(ERRATUM_FILE)
    erratum = read_device_erratum(erratum_path) if erratum_path else {}
    entries: list[CatalogEntry] = []
    unreadable: list[tuple[str, str]] = []
    for rec in scan.recordings:
        try:
            info = sf.info(str(rec.wav))
        except (sf.LibsndfileError, RuntimeError) as err:
            unreadable.append((str(rec.wav.relative_to(raw_dir)), f"not a readable WAV file: {err}"))
            continue
        entries.append(
            CatalogEntry(
                name=rec.name,
                wav=rec.wav,
                annotation=rec.annotation,
                sample_rate=int(info.samplerate),
                frames=int(info.frames),
                channels=int(info.channels),
                subtype=info.subtype,
                device_corrected=corrected_device(rec.name, int(info.samplerate), erratum),
                official_split=split.get(rec.name.stem, ""),
                diagnosis=diagnosis.get(rec.name.patient, ""),
            )
        )
    present = {e.name.stem for e in entries} | {r.name.stem for r in scan.recordings}
    return Catalog(
        entries=entries,
        scan=scan,
        unreadable=unreadable,
        split_unknown=sorted(set(split) - present),
        erratum_source=str(erratum_path) if erratum_path else "",
    )


def recording_row(entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
    """A recording's row in the resampled store: what it is and where its annotation lies
    (relative to `raw_dir`); `source_rate` is the rate its audio was decoded at."""
    return {
        "stem": entry.name.stem,
        "patient": entry.name.patient,
        "location": entry.name.location,
        "mode": entry.name.mode,
        "device": entry.name.device,
        "device_corrected": entry.device_corrected,
        "source_rate": source_rate,
        "subtype": entry.subtype,
        "official_split": entry.official_split,
        "diagnosis": entry.diagnosis,
        "annotation": entry.annotation.relative_to(raw_dir).as_posix(),
    }


# Recording columns carried into every cycle's manifest row.
RECORDING_COLUMNS = (
    "patient",
    "location",
    "mode",
    "device",
    "device_corrected",
    "source_rate",
    "official_split",
    "diagnosis",
)


def cycle_row(
    index: int, recording: dict[str, str], cycle: Cycle, samples: int, clipped: bool, rate: int
) -> dict[str, str]:
    """Cycle `index`'s manifest row: its `recording` row's columns, the annotation's times
    and labels, and the `samples` it has at `rate` after clipping to the audio (`clipped`)."""
    row: dict[str, object] = {
        "index": index,
        "recording": recording["stem"],
        **{k: recording[k] for k in RECORDING_COLUMNS},
        "start": f"{cycle.start:g}",
        "end": f"{cycle.end:g}",
        "seconds": f"{samples / rate:.4f}",
        "clipped": int(clipped),
        "crackle": cycle.crackle,
        "wheeze": cycle.wheeze,
        "label": cycle.label,
        "label_name": CLASS_NAMES[cycle.label],
    }
    return {k: str(v) for k, v in row.items()}
