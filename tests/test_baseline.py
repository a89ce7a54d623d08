"""The committed baseline: what a fresh clone shows before running anything, and that the
README's `dvc repro` reproduces it: byte for byte on the reference machine type
(tests/reference_machine.json), the scores within a stated tolerance on any other
(tests/machine.py says why and how much).

dvc.lock and metrics/ are part of the code: a change to anything a stage depends on is
committed together with the re-run lock and metrics (CONTRIBUTING.md). These tests fail when
they disagree, in a throw-away copy of the working tree, never in it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests import machine
from tests.conftest import ROOT, make_project_copy, run

STAGES = ["download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate"]


def test_baseline_is_committed_with_every_stage():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    # Every stage of dvc.yaml (DVC keeps a stage's place in the lock from when it first ran).
    assert sorted(lock["stages"]) == sorted(STAGES)
    tracked = run(["git", "ls-files", "dvc.lock", "metrics"], ROOT).stdout.split()
    assert "dvc.lock" in tracked
    assert {
        "metrics/eval/metrics.json",
        "metrics/train/metrics.json",
        "metrics/eval/plots/sklearn/confusion_matrix.json",
    } <= set(tracked)


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


def test_scores_within_tolerance_pass_and_beyond_it_fail():
    committed = json.loads((ROOT / "metrics/eval/metrics.json").read_text())
    assert machine.score_differences(dict(committed), committed) == []
    nudged = {**committed, "icbhi_score": committed["icbhi_score"] + machine.TOLERANCE["icbhi_score"] / 2}
    assert machine.score_differences(nudged, committed) == []
    moved = {**committed, "se": committed["se"] - 2 * machine.TOLERANCE["se"]}
    assert [d.split(":")[0] for d in machine.score_differences(moved, committed)] == ["se"]
    assert machine.score_differences({k: v for k, v in committed.items() if k != "sp"}, committed)


def test_another_machine_type_is_told_apart_by_what_sets_the_bytes():
    ref = machine.reference()
    assert machine.differences(dict(ref), ref) == []
    other = {**ref, "torch_threads": ref["torch_threads"] * 2, "precision": "fp32"}
    assert sorted(d.split(":")[0] for d in machine.differences(other, ref)) == ["precision", "torch_threads"]


@pytest.mark.parametrize("machine_type", ["reference", "other"])
def test_check_after_repro_passes_an_unchanged_copy_and_names_a_changed_score(tmp_path, monkeypatch, machine_type):
    """What CI runs after `dvc repro` (python -m tests.machine --check), without the repro:
    byte for byte on the reference type, the scores within tolerance on another."""
    ref = machine.reference()
    this = ref if machine_type == "reference" else {**ref, "torch_threads": ref["torch_threads"] + 1}
    monkeypatch.setattr(machine, "fingerprint", lambda: dict(this))
    project = make_project_copy(tmp_path / "clone")
    assert machine.check(project) == []
    scores = project / "metrics/eval/metrics.json"
    changed = json.loads(scores.read_text())
    changed["icbhi_score"] += 0.2  # beyond the tolerance too, so this fails on any machine type
    scores.write_text(json.dumps(changed, indent=4))
    problems = machine.check(project)
    expected = "metrics/eval/metrics.json" if machine_type == "reference" else "icbhi_score"
    assert problems and any(expected in p for p in problems), problems


@pytest.mark.slow
def test_repro_on_a_clean_copy_reproduces_the_committed_lock_and_metrics(tmp_path):
    """CI's reproducibility check: the README's `dvc repro` from nothing gives the same
    dvc.lock (every output's md5: data, model, metrics) and the same metrics/ files on the
    reference machine type; elsewhere the same scores within machine.TOLERANCE."""
    project = make_project_copy(tmp_path / "clean")
    run(["dvc", "repro"], project, timeout=2400)
    other = machine.differences(machine.fingerprint(), machine.reference())
    problems = machine.check(project)
    how = "the reference machine type" if not other else "another machine type (" + "; ".join(other) + ")"
    assert problems == [], f"on {how}, dvc repro did not reproduce the committed baseline:\n" + "\n".join(problems)
    if other:
        print(f"baseline compared within {machine.TOLERANCE} on {how}")
    assert "up to date" in run(["dvc", "status"], project).stdout
