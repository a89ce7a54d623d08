"""Output paths can never destroy a user's data: a folder, the current folder, an input or a
file of another kind given as an output is refused with one line and nothing on disk changes."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf

from respiro.__main__ import main as respiro_main
from respiro.core.errors import OutputPathError
from respiro.core.outputs import atomic_dir, atomic_file


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A user's folder: notes, a recording and its annotation."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("keep\n")
    sf.write(tmp_path / "rec.wav", np.zeros(4000, dtype=np.float32), 4000)
    (tmp_path / "rec.txt").write_text("0.0\t1.0\t0\t0\n")
    (tmp_path / "model.pt").write_bytes(b"not used: the output is checked first")
    return tmp_path


class Ended(NamedTuple):
    returncode: int
    stderr: str


def cli(command: str, *args: str, cwd: Path) -> Ended:
    """`respiro COMMAND ARGS` in `cwd`, in this process: what `python -m respiro` runs, without
    a torch import per case (test_adversarial runs the commands as processes)."""
    stderr = io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as ended:
        respiro_main([command, *args])
    code = ended.value.code  # as the interpreter exits with it: None is 0, a message is 1
    return Ended(0 if code is None else code if isinstance(code, int) else 1, stderr.getvalue())


PREDICT_CASES = {
    "a folder": ["results"],
    "the current folder": ["."],
    "an input recording": ["rec.wav"],
    "the annotation": ["rec.txt"],
    "the model": ["model.pt"],
    "a file of another kind": ["results/notes.txt"],
}


@pytest.mark.parametrize("out", PREDICT_CASES.values(), ids=PREDICT_CASES.keys())
def test_predict_refuses_an_output_that_is_not_a_csv_of_its_own(workspace, out):
    before = snapshot(workspace)
    result = cli("predict", "rec.wav", "--model", "model.pt", "--out", *out, cwd=workspace)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("predict: error: ") and "nothing was changed" in lines[0], (
        result.stderr
    )
    assert snapshot(workspace) == before


EXPORT_CASES = {
    "a folder": "results",
    "the current folder": ".",
    "the model": "model.pt",
    "an input recording": "rec.wav",
}


@pytest.mark.parametrize("out", EXPORT_CASES.values(), ids=EXPORT_CASES.keys())
def test_export_refuses_an_output_that_is_not_an_onnx_file_of_its_own(workspace, out):
    before = snapshot(workspace)
    result = cli("export", "--model", "model.pt", "--out", out, cwd=workspace)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export: error: ") and "nothing was changed" in lines[0], (
        result.stderr
    )
    assert snapshot(workspace) == before


def test_export_with_the_model_itself_renamed_onnx_is_refused(workspace):
    (workspace / "model.onnx").symlink_to(workspace / "model.pt")
    before = snapshot(workspace)
    result = cli("export", "--model", "model.onnx", "--out", "model.onnx", cwd=workspace)
    assert result.returncode == 1 and "is one of the inputs" in result.stderr
    assert snapshot(workspace) == before


def test_atomic_file_replaces_a_file_of_its_kind_and_nothing_else(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with atomic_file(target, (".csv",)) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="not a regular file"):
        with atomic_file(fifo, (".csv",)):
            pass
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_user_folder_named_like_a_temporary_is_not_removed(tmp_path):
    """Stale temporaries of a file output are files; a folder with such a name is the user's."""
    keep = tmp_path / ".out.csv.tmp-mine"
    keep.mkdir()
    (keep / "data.txt").write_text("keep\n")
    with atomic_file(tmp_path / "out.csv") as tmp:
        tmp.write_text("x\n")
    assert (keep / "data.txt").read_text() == "keep\n"


def test_atomic_dir_refuses_the_current_folder_and_its_parents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep\n")
    for path in (".", "..", str(tmp_path)):
        with pytest.raises(OutputPathError, match="current folder"):
            with atomic_dir(path):
                pass
    assert (tmp_path / "keep.txt").read_text() == "keep\n"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_have_the_permissions_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("x")
        with atomic_file(tmp_path / "file.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "file.txt").stat().st_mode) == 0o666 & ~umask
