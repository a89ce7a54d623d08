"""The committed baseline: what a fresh clone shows before running anything, and that the
README's `dvc repro` reproduces it byte for byte (on this project's machine type).

dvc.lock and metrics/ are part of the code: a change to anything a stage depends on is
committed together with the re-run lock and metrics (README, "Contributing"). These tests
fail when they disagree, in a throw-away copy of the working tree, never in it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, make_project_copy, run

STAGES = ["download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate"]


def test_baseline_is_committed_with_every_stage():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES
    tracked = run(["git", "ls-files", "dvc.lock", "metrics"], ROOT).stdout.split()
    assert "dvc.lock" in tracked
    assert {"metrics/eval/metrics.json", "metrics/train/metrics.json", "metrics/eval/plots/sklearn/confusion_matrix.json"} <= set(tracked)


def test_fresh_clone_shows_the_baseline_before_running_anything(tmp_path):
    project = make_project_copy(tmp_path / "clone")
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    scores = next(iter(shown.values()))["data"]["metrics/eval/metrics.json"]["data"]
    committed = json.loads((ROOT / "metrics/eval/metrics.json").read_text())
    assert scores == committed
    assert scores["data"] == "synthetic (not ICBHI)"
    experiments = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    [baseline] = [row for row in experiments if row["rev"] != "workspace"]
    data = baseline["data"]["metrics"]["metrics/eval/metrics.json"]["data"]
    assert data["icbhi_score"] == committed["icbhi_score"]


@pytest.mark.slow
def test_repro_on_a_clean_copy_reproduces_the_committed_lock_and_metrics(tmp_path):
    """CI's reproducibility check: the README's `dvc repro` from nothing gives the same
    dvc.lock (every output's md5: data, model, metrics) and the same metrics/ files."""
    project = make_project_copy(tmp_path / "clean")
    run(["dvc", "repro"], project, timeout=2400)
    # Against HEAD, not the index: with core.autostage, `dvc repro` stages what it changed.
    diff = run(["git", "diff", "--stat", "HEAD", "--", "dvc.lock", "metrics"], project).stdout
    untracked = run(["git", "ls-files", "--others", "--exclude-standard", "metrics"], project).stdout
    assert diff == "" and untracked == "", f"dvc repro changed the committed baseline:\n{diff}{untracked}"
    assert "up to date" in run(["dvc", "status"], project).stdout
