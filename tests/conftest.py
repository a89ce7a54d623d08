"""Shared fixtures: where the real ICBHI files are, and throw-away copies of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
import yaml

from respiro.core.config import TrainParams

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_dir(env: str, name: str) -> Path:
    """A folder of real ICBHI files beside the project, or skip the test saying why."""
    path = Path(os.environ.get(env, SHARED / name))
    if not path.is_dir():
        pytest.skip(f"{path} is absent (set {env} to a folder of real ICBHI files to run this test)")
    return path


@pytest.fixture
def icbhi_sample() -> Path:
    return shared_dir("ICBHI_SAMPLE_DIR", "icbhi-sample")


@pytest.fixture
def icbhi_metadata() -> Path:
    return shared_dir("ICBHI_METADATA_DIR", "icbhi-metadata")


# Environment for DVC and git in a throw-away copy: no analytics, no user config side effects.
DVC_ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "PYTHONUNBUFFERED": "1",
}


def project_files() -> list[str]:
    """Files git would put in a clone of the working tree: tracked and untracked-not-ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run a command in a project copy; a hang fails the test (TimeoutExpired) instead of CI."""
    result = subprocess.run(cmd, cwd=cwd, env=DVC_ENV, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def set_params(project: Path, overrides: dict[str, dict]) -> None:
    """Merge `{group: {key: value}}` into the copy's params.yaml."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for group, values in overrides.items():
        params[group].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def write_untrained_checkpoint(
    path: Path,
    model: torch.nn.Module,
    params: dict,
    class_names: tuple[str, ...],
    standardization: tuple[float, float] = (-9.0, 3.0),
    median_seconds: float = 2.0,
) -> Path:
    """`model` as the train stage writes a checkpoint (save_checkpoint), for the tests of what
    reads one: `params` (params.yaml's shape), one input mean and std for every bin of the
    params' front-end, epoch 1 with no validation scores."""
    from respiro.audio.chain import AudioChain
    from respiro.training.checkpoint import CheckpointContents, save_checkpoint

    bins = AudioChain.from_params(params).shape[0]
    mean, std = standardization
    save_checkpoint(
        path,
        CheckpointContents(
            state_dict=model.state_dict(),
            class_names=class_names,
            params=params,
            input_mean=np.full(bins, mean, np.float32),
            input_std=np.full(bins, std, np.float32),
            epoch=1,
            val_scores={"icbhi_score": None, "se": None, "sp": None},
            cycle_seconds_median=median_seconds,
        ),
    )
    return path


def train_params(**values: object) -> TrainParams:
    """The project's train params (params.yaml) with `values` in their place, validated."""
    return TrainParams.model_validate({**yaml.safe_load((ROOT / "params.yaml").read_text())["train"], **values})


# Small enough for a whole pipeline in well under a minute on 2 cores, big enough that every
# class and both official split sides have cycles.
TINY_PARAMS = {
    "synthetic": {"patients": 8, "recordings": 12, "recording_seconds": 12},
    "segment": {"duration": 2.0},
    "model": {"arch": "resnet18"},
    "train": {"epochs": 1, "batch_size": 16},
}


def make_project_copy(dest: Path, overrides: dict[str, dict] | None = None) -> Path:
    """Copy the project into `dest` as a fresh git repository (one commit), DVC ready."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    if overrides:
        set_params(dest, overrides)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "copy of the project"], dest)
    run(["dvc", "config", "--local", "core.analytics", "false"], dest)
    return dest


# A copy of a project is everything but DVC's scratch folder (locks, the experiments' queue
# and temporary copies), which a project makes anew; DVC's cache and git's history come along.
SCRATCH = (".dvc/tmp",)


def copy_project(source: Path, dest: Path) -> Path:
    """A second folder holding the same git repository, workspace and DVC cache as `source`:
    a run made once (tiny_baseline) serves several tests, each in its own folder."""
    shutil.copytree(source, dest, symlinks=True, ignore=lambda folder, names: _scratch(source, folder, names))
    return dest


def _scratch(source: Path, folder: str, names: list[str]) -> list[str]:
    here = Path(folder).relative_to(source)
    return [name for name in names if (here / name).as_posix() in SCRATCH]


class FinishedRun(NamedTuple):
    project: Path
    output: str  # what `dvc repro` printed


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory) -> FinishedRun:
    """The tiny pipeline run once with `dvc repro` and committed, as a user keeps a baseline:
    tests that start from a finished run take a copy (copy_project) instead of running it
    again. Never changed: a test that changes a run works in its own copy."""
    project = make_project_copy(tmp_path_factory.mktemp("tiny-baseline") / "project", TINY_PARAMS)
    result = run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "baseline"], project)
    return FinishedRun(project, result.stdout + result.stderr)
