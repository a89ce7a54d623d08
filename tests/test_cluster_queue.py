"""`respiro queue start --cluster`: DVC's queue on a Ray cluster, results back as ordinary experiments.

Fast: the pure parts (addresses, packed arguments, error lines) and every refusal, in process.
Slow: a real two-node Ray cluster on this machine (tests/ray_nodes.py) with a bare git repository
as the git remote and a folder as the DVC remote: four experiments come back byte for byte as
the same experiments run locally with `dvc exp run`; a node killed mid-experiment costs nothing
but time; and, on the default in-process cluster, a failed experiment stays queued while the
others come back, and Ctrl-C leaves the queue to resume.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from respiro.commands import queue
from respiro.commands.cluster_setup import LOCK_FILE, ClusterError, driver_lock, parse_address
from respiro.commands.cluster_worker import error_line, repro_args
from tests.conftest import DVC_ENV, TINY_PARAMS, copy_project, make_project_copy, run
from tests.ray_nodes import ClusterNodes

# --- the pure parts ---------------------------------------------------------------------------


def test_addresses_are_what_ray_init_accepts() -> None:
    assert parse_address("local") is None and parse_address("auto") is None
    assert parse_address("head.lab:6379") == ("head.lab", 6379)
    assert parse_address("ray://10.0.0.5:10001") == ("10.0.0.5", 10001)
    assert parse_address("[::1]:6379") == ("::1", 6379)
    for bad in ("head.lab", "head:port", ":6379", "head:0", "head:70000", "http://head:8265/jobs"):
        with pytest.raises(ClusterError, match="is not a Ray address"):
            parse_address(bad)


def test_queued_arguments_become_dvc_exp_run_flags_again() -> None:
    # What DVC 3.67 packs for `dvc exp run --queue -f -k train evaluate`.
    packed = {
        "args": (),
        "kwargs": {"targets": ["train", "evaluate"], "force": True, "pull": False, "on_error": "keep-going"},
    }
    assert repro_args(packed) == ("--force", "--keep-going", "train", "evaluate")
    assert repro_args({"args": (), "kwargs": {"targets": [], "force": False, "on_error": "fail"}}) == ()
    assert repro_args({}) == ()


def test_a_failed_command_is_told_by_its_cause() -> None:
    output = (
        "Running stage 'train':\n> python -m stages.train\n"
        "train: error: train.epochs: input should be greater than or equal to 1; got 0\n"
        "ERROR: failed to reproduce 'train': failed to run: python -m stages.train, exited with 1\n"
    )
    assert error_line(output) == "train: error: train.epochs: input should be greater than or equal to 1; got 0"
    assert error_line("ERROR: failed to push data to the cloud\n") == "ERROR: failed to push data to the cloud"
    assert error_line("fatal: repository not found\n\n") == "fatal: repository not found"


# --- refusals, each one line, in process ------------------------------------------------------


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as ended:
        queue.run(["start", *argv])
    assert ended.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def dvc_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty git + DVC repository as the working directory (what the checks look at)."""
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_bad_or_unreachable_address_is_refused(capsys, dvc_repo: Path) -> None:
    assert refusal(capsys, "--cluster", "head:port").startswith(
        "queue: error: --cluster 'head:port' is not a Ray address"
    )
    with __import__("socket").socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    err = refusal(capsys, "--cluster", f"127.0.0.1:{port}")
    assert err.startswith(f"queue: error: cannot reach a Ray cluster at 127.0.0.1:{port}: Connection refused")


def test_missing_or_unreachable_remotes_are_refused(capsys, dvc_repo: Path) -> None:
    assert "no git remote 'origin'" in refusal(capsys)
    run(["git", "remote", "add", "origin", str(dvc_repo / "no-such-repo.git")], dvc_repo)
    err = refusal(capsys)
    assert "git remote 'origin'" in err and "unreachable" in err and "no-such-repo.git" in err
    run(["git", "init", "-q", "--bare", str(dvc_repo.parent / "remote.git")], dvc_repo)
    run(["git", "remote", "set-url", "origin", str(dvc_repo.parent / "remote.git")], dvc_repo)
    assert "no default DVC remote" in refusal(capsys)
    assert "no DVC remote 'elsewhere'" in refusal(capsys, "--dvc-remote", "elsewhere")
    run(["dvc", "remote", "add", "-d", "storage", str(dvc_repo.parent / "no-such-folder")], dvc_repo)
    err = refusal(capsys)
    assert "DVC remote 'storage'" in err and "does not exist or is unreachable" in err
    (dvc_repo.parent / "no-such-folder").mkdir()
    assert "no queued experiments" in _start_ok(capsys)


def _start_ok(capsys: pytest.CaptureFixture[str]) -> str:
    queue.run(["start"])
    return capsys.readouterr().out


def test_a_second_driver_is_refused_and_a_dead_ones_lock_taken_over(capsys, dvc_repo: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = dvc_repo / LOCK_FILE
        lock.write_text(f"{other.pid} {__import__('socket').gethostname()}\n")
        err = refusal(capsys)
        assert f"another driver (pid {other.pid}" in err and "is running this project's queue" in err
    finally:
        other.kill()
        other.wait()
    with driver_lock(dvc_repo):  # its driver is gone: the lock is taken over, and given back
        assert lock.read_text().split()[0] == str(__import__("os").getpid())
    assert not lock.exists()


# --- on a real cluster ------------------------------------------------------------------------

# TINY_PARAMS with coarse spectrograms (33 x 32) and no error page: an experiment is a real
# training in under half a minute on 2 cores.
CLUSTER_PARAMS = {
    **TINY_PARAMS,
    "resample": {"rate": 2000},
    "segment": {"duration": 1.0},
    "stft": {"n_fft": 64, "hop_length": 64},
    "errors": {"per_cell": 0},
}
# Four trainings that differ in their seed alone: a mix-up between them shows in every byte.
SEEDS = {"s1": 1, "s2": 2, "s3": 3, "s4": 4}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline run and committed once: the user's project before queueing."""
    project = make_project_copy(tmp_path_factory.mktemp("cluster-baseline") / "project", CLUSTER_PARAMS)
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "baseline"], project)
    return project


def results(project: Path, rev: str) -> tuple[bytes, str]:
    """What an experiment left: its metrics file's bytes and its model's hash in dvc.lock."""
    metrics = subprocess.run(
        ["git", "show", f"{rev}:metrics/eval/metrics.json"], cwd=project, capture_output=True, check=True
    ).stdout
    lock = yaml.safe_load(run(["git", "show", f"{rev}:dvc.lock"], project).stdout)
    [model] = [o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model.pt"]
    return metrics, model


@pytest.fixture(scope="module")
def local_results(baseline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    """The same experiments run locally, one after the other, with `dvc exp run`, with the one
    torch thread an experiment of one CPU gets on a node (Ray sets OMP_NUM_THREADS to a task's
    CPUs): training repeats byte for byte on one machine at one thread count."""
    project = copy_project(baseline, tmp_path_factory.mktemp("cluster-local") / "project")
    for name, seed in SEEDS.items():
        cmd = ["dvc", "exp", "run", "-n", name, "-S", f"train.seed={seed}"]
        subprocess.run(cmd, cwd=project, env={**DVC_ENV, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
    return {name: results(project, rev) for name, rev in experiment_revs(project).items()}


def experiment_revs(project: Path) -> dict[str, str]:
    """{name: commit} of every finished experiment `dvc exp show` lists under HEAD (queued ones
    are listed too, with their executor's state); a name listed twice fails."""
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    [row] = [b for b in json.loads(run(["dvc", "exp", "show", "--json"], project).stdout) if b["rev"] == head]
    finished = [
        exp for exp in row.get("experiments") or [] if (exp.get("executor") or {}).get("state", "success") == "success"
    ]
    listed = [(r["name"], r["rev"]) for exp in finished for r in exp["revs"]]
    names = [name for name, _ in listed]
    assert len(names) == len(set(names)), f"an experiment is listed twice: {names}"
    return dict(listed)


def user_project(baseline: Path, folder: Path, queued: dict[str, str]) -> Path:
    """A copy of the baseline with a bare git repository as `origin` and a folder as the default
    DVC remote (committed, as a team would), and `queued` ({name: -S value}) in DVC's queue."""
    project = copy_project(baseline, folder / "project")
    run(["git", "init", "-q", "--bare", str(folder / "git-remote.git")], folder)
    run(["git", "remote", "add", "origin", str(folder / "git-remote.git")], project)
    run(["git", "push", "-q", "origin", "main"], project)
    (folder / "dvc-remote").mkdir()
    run(["dvc", "remote", "add", "-d", "storage", str(folder / "dvc-remote")], project)
    run(["git", "commit", "-q", "-am", "the team's DVC remote"], project)
    for name, setting in queued.items():
        run(["dvc", "exp", "run", "--queue", "-q", "-n", name, "-S", setting], project)
    return project


def queue_status(project: Path) -> str:
    return run(["dvc", "queue", "status"], project).stdout


def remote_refs(folder: Path) -> str:
    return run(["git", "for-each-ref", "--format=%(refname)"], folder / "git-remote.git").stdout


DRIVER = [sys.executable, "-m", "respiro", "queue", "start"]


@pytest.mark.slow
def test_four_experiments_on_two_nodes_come_back_as_if_run_here(baseline, local_results, tmp_path: Path) -> None:
    project = user_project(baseline, tmp_path, {name: f"train.seed={seed}" for name, seed in SEEDS.items()})
    with ClusterNodes(tmp_path / "cluster", nodes=2) as cluster:
        result = cluster.command([*DRIVER, "--cluster", cluster.address], project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A line per change of each experiment, and both nodes worked.
    for name in SEEDS:
        assert re.search(rf"^queue: {name}: running on .* \(127\.0\.0\.[23]\)$", output, re.M), output
    pushed_from = set(re.findall(r"^queue: s\d: pushed from .* \((127\.0\.0\.[23])\) in ", output, re.M))
    assert pushed_from == {"127.0.0.2", "127.0.0.3"}, output
    assert output.count("pulled") == len(SEEDS)
    # The summary is `dvc exp show`'s table, each experiment in it.
    assert "Experiment" in output and all(f"[{name}]" in output for name in SEEDS)

    # Ordinary experiments of the user's workspace, each once, the same bytes as run locally.
    revs = experiment_revs(project)
    assert set(revs) == set(SEEDS)
    for name, rev in revs.items():
        assert results(project, rev) == local_results[name], name
    assert not any(name in queue_status(project) for name in SEEDS)
    # Their outputs came back too: `dvc exp apply` restores the model without a remote.
    run(["dvc", "exp", "apply", "s3"], project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    [model] = [o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model.pt"]
    assert model == local_results["s3"][1] and "up to date" in run(["dvc", "status"], project).stdout
    # Nothing of the driver's is left on the git remote but the experiments.
    assert "refs/respiro-queue" not in remote_refs(tmp_path)
    # Each node worked in its own folder, and left no experiment folder behind.
    for index in range(2):
        assert [p.name for p in cluster.workdir(index).iterdir()] == ["dvc-cache"]


@pytest.mark.slow
def test_a_node_killed_mid_experiment_costs_a_retry_not_a_result(baseline, local_results, tmp_path: Path) -> None:
    queued = {name: f"train.seed={SEEDS[name]}" for name in ("s1", "s2")}
    project = user_project(baseline, tmp_path, queued)
    lines: list[str] = []
    with ClusterNodes(tmp_path / "cluster", nodes=2) as cluster:
        driver = cluster.popen([*DRIVER, "--cluster", cluster.address], project)
        watchdog = threading.Timer(900, driver.kill)  # a hang fails the test instead of CI
        watchdog.start()
        assert driver.stdout is not None
        killed = None
        for line in driver.stdout:
            lines.append(line.rstrip("\n"))
            found = re.match(r"queue: (s\d): running on .* \(127\.0\.0\.3\)$", line.strip())
            if found and killed is None:
                time.sleep(5)  # into its `dvc exp run`
                cluster.kill_node(1)
                killed = found.group(1)
        driver.wait()
        watchdog.cancel()
    output = "\n".join(lines)
    assert driver.returncode == 0, output
    assert killed is not None, output
    assert re.search(rf"^queue: {killed}: running on .* \(127\.0\.0\.2\) \(try 2: ", output, re.M), output
    assert re.search(rf"^queue: {killed}: pushed from .* \(127\.0\.0\.2\)", output, re.M), output
    revs = experiment_revs(project)  # each once
    assert set(revs) == set(queued)
    for name, rev in revs.items():
        assert results(project, rev) == local_results[name], name
    exp_refs = [ref for ref in remote_refs(tmp_path).split() if ref.startswith("refs/exps/")]
    assert sorted(ref.rsplit("/", 1)[1] for ref in exp_refs) == sorted(queued)


@pytest.mark.slow
def test_a_bad_experiment_stays_queued_and_ctrl_c_leaves_the_queue_to_resume(
    baseline, local_results, tmp_path: Path
) -> None:
    """On the default cluster (`local`, started in the driver's process)."""
    project = user_project(baseline, tmp_path, {"s1": "train.seed=1", "bad": "train.epochs=0"})
    env = {
        **DVC_ENV,
        "RESPIRO_QUEUE_DIR": str(tmp_path / "work"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "0" * 64,
    }

    # Ctrl-C while both run: one line, exit 130, nothing pushed or pulled, both still queued.
    driver = subprocess.Popen(DRIVER, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert driver.stdout is not None
    seen = []
    for line in driver.stdout:
        seen.append(line)
        if line.startswith("queue: s1: running on"):
            time.sleep(3)
            driver.send_signal(signal.SIGINT)
            break
    rest, _ = driver.communicate(timeout=120)
    interrupted = "".join(seen) + rest
    assert driver.returncode == 130, interrupted
    assert "queue: interrupted: cancelled" in interrupted and "they stay queued" in interrupted
    assert "pushed" not in interrupted.replace("pushing", "")
    assert not [ref for ref in remote_refs(tmp_path).split() if ref.startswith("refs/exps/")]
    assert "s1" in queue_status(project) and "bad" in queue_status(project)
    assert not (project / LOCK_FILE).exists()

    # The rerun: s1 comes back; bad is reported in one line with its name, and stays queued.
    result = subprocess.run(DRIVER, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    [failed] = [line for line in output.splitlines() if line.startswith("queue: bad: failed")]
    assert "train.epochs" in failed and failed.endswith("(kept in the queue)")
    assert result.stderr.strip().splitlines()[-1].startswith("queue: error: 1 experiments failed and stay queued: bad")
    revs = experiment_revs(project)
    assert set(revs) == {"s1"} and results(project, revs["s1"]) == local_results["s1"]
    status = queue_status(project)
    assert "bad" in status and "Queued" in status and "s1" not in status
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["dvc-cache"]
