"""Sharing a run through a DVC remote, as a team does (README, "Sharing results: a remote").

A local-folder remote stands in for S3/SSH/GCS: DVC moves the same objects either way. One
copy of the project runs the pipeline and pushes; a fresh git clone pulls and finds every
output in place; an experiment run in that clone travels to a third clone with
`dvc exp push` / `dvc exp pull`, its outputs included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FinishedRun, copy_project, run

pytestmark = pytest.mark.slow


def dvc(project: Path, *args: str) -> str:
    result = run(["dvc", *args], project)
    return result.stdout + result.stderr


def clone(source: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(source), str(dest)], source.parent)
    run(["dvc", "config", "--local", "core.analytics", "false"], dest)
    return dest


def test_push_clone_pull_and_experiments_through_a_local_remote(tiny_baseline: FinishedRun, tmp_path):
    storage = tmp_path / "storage"
    origin = copy_project(tiny_baseline.project, tmp_path / "origin")  # after `dvc repro`
    dvc(origin, "remote", "add", "-d", "shared", str(storage))
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-q", "-m", "run with a remote"], origin)
    assert "pushed" in dvc(origin, "push")

    # A colleague's fresh clone: nothing but git, then `dvc pull`.
    colleague = clone(origin, tmp_path / "colleague")
    assert not (colleague / "models/model.pt").exists()
    dvc(colleague, "pull")
    for path in ("models/model.pt", "data/spectrograms/spectrograms.npy", "data/reports/evaluation.json"):
        assert (colleague / path).read_bytes() == (origin / path).read_bytes(), path
    assert "up to date" in dvc(colleague, "status")
    assert "in sync" in dvc(colleague, "status", "--cloud")

    # The colleague runs an experiment and shares it: the git side goes to origin's repo,
    # the outputs to the remote.
    dvc(colleague, "exp", "run", "-n", "gamma2", "-S", "loss.gamma=2")
    dvc(colleague, "exp", "push", "origin", "gamma2")

    # A third clone pulls that experiment and gets its results and its model.
    reviewer = clone(origin, tmp_path / "reviewer")
    dvc(reviewer, "exp", "pull", "origin", "gamma2")
    shown = json.loads(run(["dvc", "exp", "show", "--json"], reviewer).stdout)
    names = [exp.get("name") for row in shown for exp in (row.get("experiments") or [])]
    assert "gamma2" in names
    dvc(reviewer, "exp", "apply", "gamma2")
    dvc(reviewer, "pull")
    assert (reviewer / "models/model.pt").read_bytes() == (colleague / "models/model.pt").read_bytes()
    assert json.loads((reviewer / "metrics/eval/metrics.json").read_text()) == json.loads(
        (colleague / "metrics/eval/metrics.json").read_text()
    )
    assert "up to date" in dvc(reviewer, "status")
