"""Where the raw ICBHI folder is: data/raw, or the user's own folder, read in place.

The download stage fills data/raw from the synthetic corpus, the official archive or a
local zip. A local *folder* (`data.source: local`) is read where it is instead: a copy in
data/raw would be hashed by DVC a second time (once as the stage's dependency, again as its
output: 1.8 GB each at ICBHI scale), and a hard link would hand the user's files to DVC's
cache, which makes them read-only. data/raw then holds only `in_place.json` naming the
folder; the stages that read raw files find it through `raw_root`, and list
`${data.local_path}` as a dependency, so that a changed recording reruns them.
"""

from __future__ import annotations

import json
from pathlib import Path

from respiro.core.errors import DamagedArtifactError, MissingInputError
from respiro.core.outputs import write_json

IN_PLACE_FILE = "in_place.json"


def write_in_place(raw_dir: Path, folder: str) -> None:
    """Record in `raw_dir` that the raw files are read from `folder` (as data.local_path gives
    it: relative to the project, where the stages run, or absolute)."""
    write_json(
        raw_dir / IN_PLACE_FILE,
        {"folder": folder, "why": "data.source is local and data.local_path is a folder: read in place"},
    )


def raw_root(raw_dir: Path) -> Path:
    """The folder holding the raw recordings and annotations: `raw_dir` itself, or the
    folder its `in_place.json` names."""
    pointer = raw_dir / IN_PLACE_FILE
    if not pointer.is_file():
        return raw_dir
    try:
        folder = Path(json.loads(pointer.read_text())["folder"])
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedArtifactError(f"{pointer}: not a folder record ({err}); rerun `dvc repro download`") from err
    if not folder.is_dir():
        raise MissingInputError(
            f"{pointer} names {folder}, which is not a folder any more: point data.local_path at your ICBHI "
            "folder and rerun `dvc repro`"
        )
    return folder
