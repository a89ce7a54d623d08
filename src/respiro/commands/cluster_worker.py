"""One queued experiment on one node: fetch its commit, run it with DVC, push it back.

What a node does with a `Job` (cluster_run.py hands one to each Ray task), with plain `git` and
`dvc` and no shared file system:

1. If the experiment's ref is already on the git remote, stop: an earlier try of this task
   pushed it before its node died or its driver was interrupted (a retry makes no second copy).
2. Fetch the queued stash commit from the git remote (the driver pushed it under
   refs/respiro-queue/NAME), check out the commit it was queued on, and put the stash's files in
   place as staged changes: the same files and params a local queue worker would run, code
   included, whatever the workspace holds now.
3. `dvc exp run --pull -n NAME`: a workspace experiment in this folder; `--pull` takes outputs
   and run-cache entries from the DVC remote, so the audio stages the driver already ran are
   restored, not rerun.
4. `dvc push --run-cache`, then `dvc exp push`: the outputs and run cache first, the git ref
   last, so a ref on the remote always means a complete result.

Each try works in a folder of its own under $RESPIRO_QUEUE_DIR (default: the system's temporary
folder), removed when it ends (or, for a try that was killed, by the next try of the same
experiment on that node); the node's DVC cache is shared by its tries, so the audio outputs are
pulled once per node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BASE_DIR_ENV = "RESPIRO_QUEUE_DIR"
# Where a queued experiment keeps its packed `dvc exp run` arguments (DVC's repro.dat): in the
# stash commit, not in the experiment.
PACKED_ARGS = ".dvc/tmp/repro.dat"
# A stage's one-line error (core/cli.py prints `<stage>: error: <message>`), then DVC's own.
STAGE_ERROR = re.compile(r"^[a-z_]+: error: .+$", re.MULTILINE)
DVC_ERROR = re.compile(r"^ERROR: .+$", re.MULTILINE)


@dataclass(frozen=True)
class Job:
    """Everything a node needs to run one queued experiment; plain values, sent to the node."""

    name: str
    stash_rev: str  # the queued commit: the experiment's files and params
    head_rev: str  # the commit it was queued on (the experiment's baseline)
    exp_ref: str  # refs/exps/<baseline>/<name>: where the result appears
    queue_ref: str  # refs/respiro-queue/<name> on the git remote: the stash commit
    run_args: tuple[str, ...]  # the options and targets it was queued with (`repro_args`)
    git_url: str
    dvc_remote: str
    dvc_url: str
    author: tuple[str, str]  # the driver's git user.name and user.email: the experiment's author


@dataclass(frozen=True)
class Outcome:
    """How a try ended: pushed (a new result on the remotes), found (pushed by an earlier try)
    or failed (`message`: the one line that says why)."""

    name: str
    node: str
    state: Literal["pushed", "found", "failed"]
    message: str = ""
    steps: tuple[tuple[str, float], ...] = ()  # (step, wall seconds): fetch, run, push


class StepFailed(Exception):
    """A git or dvc command of a try failed; the message is its one line."""


# `dvc exp run` options a queued experiment keeps in its packed arguments, as flags again.
REPRO_FLAGS = {
    "force": "--force",
    "single_item": "--single-item",
    "pipeline": "--pipeline",
    "all_pipelines": "--all-pipelines",
    "downstream": "--downstream",
    "recursive": "--recursive",
    "force_downstream": "--force-downstream",
    "allow_missing": "--allow-missing",
}
ON_ERROR_FLAGS = {"fail": (), "keep-going": ("--keep-going",), "ignore": ("--ignore-errors",)}


def repro_args(packed: dict) -> tuple[str, ...]:
    """The `dvc exp run` flags and targets of a queued experiment, from its packed arguments
    (DVC's repro.dat: `{"args": (targets?,), "kwargs": {"targets": [...], "force": False, ...}}`)."""
    kwargs = packed.get("kwargs", {})
    targets = kwargs.get("targets") or (packed.get("args") or [None])[0] or []
    if isinstance(targets, str):
        targets = [targets]
    flags = [flag for key, flag in REPRO_FLAGS.items() if kwargs.get(key)]
    flags += ON_ERROR_FLAGS.get(kwargs.get("on_error") or "fail", ())
    return (*flags, *targets)


def error_line(output: str) -> str:
    """The line of a failed command's output that says why: a stage's own error line, else
    DVC's last ERROR line, else the last line."""
    for pattern in (STAGE_ERROR, DVC_ERROR):
        found = pattern.findall(output)
        if found:
            return str(found[-1]).strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def base_dir() -> Path:
    return Path(os.environ.get(BASE_DIR_ENV) or Path(tempfile.gettempdir()) / "respiro-queue")


def environment(job: Job) -> dict[str, str]:
    name, email = job.author
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_TERMINAL_PROMPT": "0",  # an unreachable remote fails instead of asking for a password
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def command(cmd: list[str], cwd: Path, env: dict[str, str], step: str) -> str:
    """Run one command of a try; its output is kept only to say why it failed."""
    result = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise StepFailed(f"{step}: {error_line(result.stdout)}")
    return result.stdout


def dvc(*args: str) -> list[str]:
    # This interpreter's DVC: the one installed with the project on this node.
    return [sys.executable, "-m", "dvc", *args]


def remote_has(job: Job, env: dict[str, str], cwd: Path) -> bool:
    return bool(command(["git", "ls-remote", job.git_url, job.exp_ref], cwd, env, "git ls-remote").strip())


def check_out(job: Job, folder: Path, env: dict[str, str]) -> None:
    """The queued commit's files on top of the commit it was queued on, staged, as DVC's own
    queue worker applies its stash; the node's shared cache and the DVC remote configured."""
    command(["git", "init", "-q", str(folder)], folder.parent, env, "git init")
    command(["git", "remote", "add", "origin", job.git_url], folder, env, "git remote add")
    command(["git", "fetch", "-q", "--no-tags", "origin", f"+{job.queue_ref}:{job.queue_ref}"], folder, env, "fetch")
    command(["git", "checkout", "-q", "--detach", job.stash_rev], folder, env, "checkout")
    command(["git", "reset", "-q", "--soft", job.head_rev], folder, env, "checkout")
    command(["git", "rm", "-q", "--cached", "--ignore-unmatch", PACKED_ARGS], folder, env, "checkout")
    (folder / PACKED_ARGS).unlink(missing_ok=True)
    command(dvc("remote", "add", "--local", "--force", "--default", job.dvc_remote, job.dvc_url), folder, env, "dvc")
    command(dvc("cache", "dir", "--local", str(base_dir() / "dvc-cache")), folder, env, "dvc")


def run_job(job: Job, node: str) -> Outcome:
    """One try of `job` on this node (see the module's docstring); never raises for a failed
    experiment: its Outcome says why."""
    base = base_dir()
    base.mkdir(parents=True, exist_ok=True)
    prefix = f"{job.name}-{job.stash_rev[:10]}-"
    # A try killed on this node (a cancelled task, a worker that died) left its folder; one try
    # of a queued experiment runs at a time, so any folder of this one is such a leftover.
    for stale in base.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    env = environment(job)
    steps: list[tuple[str, float]] = []
    try:
        if remote_has(job, env, folder):
            return Outcome(job.name, node, "found")
        start = time.perf_counter()
        check_out(job, folder, env)
        steps.append(("fetch", time.perf_counter() - start))
        start = time.perf_counter()
        command(dvc("exp", "run", "--pull", "--name", job.name, *job.run_args), folder, env, "dvc exp run")
        steps.append(("run", time.perf_counter() - start))
        start = time.perf_counter()
        command(dvc("push", "--run-cache"), folder, env, "dvc push")
        command(dvc("exp", "push", "origin", job.name), folder, env, "dvc exp push")
        steps.append(("push", time.perf_counter() - start))
        return Outcome(job.name, node, "pushed", steps=tuple(steps))
    except StepFailed as err:
        return Outcome(job.name, node, "failed", str(err), tuple(steps))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
