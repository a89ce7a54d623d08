"""The pipeline's stage scripts, one per stage of dvc.yaml, run as `python -m stages.<name>`.

Python runs this file before any stage script: it puts this tree's own `src/` first on
sys.path, so that a stage imports the package from the tree it runs in. DVC runs a queued or
temporary experiment in a copy of the project; an installed `respiro` (the README's editable
install points at the workspace) would otherwise give that copy the workspace's current
code, while the experiment's dvc.lock records the copy's hashes.
"""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

import respiro  # noqa: E402  (after the path: this tree's package, checked below)

if Path(respiro.__file__).resolve().parent != SRC / "respiro":
    raise SystemExit(f"stages: the package was imported from {respiro.__file__}, not from this tree's {SRC}")
