"""What `respiro queue start --cluster` checks before it starts: the cluster's address, the two
remotes every node must reach, and that no other driver runs this project's queue.

Each check fails with one line naming the address, remote or process (a `ClusterError`), before
anything is pushed or started: a typo in an address should not cost a cluster start, and a
missing remote would only show on every worker, once per experiment.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from respiro.core.errors import UserError

# `--cluster local` (the default): a Ray cluster started in this process, on this machine.
LOCAL = "local"
# Where a driver records itself, beside DVC's own queue (.dvc/tmp/exps).
LOCK_FILE = Path(".dvc") / "tmp" / "respiro-queue.lock"
# A remote that answers at all answers in seconds; one that does not is unreachable.
REMOTE_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 5


class ClusterError(UserError, RuntimeError):
    """A cluster, remote or driver problem that stops `respiro queue start`; names the thing."""


def parse_address(address: str) -> tuple[str, int] | None:
    """The host and port to check before `ray.init(address)`, or None where there is nothing to
    reach first (`local`: started here; `auto`: a cluster `ray start` left on this machine)."""
    if address in (LOCAL, "auto"):
        return None
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in hostport:
        raise ClusterError(
            f"--cluster {address!r} is not a Ray address: give HOST:PORT (a cluster's head), "
            "ray://HOST:10001 (Ray Client), auto (a cluster started on this machine) or local"
        )
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """Refuse, in one line, a head that does not accept a connection (a TCP connect, nothing sent)."""
    target = parse_address(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at {address}: {reason} (is `ray start --head` running there?)"
        ) from None


@dataclass(frozen=True)
class Remotes:
    """Where the code and the data travel between the driver and the nodes."""

    git_name: str  # the driver's name for the git remote (`dvc exp pull` from it)
    git_url: str  # what a node clones: absolute where it is a local path
    dvc_name: str
    dvc_url: str  # what a node pushes to and pulls from: absolute where it is a local path


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=REMOTE_TIMEOUT_S)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def find_git_remote(root: Path, name: str) -> str:
    """The URL of git remote `name`, checked by listing it (`git ls-remote`)."""
    found = _git(root, "remote", "get-url", name)
    if found.returncode != 0:
        raise ClusterError(
            f"no git remote {name!r}: the nodes fetch each experiment's code from one; "
            f"`git remote add {name} URL` (a URL every node can reach: SSH, HTTPS or a shared path)"
        )
    url = found.stdout.strip()
    # git reads a relative path from the repository; a node clones from elsewhere.
    local = root / url
    if "://" not in url and ":" not in url.split("/")[0] and local.exists():
        url = str(local.resolve())
    try:
        listed = _git(root, "ls-remote", "--heads", name)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"git remote {name!r} ({url}) did not answer in {REMOTE_TIMEOUT_S} s") from None
    if listed.returncode != 0:
        raise ClusterError(f"git remote {name!r} ({url}) is unreachable: {_last_line(listed.stderr)}")
    return url


def find_dvc_remote(root: Path, name: str | None) -> tuple[str, str]:
    """(name, URL) of DVC remote `name` (default: the project's default remote), checked to exist."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        config = repo.config
        name = name or config["core"].get("remote")
        if not name:
            raise ClusterError(
                "no default DVC remote: the nodes pull the data and push their results through one; "
                "`dvc remote add -d NAME URL` (S3, SSH or a folder every node can reach)"
            )
        if name not in config["remote"]:
            raise ClusterError(f"no DVC remote {name!r} (`dvc remote list` shows those configured)")
        try:
            remote = repo.cloud.get_remote(name)
            found = remote.fs.exists(remote.path)
        except Exception as err:  # each filesystem raises its own types for a bad URL or credentials
            raise ClusterError(
                f"DVC remote {name!r} ({config['remote'][name]['url']}) is unreachable: {_last_line(str(err))}"
            ) from err
        if not found:
            raise ClusterError(
                f"DVC remote {name!r} ({config['remote'][name]['url']}) does not exist or is unreachable: "
                "create it (a bucket, or `mkdir` for a folder) where every node can reach it"
            )
        # A folder's URL relative to .dvc/ means another place on a node: give nodes the absolute one.
        url = remote.path if remote.fs.protocol in ("local", "file") else str(config["remote"][name]["url"])
    return name, url


def find_remotes(root: Path, git_remote: str, dvc_remote: str | None) -> Remotes:
    git_url = find_git_remote(root, git_remote)
    dvc_name, dvc_url = find_dvc_remote(root, dvc_remote)
    return Remotes(git_remote, git_url, dvc_name, dvc_url)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def driver_lock(root: Path) -> Iterator[None]:
    """Hold this project's queue for one driver: a second one (another terminal, a second
    `respiro table3 --run --cluster`) would send the same experiments twice. A lock left by a
    driver that died (its PID gone) is taken over."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid_text, _, host = path.read_text().partition(" ")
            pid = int(pid_text) if pid_text.strip().isdigit() else 0
            if host.strip() != socket.gethostname() or (pid and _alive(pid)):
                raise ClusterError(
                    f"another driver (pid {pid} on {host.strip() or 'this machine'}) is running this project's "
                    f"queue; wait for it, or stop it with Ctrl-C (its lock: {LOCK_FILE})"
                ) from None
            path.unlink(missing_ok=True)  # its driver is gone
            continue
        with os.fdopen(fd, "w") as lock:
            lock.write(me)
        break
    else:
        raise ClusterError(f"cannot take the queue's lock {LOCK_FILE}: another driver keeps taking it")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
