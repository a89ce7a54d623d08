"""DVC's experiment queue run on a Ray cluster; each experiment comes back as an ordinary one.

The driver (this module, in the user's project) does, for the experiments queued with
`dvc exp run --queue` (all of them, or those named):

1. checks the cluster's address and the two remotes, and takes the queue's lock (cluster_setup);
2. pushes the workspace's outputs and DVC's run cache to the DVC remote (what the nodes pull
   instead of recomputing), and each queued stash commit to the git remote under
   refs/respiro-queue/NAME (what the nodes check out);
3. sends one Ray task per experiment (cluster_worker.run_job on a node: fetch, `dvc exp run`,
   push), `cpus` CPUs each (Ray then sets OMP_NUM_THREADS, so training uses that many threads); Ray retries a task whose node or worker died (`retries` times); a try
   finds an experiment an earlier try pushed and does not run it again;
4. for each task that ends with a pushed result: `dvc exp pull` (its ref and outputs), then
   `dvc queue remove`, so an entry leaves the queue only once its result is here; a failed
   experiment is reported in one line and stays queued;
5. prints a line per change (queued, running on NODE, pushed, pulled, failed) and, at the end,
   `dvc exp show` of the commits the experiments were queued on.

Ctrl-C cancels the running tasks (their folders on the nodes go with them) and pulls nothing
more: every entry not pulled stays queued, and the next start resumes them (a result a node had
finished pushing is found there and pulled, not rerun).
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respiro.commands.cluster_setup import LOCAL, ClusterError, Remotes, check_reachable, driver_lock, find_remotes
from respiro.commands.cluster_worker import PACKED_ARGS, Job, Outcome, error_line, repro_args, run_job

# Where the driver publishes queued stash commits on the git remote for the nodes to fetch.
QUEUE_NAMESPACE = "refs/respiro-queue"
# Ray retries a task whose worker or node died this many times (a failed experiment is not retried).
DEFAULT_RETRIES = 3
# The smallest object store Ray accepts: tasks exchange a few small records, never data.
OBJECT_STORE_BYTES = 80 * 1024 * 1024

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


def _run(root: Path, cmd: Sequence[str], what: str) -> str:
    result = subprocess.run(list(cmd), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise ClusterError(f"{what} failed: {error_line(result.stdout)}")
    return result.stdout


def _dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def author(root: Path) -> tuple[str, str]:
    """The user's git identity: the experiments' commits on the nodes are theirs."""

    def get(key: str, default: str) -> str:
        found = subprocess.run(["git", "config", key], cwd=root, capture_output=True, text=True)
        return os.environ.get(f"GIT_AUTHOR_{key.split('.')[1].upper()}") or found.stdout.strip() or default

    return get("user.name", "respiro queue"), get("user.email", f"respiro@{socket.gethostname()}")


def queued_jobs(root: Path, remotes: Remotes, names: Sequence[str] | None = None) -> list[Job]:
    """A Job for each experiment in DVC's queue (in queue order), or for those of `names`."""
    from dvc.repo import Repo
    from dvc.repo.experiments.refs import ExpRefInfo

    with Repo(str(root)) as repo:
        entries = list(repo.experiments.celery_queue.iter_queued())
    if names is not None:
        entries = [e for e in entries if e.name in set(names)]
    who = author(root)
    jobs = []
    for entry in entries:
        assert entry.name is not None  # DVC names every queued experiment
        packed = subprocess.run(["git", "show", f"{entry.stash_rev}:{PACKED_ARGS}"], cwd=root, capture_output=True)
        # DVC's own pickle of the queued `dvc exp run` arguments, from the user's own repository.
        args = pickle.loads(packed.stdout) if packed.returncode == 0 and packed.stdout else {}
        head = entry.head_rev or entry.baseline_rev
        jobs.append(
            Job(
                name=entry.name,
                stash_rev=entry.stash_rev,
                head_rev=head,
                exp_ref=str(ExpRefInfo(baseline_sha=entry.baseline_rev, name=entry.name)),
                queue_ref=f"{QUEUE_NAMESPACE}/{entry.name}",
                run_args=repro_args(args),
                git_url=remotes.git_url,
                dvc_remote=remotes.dvc_name,
                dvc_url=remotes.dvc_url,
                author=who,
            )
        )
    return jobs


def publish(root: Path, remotes: Remotes, jobs: Sequence[Job], say: Say) -> None:
    """What the nodes need that only the driver has: the workspace's outputs and run cache on
    the DVC remote, the queued commits on the git remote."""
    say(f"queue: pushing the workspace's outputs and run cache to DVC remote {remotes.dvc_name!r}")
    _run(root, _dvc("push", "--run-cache", "--remote", remotes.dvc_name), "dvc push --run-cache")
    refspecs = [f"+{job.stash_rev}:{job.queue_ref}" for job in jobs]
    _run(root, ["git", "push", "-q", remotes.git_name, *refspecs], f"git push to {remotes.git_name!r}")


def unpublish(root: Path, remotes: Remotes, job: Job) -> None:
    """Remove an experiment's queued commit from the git remote once it no longer needs it."""
    subprocess.run(["git", "push", "-q", remotes.git_name, f":{job.queue_ref}"], cwd=root, capture_output=True)


def pull_back(root: Path, remotes: Remotes, job: Job) -> float:
    """The pushed experiment into the project (its ref and outputs), then out of the queue."""
    start = time.perf_counter()
    _run(
        root, _dvc("exp", "pull", "--remote", remotes.dvc_name, remotes.git_name, job.name), f"dvc exp pull {job.name}"
    )
    _run(root, _dvc("queue", "remove", job.name), f"dvc queue remove {job.name}")
    return time.perf_counter() - start


def node_label() -> str:
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def try_on_node(job: Job, board: Any) -> Outcome:
    """The Ray task: one try of `job` on whichever node Ray chose, announced to the driver."""
    node = node_label()
    board.started.remote(job.name, node)
    return run_job(job, node)


# A resource Ray gives the head node alone (its HEAD_NODE_RESOURCE_NAME; ray.train places its
# state actor the same way): the board lives there, with the cluster itself. The driver's own
# node may be a worker that dies: on one machine a driver can attach to any node's raylet.
HEAD_NODE = "node:__internal_head__"


class Board:
    """Where tries announce their start (a Ray actor on the head node): the driver shows
    'running on NODE' while the experiment runs, and a retry on another node."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, name: str, node: str) -> None:
        self.events.append((name, node))

    def since(self, seen: int) -> list[tuple[str, str]]:
        """The events after the first `seen`: asking again after a lost reply loses none."""
        return self.events[seen:]


def connect(address: str) -> None:
    # Ray's usage statistics stay off unless the user turned them on.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == LOCAL:
        # A cluster of this machine alone: Ray then gives its processes the loopback address and
        # listens on it only, instead of on every interface for nodes that will never join.
        # (Read when ray is first imported.)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    # Ray's own warnings (its token-auth notice) would break the one line per event.
    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": True, "logging_level": "ERROR"}
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {error_line(str(err))}") from err


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 60 else f"{int(value // 60)} min {value % 60:02.0f} s"


def describe(outcome: Outcome, pulled_s: float) -> str:
    """'pushed from NODE in 1 min 02 s (fetch 3 s, run 55 s, push 4 s, pull 2 s)'."""
    steps = dict(outcome.steps)
    parts = [f"{step} {s:.0f} s" for step, s in (*outcome.steps, ("pull", pulled_s))]
    if outcome.state == "found":
        return f"found on the remotes (pushed by an earlier try); pulled in {seconds(pulled_s)}"
    return f"pushed from {outcome.node} in {seconds(sum(steps.values()))} ({', '.join(parts)}); pulled"


@dataclass(frozen=True)
class Cluster:
    """Where and how the experiments run: the cluster's `address`, the CPUs each experiment
    asks Ray for (and trains with), and how many more times a failed one is tried."""

    address: str = LOCAL
    cpus: int = 1
    retries: int = DEFAULT_RETRIES


def run_queue(
    root: Path,
    cluster: Cluster = Cluster(),
    git_remote: str = "origin",
    dvc_remote: str | None = None,
    names: Sequence[str] | None = None,
    say: Say = _say,
) -> list[str]:
    """Run the queued experiments (or those of `names`) on `cluster`; the names of those that
    failed, still queued. See the module's docstring."""
    address = cluster.address
    check_reachable(address)
    with driver_lock(root):
        remotes = find_remotes(root, git_remote, dvc_remote)
        jobs = queued_jobs(root, remotes, names)
        if not jobs:
            say("queue: no queued experiments (queue some with `dvc exp run --queue -S ...`)")
            return []
        publish(root, remotes, jobs, say)
        connect(address)
        try:
            failed = _fan_out(root, remotes, jobs, cluster, say)
        finally:
            import ray

            ray.shutdown()
        say(exp_table(root, sorted({job.head_rev for job in jobs})))
        return failed


def exp_table(root: Path, heads: Sequence[str]) -> str:
    """`dvc exp show` of the commits the experiments were queued on: the params and metrics that
    differ, as wide as the terminal (200 columns in a log, where DVC would squeeze it to 80)."""
    width = os.get_terminal_size().columns if sys.stdout.isatty() else 200
    revs = [arg for head in heads for arg in ("--rev", head)]
    cmd = _dvc("exp", "show", "--no-pager", "--hide-queued", "--only-changed", *revs)
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env={**os.environ, "COLUMNS": str(width)})
    if result.returncode != 0:
        raise ClusterError(f"dvc exp show failed: {error_line(result.stdout + result.stderr)}")
    return result.stdout.rstrip()


def _fan_out(root: Path, remotes: Remotes, jobs: Sequence[Job], cluster: Cluster, say: Say) -> list[str]:
    import ray

    board: Any = ray.remote(num_cpus=0, resources={HEAD_NODE: 0.001})(Board).remote()
    # Ray runs a task of N CPUs with OMP_NUM_THREADS=N: an experiment trains with the threads it asked for.
    task = ray.remote(try_on_node).options(num_cpus=cluster.cpus, max_retries=cluster.retries, retry_exceptions=False)
    pending = {task.remote(job, board): job for job in jobs}
    for job in jobs:
        say(f"queue: {job.name}: queued")
    tries: dict[str, int] = {}
    failed: list[str] = []
    seen = 0  # board events shown so far
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            try:
                news = ray.get(board.since.remote(seen))
            except ray.exceptions.ActorUnavailableError:
                # A node going away can reset the board's connection for a moment (seen when a
                # worker node was killed): its events wait for the next look.
                news = []
            seen += len(news)
            for name, node in news:
                tries[name] = tries.get(name, 0) + 1
                again = f" (try {tries[name]}: the last one's worker or node was lost)" if tries[name] > 1 else ""
                say(f"queue: {name}: running on {node}{again}")
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcome: Outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # its node died more often than `retries`
                    outcome = Outcome(
                        job.name, "?", "failed", f"lost {cluster.retries + 1} times: {error_line(str(err))}"
                    )
                if outcome.state == "failed":
                    failed.append(job.name)
                    say(f"queue: {job.name}: failed on {outcome.node}: {outcome.message} (kept in the queue)")
                else:
                    say(f"queue: {job.name}: {describe(outcome, pull_back(root, remotes, job))}")
                unpublish(root, remotes, job)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        say(
            f"queue: interrupted: cancelled {len(pending)} experiments "
            f"({', '.join(job.name for job in pending.values())}); they stay queued"
        )
        raise
    return failed
