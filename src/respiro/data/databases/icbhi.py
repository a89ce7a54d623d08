"""ICBHI 2017 as a `Database`: `PID_RecIdx_Location_Mode_Device` wav + txt pairs, the split,
diagnosis and device-erratum files (their formats: respiro.data.icbhi), from the official
archive (downloaded, or a zip or folder you have) or the synthetic corpus in its layout.

Its own labels are a cycle's (crackles, wheezes) flags, named as the literature names them:
(0, 0) Normal, (1, 0) Crackle, (0, 1) Wheeze, (1, 1) Both; the manifest also keeps the flags.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Annotated

from pydantic import Field

from respiro.core.config import DatabaseGroup, DataParams, SyntheticParams
from respiro.core.errors import MissingInputError, ParamsError
from respiro.data.acquire.archive import extract_zip
from respiro.data.acquire.http import download
from respiro.data.databases.base import (
    Annotation,
    AnnotationRef,
    Catalog,
    CatalogEntry,
    Database,
    Event,
    read_header,
)
from respiro.data.icbhi import (
    DEMOGRAPHIC_FILE,
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
from respiro.data.raw_folder import write_in_place

LABELS: tuple[str, ...] = ("Normal", "Crackle", "Wheeze", "Both")
ARCHIVE_NAME = "ICBHI_final_database.zip"
# Published beside the archive rather than in it: picked up from next to a local zip.
METADATA_FILES = (SPLIT_FILE, DIAGNOSIS_FILE, DEMOGRAPHIC_FILE, ERRATUM_FILE)
OFFICIAL = "https://bhichallenge.med.auth.gr/sites/default/files/ICBHI_final_database"


class IcbhiParams(DatabaseGroup):
    """params.yaml's `icbhi:` group (its comments say what each key does)."""

    url: Annotated[str, Field(min_length=1)] = f"{OFFICIAL}/{ARCHIVE_NAME}"
    split_url: Annotated[str, Field(min_length=1)] = f"{OFFICIAL}/{SPLIT_FILE}"
    size: Annotated[int, Field(ge=1)] | None = 1978998275
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    download_dir: Annotated[str, Field(min_length=1)] = "data/downloads"
    erratum_file: Annotated[str, Field(min_length=1)] | None = None


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
    params_schema = IcbhiParams
    params: IcbhiParams
    labels = LABELS
    scheme_labels = {
        "four": {label: label for label in LABELS},
        # Every abnormal cycle is adventitious.
        "event_binary": {label: "Normal" if label == "Normal" else "Adventitious" for label in LABELS},
    }
    splits = SPLITS
    sources = ("synthetic", "download", "local")
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
    layout_hint = f"{ARCHIVE_NAME} or its .wav/.txt files (with {SPLIT_FILE})"

    def _erratum_file(self) -> Path | None:
        """icbhi.erratum_file, checked: a missing one stops the stage before any work."""
        if self.params.erratum_file is None:
            return None
        path = Path(self.params.erratum_file)
        if not path.is_file():
            raise MissingInputError(f"icbhi.erratum_file={path} does not exist")
        return path

    def build_catalog(self, root: Path) -> Catalog:
        """Scan `root`, read every WAV header and the metadata files found there;
        icbhi.erratum_file (filename_differences.txt) overrides one found in the folder."""
        erratum_file = self._erratum_file()
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
                    annotation=AnnotationRef(rec.annotation),
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
            "annotation": entry.annotation.file.relative_to(raw_dir).as_posix(),
        }

    def read_annotation(self, ref: AnnotationRef) -> Annotation:
        return Annotation(
            [
                Event(
                    c.start,
                    c.end,
                    LABELS[c.label],
                    f":{c.line}",
                    (("crackle", str(c.crackle)), ("wheeze", str(c.wheeze))),
                )
                for c in read_annotations(ref.file)
            ]
        )

    def recognises(self, file: Path) -> bool:
        """A .txt whose first line reads `start end crackles wheezes` (the rest is checked when
        it is read, so a typo further down is reported with its line, not taken for another
        database's file)."""
        if file.suffix.lower() != ".txt" or not file.is_file():
            return False
        try:
            first = next((line.split() for line in file.read_text().splitlines() if line.strip()), [])
            return len(first) == 4 and all(math.isfinite(float(v)) for v in first[:2])
        except (UnicodeDecodeError, ValueError):
            return False

    def annotation_beside(self, audio: Path) -> AnnotationRef | None:
        found = audio.with_suffix(".txt")
        return AnnotationRef(found) if self.recognises(found) else None

    # --- acquisition ---------------------------------------------------------------------

    def acquire(self, data: DataParams, synthetic: SyntheticParams, out_dir: Path, progress: bool = True) -> str:
        self._erratum_file()  # checked first: finding out after a 2 GB download would waste it
        return super().acquire(data, synthetic, out_dir, progress)

    def write_synthetic(self, out_dir: Path, config: SyntheticParams, progress: bool) -> None:
        from respiro.data.synthetic.corpus import generate_corpus

        generate_corpus(out_dir, config, progress=progress)

    def download(self, out_dir: Path, progress: bool) -> str:
        """The official archive, downloaded (or reused) in icbhi.download_dir and extracted
        into `out_dir`, with the official split file fetched when the archive lacks it."""
        p = self.params
        archive = download(
            p.url, Path(p.download_dir) / ARCHIVE_NAME, expected_size=p.size, sha256=p.sha256, progress=progress
        )
        extract_zip(archive, out_dir)
        if SPLIT_FILE not in scan_folder(out_dir).metadata:
            download(p.split_url, out_dir / SPLIT_FILE, expected_size=None, sha256=None, progress=progress)
        return f"download({p.url})"

    def use_local(self, local_path: str, out_dir: Path) -> None:
        """An ICBHI folder or zip at `local_path`. A folder without a zip is read in place
        (respiro.data.raw_folder): `out_dir` gets only the record naming it, and nothing in the
        folder is copied, linked or changed. A zip (given directly, or the one zip at the top
        of the folder) is extracted, and the files beside it are copied in with their
        relative paths (a file the archive already holds is taken from the archive)."""
        setting = f"data.local_path={local_path}"
        path = Path(local_path)
        if not path.exists():
            raise MissingInputError(f"{setting} does not exist; point it at your ICBHI folder or {ARCHIVE_NAME}")
        archive = _local_archive(path)
        if archive is not None:
            extract_zip(archive, out_dir)
            for rel, src in _files_beside_archive(path).items():
                if not (out_dir / rel).exists():
                    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, out_dir / rel)
        if not scan_folder(out_dir if archive else path).recordings:
            raise MissingInputError(
                f"{setting} holds no ICBHI recordings; put {ARCHIVE_NAME} or its .wav/.txt files "
                f"(with {SPLIT_FILE}) there, or point data.local_path at them: "
                f"dvc exp run -S data.source=local -S data.local_path=/path/to/{ARCHIVE_NAME}"
            )
        if archive is None:
            write_in_place(out_dir, local_path)


def _local_archive(path: Path) -> Path | None:
    """The zip to extract: `path` itself, or the one zip at the top of the folder `path`;
    None for a folder without one, which is read in place."""
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise ParamsError(
                f"data.local_path={path} is a file but not a .zip; point it at your ICBHI folder or {ARCHIVE_NAME}"
            )
        return path
    archives = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".zip")
    if len(archives) > 1:
        raise ParamsError(
            f"data.local_path={path} holds {len(archives)} zip archives ({', '.join(p.name for p in archives)}); "
            "keep one there, or point data.local_path at the one to use"
        )
    return archives[0] if archives else None


def _files_beside_archive(path: Path) -> dict[Path, Path]:
    """What to add to an extracted archive ({relative path: file}): the metadata files lying
    next to a zip given directly, or every .wav/.txt of the folder holding the zip."""
    if path.is_file():
        return {Path(name): path.parent / name for name in METADATA_FILES if (path.parent / name).is_file()}
    return {
        p.relative_to(path): p
        for p in sorted(path.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in (".wav", ".txt")
        # Hidden files and folders (editor, OS and VCS droppings) are never data.
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    }
