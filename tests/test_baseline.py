"""The committed baseline: what a fresh clone shows before running anything, and that the
README's `dvc repro` reproduces it: the data stages byte for byte on any machine, training
byte for byte on the machine types it was verified on and by its first epoch elsewhere
(tests/machine.py says why and how much); and the strict fingerprint (tests/strict.py).

dvc.lock and metrics/ are part of the code: a change to anything a stage depends on is
committed together with the re-run lock and metrics (CONTRIBUTING.md). These tests fail when
they disagree, in a throw-away copy of the working tree, never in it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests import machine, strict
from tests.conftest import ROOT, make_project_copy, run

STAGES = ["download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate", "errors"]


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


def test_a_first_epoch_within_the_tolerance_passes_and_beyond_it_fails():
    committed = machine.first_losses((ROOT / machine.TRACE).read_text())
    assert len(committed) == machine.TRACE_EPOCHS
    assert machine.trace_differences(committed, committed) == []
    assert machine.trace_differences([x * (1 + machine.TRACE_RTOL / 2) for x in committed], committed) == []
    moved = machine.trace_differences([x * (1 + 2 * machine.TRACE_RTOL) for x in committed], committed)
    assert moved and moved[0].startswith("epoch 1 training loss")
    assert machine.trace_differences([], committed)  # no epoch logged is no pass


def test_another_machine_type_is_told_apart_by_what_sets_the_bytes():
    ref = machine.baselines()["lock_machine"]
    assert machine.differences(dict(ref), ref) == []
    other = {**ref, "torch_threads": ref["torch_threads"] * 2, "precision": "fp32"}
    assert sorted(d.split(":")[0] for d in machine.differences(other, ref)) == ["precision", "torch_threads"]


def _lock(project):
    return yaml.safe_load((project / "dvc.lock").read_text())


def _set_out_md5(project, path, md5):
    lock = _lock(project)
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                out["md5"] = md5
    (project / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


@pytest.mark.parametrize("how", ["lock", "recorded", "trace"])
def test_check_after_repro_passes_an_unchanged_copy_and_names_what_moved(tmp_path, how):
    """What CI runs after `dvc repro` (python -m tests.machine --check), without the repro: in
    each mode an unchanged copy passes, and a moved output or score fails naming it."""
    project = make_project_copy(tmp_path / "clone")
    ref = machine.baselines(project)["lock_machine"]
    this = ref if how == "lock" else {**ref, "cpu": "Some Other CPU", "isa": ["avx2"]}
    if how == "recorded":
        machine.record(project, this)
        run(["git", "commit", "-qam", "record another type"], project)
    assert machine.check(project, this) == (how, [])

    # A data stage's output moved: a failure on every machine type.
    _set_out_md5(project, "data/spectrograms", "0" * 32)
    assert any("data/spectrograms" in p for p in machine.check(project, this)[1])
    run(["git", "checkout", "--", "dvc.lock"], project)

    # The error page moved (a plotting library's upgrade, a figure's style): a page to read,
    # rerun but compared in no mode.
    _set_out_md5(project, "data/reports/errors.html", "e" * 32)
    assert machine.check(project, this) == (how, [])
    run(["git", "checkout", "--", "dvc.lock"], project)

    # Training moved: in the lock mode any change to the lock or metrics/, in the recorded one
    # the model's md5, in the trace one the first epoch's loss.
    if how == "trace":
        curve = project / machine.TRACE
        rows = curve.read_text().splitlines()
        step, loss = rows[1].split("\t")
        curve.write_text("\n".join([rows[0], f"{step}\t{float(loss) * 1.1}", *rows[2:]]) + "\n")
        expected = "epoch 1 training loss"
    else:
        _set_out_md5(project, "models/model.pt", "f" * 32)
        expected = "dvc.lock" if how == "lock" else "models/model.pt"
    problems = machine.check(project, this)[1]
    assert problems and any(expected in p for p in problems), problems


def test_a_recorded_type_holds_only_for_the_training_it_was_recorded_with(tmp_path):
    project = make_project_copy(tmp_path / "clone")
    other = {**machine.baselines(project)["lock_machine"], "cpu": "Some Other CPU"}
    entry = machine.record(project, other)
    assert entry["outs"]["models/model.pt"] == machine.lock_outs(_lock(project), ("train",))["models/model.pt"]
    assert machine.comparison(other, project, entry["training_key"]) == ("recorded", entry)
    lock = _lock(project)
    lock["stages"]["train"]["params"]["params.yaml"]["loss"]["gamma"] = 2.0
    assert machine.comparison(other, project, machine.training_key(lock)) == ("trace", None)


def test_the_strict_fingerprint_is_compared_per_vendor_and_goes_stale_with_the_code():
    known = strict.load()
    assert known["overrides"] == strict.OVERRIDES
    made = {
        "cpu": "x",
        "threads": 2,
        "training_key": "k1",
        "outs": {"models/model.pt": "a"},
        "scores": {"icbhi_score": 0.5},
    }
    empty = {**known, "vendors": {}}
    assert strict.compare(made, empty, "AuthenticAMD").startswith("no fingerprint for AuthenticAMD")
    with_amd = {**known, "vendors": {"AuthenticAMD": made}}
    assert strict.compare(made, with_amd, "AuthenticAMD") == "same bytes"
    assert strict.compare({**made, "outs": {"models/model.pt": "b"}}, with_amd, "AuthenticAMD").endswith(
        "in models/model.pt"
    )
    assert "metrics/eval/metrics.json" in strict.compare(
        {**made, "scores": {"icbhi_score": 0.6}}, with_amd, "AuthenticAMD"
    )
    assert strict.compare({**made, "training_key": "k2"}, with_amd, "AuthenticAMD").startswith("stale")
    assert strict.compare(made, with_amd, "GenuineIntel").startswith("no fingerprint for GenuineIntel")


def test_the_strict_fingerprint_has_a_vendor_and_one_training_key():
    """At least one vendor is recorded, and all recorded vendors ran the same training code,
    data and params (recording drops other keys). Whether that key is the current code's is
    what the slow clean-copy test finds out, as it reruns the strict run."""
    known = strict.load()
    assert known["vendors"], (
        "no CPU vendor recorded: run `python -m tests.strict --record` in a project after dvc repro"
    )
    keys = {entry["training_key"] for entry in known["vendors"].values()}
    assert len(keys) == 1, f"vendors recorded for different training code: {keys}"


@pytest.mark.slow
def test_repro_on_a_clean_copy_reproduces_the_baseline_and_the_strict_fingerprint(tmp_path):
    """CI's reproducibility check. (1) The README's `dvc repro` from nothing gives the
    committed baseline, as tests/machine.py compares it on this machine type. (2) A change
    that moves training (loss.gamma) fails that check in every mode. (3) The strict run of
    tests/strict_fingerprint.json gives the committed bytes (or, on a CPU vendor without a
    fingerprint yet, says how to add one)."""
    project = make_project_copy(tmp_path / "clean")
    run(["dvc", "repro"], project, timeout=2400)
    this = machine.fingerprint()
    how, problems = machine.check(project, this)
    assert problems == [], f"dvc repro did not reproduce the committed baseline (compared as: {how}):\n" + "\n".join(
        problems
    )
    assert "up to date" in run(["dvc", "status"], project).stdout
    print(f"baseline reproduced on {this['cpu']}, training compared as: {how}")

    # One epoch of loss.gamma=2, train alone (the data stages come from the run above, and
    # what the check compares of training is train's own outputs): the check fails byte for
    # byte, and by its first-epoch loss on a type not verified yet.
    run(["dvc", "exp", "run", "-S", "loss.gamma=2", "-S", "train.epochs=1", "train"], project, timeout=1200)
    assert machine.check(project, this)[1]
    unverified = {**this, "cpu": "Some Other CPU"}
    assert machine.check(project, unverified)[0] == "trace"
    assert any("epoch 1 training loss" in p for p in machine.check(project, unverified)[1])
    run(["git", "checkout", "--", "params.yaml"], project)

    made = strict.run_fingerprint(project)
    verdict = strict.compare(made, strict.load())
    if verdict.startswith("no fingerprint"):
        pytest.skip(verdict)
    assert verdict == "same bytes", verdict
