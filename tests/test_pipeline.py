"""The DVC workflow end to end, in throw-away git copies of the project (never this tree).

With tiny params (tests/conftest.py: TINY_PARAMS) the whole pipeline takes well under a
minute; these tests check what users rely on: which stages a change reruns, that
`dvc metrics show/diff` see the scores, and that two clean runs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import DVC_ENV, TINY_PARAMS, FinishedRun, copy_project, make_project_copy, run, set_params

pytestmark = pytest.mark.slow
STAGES = ["download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate", "errors"]


def ran(output: str) -> list[str]:
    """Stages DVC executed (or restored from its run cache) in a repro/exp run output."""
    return sorted(set(re.findall(r"Running stage '([a-z0-9_]+)'", output)), key=STAGES.index)


def dvc(project: Path, *args: str) -> str:
    result = run(["dvc", *args], project)
    return result.stdout + result.stderr


def dvc_json(project: Path, *args: str):
    return json.loads(run(["dvc", *args, "--json"], project).stdout)


def lock_outs(project: Path) -> dict[str, str]:
    """{output path: md5} from dvc.lock, for every stage."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def first_run(tiny_baseline: FinishedRun, tmp_path_factory) -> tuple[Path, str, dict[str, str]]:
    """The tiny pipeline's `dvc repro`, committed as a user keeping a baseline would (an
    experiment starts from the last commit, dvc.lock included, so later changes are measured
    against it): this module's own copy of the session's run, which its tests change."""
    project = copy_project(tiny_baseline.project, tmp_path_factory.mktemp("first") / "project")
    return project, tiny_baseline.output, lock_outs(project)


def test_repro_runs_every_stage_and_metrics_show_the_scores(first_run):
    project, output, _ = first_run
    assert ran(output) == STAGES
    metrics = next(iter(dvc_json(project, "metrics", "show").values()))["data"]
    # Only the results a user compares are metrics: the test scores and the epoch reached.
    assert set(metrics) == {"metrics/eval/metrics.json", "metrics/train/metrics.json"}
    evaluation = metrics["metrics/eval/metrics.json"]["data"]
    assert list(evaluation)[:4] == ["icbhi_score", "se", "sp", "accuracy"]
    for key in ("accuracy", "se", "sp", "icbhi_score", "binary_score", "val_score"):
        assert 0.0 <= evaluation[key] <= 1.0
    # (DVC leaves undefined values out of its listing: a class with no test cycle has recall null.)
    assert evaluation["checkpoint_epoch"] == 1 and set(evaluation["recall"]) <= {"Normal", "Crackle", "Wheeze", "Both"}
    written = json.loads((project / "metrics/eval/metrics.json").read_text())
    assert set(written["recall"]) == {"Normal", "Crackle", "Wheeze", "Both"}
    assert evaluation["data"] == "synthetic (not ICBHI)"
    assert metrics["metrics/train/metrics.json"]["data"] == {"step": 1}
    # The details stay available, as cached outputs.
    details = json.loads((project / "data/reports/evaluation.json").read_text())
    assert details["synthetic_data"] is True and "NOT ICBHI" in details["note"]
    assert details["icbhi_score"] == evaluation["icbhi_score"]
    assert json.loads((project / "data/reports/raw.json").read_text())["recordings"] == 12
    # DVCLive's curves (one row per epoch) and confusion matrix (one row per test cycle).
    assert (project / "metrics/train/plots/metrics/val/icbhi_score.tsv").read_text().splitlines()[
        0
    ] == "step\ticbhi_score"
    confusion = json.loads((project / "metrics/eval/plots/sklearn/confusion_matrix.json").read_text())
    assert len(confusion) == details["cycles"] and set(confusion[0]) == {"actual", "predicted"}
    # One summary line per stage.
    for stage in STAGES:
        assert re.search(rf"^{stage}: .* in \d+\.\d s$", output, re.MULTILINE), f"no summary line for {stage}"


def test_second_repro_runs_nothing_and_status_is_clean(first_run):
    project, _, _ = first_run
    assert ran(dvc(project, "repro")) == []
    assert "up to date" in dvc(project, "status")


def test_two_clean_runs_give_the_same_bytes(first_run, tmp_path):
    _, _, first_lock = first_run
    second = make_project_copy(tmp_path / "second", TINY_PARAMS)
    dvc(second, "repro")
    assert lock_outs(second) == first_lock


@pytest.mark.parametrize(
    "change,first",
    [
        ({"loss": {"gamma": 2}}, ["train"]),
        ({"model": {"cbam": False}}, ["train"]),
        # The pretrained stage reads model.arch (which ImageNet file); with none its output
        # does not change, and it costs nothing.
        ({"model": {"arch": "resnet34"}}, ["pretrained", "train"]),
        ({"split": {"method": "patient"}}, ["train", "evaluate"]),  # evaluate scores official parts only with official
        # A strict model is also evaluated, and its maps drawn, on strict kernels.
        ({"train": {"precision": "strict"}}, ["train", "evaluate", "errors"]),
        ({"stft": {"hop_length": 128}}, ["stft"]),
        ({"normalize": {"method": "peak"}}, ["normalize"]),
        ({"segment": {"pad": "zero"}}, ["stft"]),  # segment stores where cycles lie
        ({"resample": {"rate": 3000}}, ["resample"]),
        ({"resample": {"method": "torchaudio"}}, ["resample"]),
        ({"evaluate": {"batch_size": 8}}, ["evaluate"]),
        ({"errors": {"per_cell": 1}}, ["errors"]),  # the page alone: no scoring, no training
        ({"audio": {"workers": 1}}, []),  # how the audio stages run, not what they compute
    ],
    ids=lambda v: str(v),
)
def test_a_params_change_reaches_exactly_the_stages_that_read_it(first_run, change, first):
    """Which stages a params change makes DVC run first (`dvc repro --dry`: what reads the
    changed keys); the stages after them rerun when their inputs change, as the real runs
    below show. The params are put back afterwards."""
    project, _, _ = first_run
    original = (project / "params.yaml").read_text()
    try:
        set_params(project, change)
        assert ran(dvc(project, "repro", "--dry")) == first
    finally:
        (project / "params.yaml").write_text(original)


def test_a_queued_experiment_runs_the_code_it_was_queued_with(first_run):
    """Editing code after queueing is the usual reason to queue: the experiment runs the
    snapshot it was queued with, and its dvc.lock records that snapshot, whatever `import
    respiro` finds first in the environment. Here the workspace's src/ is on the path, as
    the README's editable install puts it for the workspace of the clone it was made in."""
    project, _, _ = first_run
    cli = project / "src" / "respiro" / "core" / "cli.py"
    original = cli.read_text()
    dvc(project, "exp", "run", "--queue", "-n", "snapshot", "-S", "evaluate.batch_size=4")
    try:
        cli.write_text(original + '\nprint("EDITED AFTER QUEUEING", file=sys.stderr)\n')
        env = {**DVC_ENV, "PYTHONPATH": str(project / "src")}
        queue = subprocess.run(
            ["dvc", "exp", "run", "--run-all"], cwd=project, env=env, capture_output=True, text=True, timeout=900
        )
        output = queue.stdout + queue.stderr + run(["dvc", "queue", "logs", "snapshot"], project, check=False).stdout
    finally:
        cli.write_text(original)
    # The page reruns only where evaluate's predictions came out other bytes.
    assert ran(output)[0] == "evaluate" and set(ran(output)) <= {"evaluate", "errors"}, output
    assert "EDITED AFTER QUEUEING" not in output
    rows = dvc_json(project, "exp", "show")
    revs = {r["name"]: r["rev"] for b in rows for e in b.get("experiments") or [] for r in e["revs"]}
    lock = yaml.safe_load(run(["git", "show", f"{revs['snapshot']}:dvc.lock"], project).stdout)
    recorded = {d["path"]: d["md5"] for d in lock["stages"]["evaluate"]["deps"]}
    assert recorded["src/respiro/core/cli.py"] == hashlib.md5(original.encode()).hexdigest()


def test_exp_run_in_the_workspace_then_metrics_diff_then_going_back(first_run):
    """The README's path: `dvc repro`, commit the baseline (first_run), `dvc exp run -S ...`
    in the workspace, diff; then going back (`git checkout params.yaml && dvc repro`)
    restores the earlier run from DVC's run cache instead of retraining. The experiment
    changes segment.pad (how stft pads; segment only records where cycles lie) and the loss:
    stft and what follows rerun, the earlier audio stages do not. A change that reruns
    evaluate alone is the queued experiment above."""
    project, _, baseline = first_run
    try:
        output = dvc(project, "exp", "run", "-S", "segment.pad=zero", "-S", "loss.gamma=2")
        assert ran(output) == ["stft", "train", "evaluate", "errors"]
        diff = dvc_json(project, "metrics", "diff", "--all")["metrics/eval/metrics.json"]
        for key in ("accuracy", "se", "sp", "icbhi_score"):
            assert diff[key]["old"] is not None and diff[key]["new"] is not None
        changed = dvc(project, "params", "diff")
        assert "loss.gamma" in changed and "segment.pad" in changed
        shown = dvc(project, "exp", "show", "--csv")
        assert "icbhi_score" in shown and "loss.gamma" in shown

        run(["git", "checkout", "params.yaml"], project)
        output = dvc(project, "repro")
        assert ran(output) == [] and "Stage 'train' is cached - skipping run" in output
        assert lock_outs(project) == baseline
    finally:
        run(["git", "checkout", "--", "."], project)
        dvc(project, "checkout")


def test_a_local_folder_is_read_in_place_and_a_changed_recording_reruns_its_stages(tmp_path, icbhi_sample):
    """data.source local with a folder: DVC hashes the folder once, data/raw only names it,
    the user's files stay as they were (writable, outside DVC's cache), and editing one
    recording reruns the stages that read recordings."""
    import shutil

    import numpy as np
    import soundfile as sf

    folder = tmp_path / "mine"
    shutil.copytree(icbhi_sample, folder, ignore=shutil.ignore_patterns("README.md"))
    files = sorted(p for p in folder.iterdir() if p.is_file())
    before = {p: (p.stat().st_mode, p.stat().st_nlink) for p in files}
    project = make_project_copy(
        tmp_path / "project", {**TINY_PARAMS, "data": {"source": "local", "local_path": str(folder)}}
    )
    assert ran(dvc(project, "repro", "stft")) == ["download", "resample", "normalize", "segment", "stft"]
    assert [p.name for p in (project / "data" / "raw").iterdir()] == ["in_place.json"]
    assert {p: (p.stat().st_mode, p.stat().st_nlink) for p in files} == before  # not linked, not made read-only
    wav = next(p for p in files if p.suffix == ".wav")
    samples, rate = sf.read(wav, dtype="float32")
    sf.write(wav, (0.5 * samples).astype(np.float32), rate, subtype=sf.info(wav).subtype)
    assert ran(dvc(project, "repro", "stft")) == ["download", "resample", "normalize", "segment", "stft"]
