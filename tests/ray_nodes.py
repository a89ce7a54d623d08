"""A Ray cluster of several nodes on this machine, for the tests and the benchmark of
`respiro queue start --cluster` (not a test module).

Each node is its own `ray start --block` process with one CPU, its own Ray folder and its own
working folder ($RESPIRO_QUEUE_DIR), as separate machines would have. They run in a private
network namespace (`unshare -n`: a loopback device and nothing else), each on its own loopback
address (head 127.0.0.2, then .3, ...), so that Ray's servers, which listen on every interface,
can be reached from nowhere but this namespace, and nodes are told apart by address. Commands
that talk to the cluster (the driver) run inside it too (`ClusterNodes.command`). Token
authentication is on, with a token made per cluster and handed to every process in the
environment (nothing written to ~/.ray).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import DVC_ENV

# The `ray` command installed beside this Python (the project's environment).
RAY = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else "ray"
PORT = 6379  # the namespace is ours: Ray's default port is free there
START_TIMEOUT_S = 90


def namespace_available() -> str | None:
    """None where `unshare -n` works here, else why not."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "unshare/nsenter (util-linux) are not installed"
    tried = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if tried.returncode != 0:
        return f"cannot make a private network namespace (unshare -n: {tried.stderr.strip()}; needs root)"
    return None


class ClusterNodes:
    """`nodes` one-CPU Ray nodes in a private network namespace; a context manager that stops
    every process it started, by process id, whatever happens in between."""

    def __init__(self, folder: Path, nodes: int = 2) -> None:
        self.folder = folder
        self.count = nodes
        self.env = {
            **DVC_ENV,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }
        self.holder: subprocess.Popen[str] | None = None
        self.nodes: list[subprocess.Popen[bytes]] = []
        # Ray's folders, short: its sockets' paths must fit in 107 bytes, a test's folder may not.
        self.ray_root = Path(tempfile.mkdtemp(prefix="ray-"))

    @property
    def address(self) -> str:
        return f"127.0.0.2:{PORT}"

    @staticmethod
    def ip(index: int) -> str:
        return f"127.0.0.{index + 2}"

    def workdir(self, index: int) -> Path:
        return self.folder / f"node{index}" / "work"

    def _in_namespace(self, cmd: list[str]) -> list[str]:
        assert self.holder is not None
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *cmd]

    def __enter__(self) -> ClusterNodes:
        why = namespace_available()
        if why is not None:
            pytest.skip(why)
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 86400"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None and self.holder.stdout.readline().strip() == "up"
        try:
            for index in range(self.count):
                self._start_node(index)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_node(self, index: int) -> None:
        node_dir = self.folder / f"node{index}"
        self.workdir(index).mkdir(parents=True)
        role = (
            ["--head", f"--port={PORT}", "--include-dashboard=false"] if index == 0 else [f"--address={self.address}"]
        )
        cmd = [
            RAY, "start", "--block", *role,
            f"--node-ip-address={self.ip(index)}", "--num-cpus=1", "--object-store-memory=80000000",
            f"--temp-dir={self.ray_root / str(index)}", "--disable-usage-stats",
        ]  # fmt: skip
        log = node_dir / "ray-start.log"
        env = {**self.env, "RESPIRO_QUEUE_DIR": str(self.workdir(index))}
        with log.open("wb") as out:
            self.nodes.append(subprocess.Popen(self._in_namespace(cmd), stdout=out, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if self.nodes[-1].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ray node {index} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    def command(self, cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run `cmd` in the namespace (a driver that reaches the cluster)."""
        return subprocess.run(
            self._in_namespace(cmd), cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def popen(self, cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
        """Start `cmd` in the namespace, its output (both streams) readable line by line."""
        return subprocess.Popen(
            self._in_namespace(cmd), cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def kill_node(self, index: int) -> None:
        """The node's machine dies: every process of it at once (SIGKILL), no goodbye to the head."""
        _kill_tree(self.nodes[index].pid, signal.SIGKILL)

    def __exit__(self, *exc: object) -> None:
        for node in reversed(self.nodes):  # workers first, the head last, as `ray stop` would
            if node.poll() is None:
                node.terminate()  # `ray start --block` stops its node's processes on SIGTERM
                try:
                    node.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            _kill_tree(node.pid, signal.SIGKILL)
        if self.holder is not None:
            _kill_tree(self.holder.pid, signal.SIGKILL)
            self.holder.wait()
        shutil.rmtree(self.ray_root, ignore_errors=True)


def _kill_tree(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to `pid` and all its descendants (processes we started, by their ids)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)
