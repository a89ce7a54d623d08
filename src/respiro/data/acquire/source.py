"""Fill the raw folder of `data.database` from the source that `data.source` names.

  synthetic: a corpus in the database's layout, generated from `synthetic:` (offline);
  local:     the user's folder (or, for ICBHI, the official zip) at `data.local_path`;
  icbhi:     the official ICBHI archive, downloaded (resumable, verified) and extracted.

Whatever the source, the stages read one layout (recordings, annotations and metadata
files); a local folder already has it and is read where it is (respiro.data.raw_folder).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from respiro.core.config import DataParams, Params, SyntheticParams
from respiro.core.errors import MissingInputError, ParamsError
from respiro.data.acquire.archive import extract_zip
from respiro.data.acquire.http import download
from respiro.data.databases import get_database
from respiro.data.databases.base import Database
from respiro.data.icbhi import (
    DEMOGRAPHIC_FILE,
    DIAGNOSIS_FILE,
    ERRATUM_FILE,
    SPLIT_FILE,
    scan_folder,
)
from respiro.data.raw_folder import write_in_place

ARCHIVE_NAME = "ICBHI_final_database.zip"
# Published beside the archive rather than in it: picked up from next to a local zip.
METADATA_FILES = (SPLIT_FILE, DIAGNOSIS_FILE, DEMOGRAPHIC_FILE, ERRATUM_FILE)


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


def materialize_local(local_path: str, out_dir: Path, database: Database | None = None) -> None:
    """Fill `out_dir` from a folder of `database` (default ICBHI) or an ICBHI zip at
    `local_path` (data.local_path).

    A folder without a zip is read in place (respiro.data.raw_folder): `out_dir` gets only
    the record naming it, and nothing in the folder is copied, linked or changed. A zip
    (given directly, or the one zip at the top of the folder) is extracted, and the files
    beside it are copied in with their relative paths (a file the archive already holds is
    taken from the archive).
    """
    setting = f"data.local_path={local_path}"
    path = Path(local_path)
    database = database or get_database("icbhi")
    if database.name != "icbhi":
        # Another database's folder is read in place, in its release's layout.
        if not path.is_dir():
            raise MissingInputError(f"{setting} is not a folder; point it at {database.layout_hint}")
        if not database.count_recordings(path):
            raise MissingInputError(
                f"{setting} holds no {database.name} recordings; it should hold {database.layout_hint}"
            )
        write_in_place(out_dir, local_path)
        return
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


def materialize_icbhi(data: DataParams, out_dir: Path, progress: bool = True) -> None:
    """Download (or reuse) the official archive in `data.download_dir`, extract it into
    `out_dir`, and fetch the official split file when the archive does not hold it."""
    archive = download(
        data.url,
        Path(data.download_dir) / ARCHIVE_NAME,
        expected_size=data.size,
        sha256=data.sha256,
        progress=progress,
    )
    extract_zip(archive, out_dir)
    if SPLIT_FILE not in scan_folder(out_dir).metadata:
        download(data.split_url, out_dir / SPLIT_FILE, expected_size=None, sha256=None, progress=progress)


def write_synthetic(database: str, out_dir: Path, config: SyntheticParams, progress: bool = True) -> None:
    """The synthetic corpus of `config` in the layout of `database` (data.database). Imported
    here: the generator pulls in scipy (0.3 s of the stage's start-up), which a local or
    downloaded database never needs."""
    if database == "icbhi":
        from respiro.data.synthetic.corpus import generate_corpus

        generate_corpus(out_dir, config, progress=progress)
    elif database == "sprsound":
        from respiro.data.synthetic.sprsound_layout import write_synthetic_sprsound

        write_synthetic_sprsound(out_dir, config, progress)
    else:
        raise ParamsError(f"data.source: no synthetic corpus in the layout of {database}; use data.source: local")


def materialize_raw(params: Params, out_dir: Path, progress: bool = True) -> str:
    """Fill the empty folder `out_dir` with the raw ICBHI folder of `params.data.source`.

    Returns a short description of the source for the metrics, `kind(detail)`:
    `synthetic(seed=2017)`, `local(<data.local_path>)` or `icbhi(<data.url>)`.
    """
    data = params.data
    database = get_database(data.database)
    if data.source == "synthetic":
        write_synthetic(database.name, out_dir, params.synthetic, progress)
        return f"synthetic(seed={params.synthetic.seed})"
    if data.source == "local":
        materialize_local(data.local_path, out_dir, database)
        return f"local({data.local_path})"
    if database.name != "icbhi":
        raise ParamsError(
            f"data.source: icbhi downloads the ICBHI archive, not {database.name}: bring it as a folder "
            f"with data.source: local and data.local_path (docs/{database.name}.md)"
        )
    materialize_icbhi(data, out_dir, progress)
    return f"icbhi({data.url})"
