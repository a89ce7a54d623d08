"""ICBHI 2017 as a `Database`: `PID_RecIdx_Location_Mode_Device` wav + txt pairs, the split,
diagnosis and device-erratum files (their formats: respiro.data.icbhi).

Its own labels are a cycle's (crackles, wheezes) flags, named as the literature names them:
(0, 0) Normal, (1, 0) Crackle, (0, 1) Wheeze, (1, 1) Both; the manifest also keeps the flags.
"""

from __future__ import annotations

from pathlib import Path

from respiro.core.schemes import ICBHI_LABELS
from respiro.data.databases.base import Annotation, Catalog, CatalogEntry, Database, Event, read_header
from respiro.data.icbhi import (
    DIAGNOSIS_FILE,
    ERRATUM_FILE,
    SPLIT_FILE,
    SPLITS,
    RecordingName,
    read_annotations,
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


class Icbhi(Database):
    name = "icbhi"
    labels = ICBHI_LABELS
    splits = SPLITS
    recording_columns = (
        "patient",
        "location",
        "mode",
        "device",
        "device_corrected",
        "source_rate",
        "official_split",
        "diagnosis",
    )
    annotation_suffix = ".txt"
    layout_hint = f"ICBHI_final_database.zip or its .wav/.txt files (with {SPLIT_FILE})"

    def build_catalog(self, root: Path, erratum_file: Path | None = None) -> Catalog:
        """Scan `root`, read every WAV header and the metadata files found there;
        `erratum_file` (filename_differences.txt) overrides one found in the folder."""
        scan = scan_folder(root)
        split = read_split_file(scan.metadata[SPLIT_FILE]) if SPLIT_FILE in scan.metadata else {}
        diagnosis = read_diagnosis(scan.metadata[DIAGNOSIS_FILE]) if DIAGNOSIS_FILE in scan.metadata else {}
        erratum_path = erratum_file or scan.metadata.get(ERRATUM_FILE)
        erratum = read_device_erratum(erratum_path) if erratum_path else {}
        entries: list[CatalogEntry] = []
        unreadable: list[tuple[str, str]] = []
        for rec in scan.recordings:
            header = read_header(rec.wav)
            if isinstance(header, str):
                unreadable.append((str(rec.wav.relative_to(root)), header))
                continue
            entries.append(
                CatalogEntry(
                    stem=rec.name.stem,
                    patient=str(rec.name.patient),
                    location=rec.name.location,
                    device=rec.name.device,
                    device_corrected=corrected_device(rec.name, header.sample_rate, erratum),
                    official_split=split.get(rec.name.stem, ""),
                    wav=rec.wav,
                    annotation=rec.annotation,
                    sample_rate=header.sample_rate,
                    frames=header.frames,
                    channels=header.channels,
                    subtype=header.subtype,
                    extra={"mode": rec.name.mode, "diagnosis": diagnosis.get(rec.name.patient, "")},
                )
            )
        present = {r.name.stem for r in scan.recordings}
        return Catalog(
            entries=entries,
            skipped=scan.skipped,
            unreadable=unreadable,
            split_unknown=sorted(set(split) - present),
            erratum_source=str(erratum_path) if erratum_path else "",
        )

    def count_recordings(self, root: Path) -> int:
        return len(scan_folder(root).recordings)

    def recording_row(self, entry: CatalogEntry, raw_dir: Path, source_rate: int) -> dict[str, object]:
        return {  # the columns in this order: the resampled store's bytes
            "stem": entry.stem,
            "patient": entry.patient,
            "location": entry.location,
            "mode": entry.extra["mode"],
            "device": entry.device,
            "device_corrected": entry.device_corrected,
            "source_rate": source_rate,
            "subtype": entry.subtype,
            "official_split": entry.official_split,
            "diagnosis": entry.extra["diagnosis"],
            "annotation": entry.annotation.relative_to(raw_dir).as_posix(),
        }

    def read_annotation(self, path: Path) -> Annotation:
        return Annotation(
            [
                Event(
                    c.start,
                    c.end,
                    ICBHI_LABELS[c.label],
                    f":{c.line}",
                    (("crackle", str(c.crackle)), ("wheeze", str(c.wheeze))),
                )
                for c in read_annotations(path)
            ]
        )
