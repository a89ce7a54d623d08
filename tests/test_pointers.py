"""Every project file a docstring, comment or document names exists: a pointer to a module
or a document that moved is found here, not by the next reader who follows it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

# A file of ours by its path: `respiro/training/step.py`, `training/step.py` (in src/respiro),
# `stages/train.py`, `docs/own-data.md`, `benchmarks/RESULTS_model.md`, `tests/strict.py`.
POINTER = re.compile(r"(?<![\w./-])((?:[A-Za-z_][\w-]*/)+[\w-]+\.(?:py|md))\b")
# Where a pointer may be relative to: the repository, the package, src/, docs/.
BASES = ("", "src/respiro/", "src/", "docs/")
# Paths that are not ours: other projects' files (the layouts our modules follow: timm's
# layers/, kornia's losses/, torchvision's models/), the shared folder beside the project, and
# what commands write (reports/).
FOREIGN = (
    "torchvision/", "torch/", "transformers/", "dvc/", "sklearn/", "ray/", "shared/", "tools/", "site-packages/",
    "layers/", "losses/", "models/", "reports/",
)  # fmt: skip


def sources() -> list[Path]:
    files = [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"), *(ROOT / "benchmarks").glob("*.md")]
    for folder in ("src", "stages", "tests", "benchmarks"):
        files += (ROOT / folder).rglob("*.py")
    return sorted(f for f in files if f != Path(__file__))


def missing_pointers(path: Path) -> list[str]:
    found = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        for pointer in POINTER.findall(line):
            if pointer.startswith(FOREIGN) or "<" in pointer or "*" in pointer:
                continue
            here = [path.parent / pointer] if path.suffix == ".md" else []
            if not any(p.exists() for p in [*here, *(ROOT / base / pointer for base in BASES)]):
                found.append(f"{path.relative_to(ROOT)}:{n}: {pointer}")
    return found


def test_every_file_a_docstring_or_document_names_exists():
    assert [m for path in sources() for m in missing_pointers(path)] == []


def test_the_check_finds_a_moved_file(tmp_path):
    stale = tmp_path / "note.md"
    stale.write_text("See src/respiro/inference/pages.py and training/step.py.\n")
    stale.relative_to(tmp_path)  # (outside ROOT: reported by name below)
    lines = [pointer for pointer in POINTER.findall(stale.read_text())]
    assert lines == ["src/respiro/inference/pages.py", "training/step.py"]
    assert not any((ROOT / base / lines[0]).exists() for base in BASES)
    assert any((ROOT / base / lines[1]).exists() for base in BASES)
