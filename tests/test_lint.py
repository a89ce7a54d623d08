"""The tree passes the linter, the formatter and the type checker with the settings in
pyproject.toml: part of the test command, so `.ci/run` (which runs exactly that command)
checks them as the GitHub workflow does."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHECKS = {
    "ruff check": ["ruff", "check", "--no-cache", "."],
    "ruff format": ["ruff", "format", "--check", "--no-cache", "."],
    "mypy": [sys.executable, "-m", "mypy", "--no-incremental"],
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_tree_is_clean(name: str) -> None:
    command = CHECKS[name]
    tool = command[0] if command[0] != sys.executable else "mypy"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -r requirements-dev.txt)")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"
