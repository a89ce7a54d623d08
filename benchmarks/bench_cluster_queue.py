"""Four queued experiments: DVC's own queue on this machine against `respiro queue start` on a
two-node Ray cluster on the same machine (not a test).

In one run, side by side, each from the same finished tiny baseline (tests/test_cluster_queue.py's
CLUSTER_PARAMS: four real trainings that differ in train.seed):

- `dvc queue start --jobs 1` and `--jobs 2`, waited for with `dvc queue status`;
- `respiro queue start --cluster` on two one-CPU Ray nodes (tests/ray_nodes.py: a private
  network namespace, needs root), a bare git repository as the git remote and a folder as the
  DVC remote.

It prints the wall time of each and, from the driver's lines, the per-experiment overhead of
the cluster path (fetch on the node, push from it, pull back by the driver) beside the run
itself, then the machine (`lscpu` model, cores).

    python -m benchmarks.bench_cluster_queue [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tests.conftest import copy_project, make_project_copy, run
from tests.ray_nodes import ClusterNodes
from tests.test_cluster_queue import CLUSTER_PARAMS, DRIVER, SEEDS, user_project

STEP = re.compile(
    r"^queue: (\S+): pushed from .* in .* \(fetch (\d+) s, run (\d+) s, push (\d+) s, pull (\d+) s\)", re.M
)


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def dvc_queue(baseline: Path, folder: Path, jobs: int) -> float:
    project = copy_project(baseline, folder / "project")
    for name, seed in SEEDS.items():
        run(["dvc", "exp", "run", "--queue", "-q", "-n", name, "-S", f"train.seed={seed}"], project)
    start = time.perf_counter()
    run(["dvc", "queue", "start", "--jobs", str(jobs)], project)
    while True:
        status = run(["dvc", "queue", "status"], project).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(1)
    wall = time.perf_counter() - start
    done = status.count("Success")
    if done != len(SEEDS):
        raise SystemExit(f"dvc queue start --jobs {jobs}: {done} of {len(SEEDS)} succeeded:\n{status}")
    run(["dvc", "queue", "stop"], project, check=False)
    return wall


def ray_queue(baseline: Path, folder: Path) -> tuple[float, list[tuple[int, int, int, int]]]:
    project = user_project(baseline, folder, {name: f"train.seed={seed}" for name, seed in SEEDS.items()})
    with ClusterNodes(folder / "cluster", nodes=2) as cluster:
        start = time.perf_counter()
        result = cluster.command([*DRIVER, "--cluster", cluster.address], project)
        wall = time.perf_counter() - start
    output = result.stdout + result.stderr
    steps = [tuple(int(x) for x in found[1:]) for found in STEP.findall(output)]
    if result.returncode != 0 or len(steps) != len(SEEDS):
        raise SystemExit(f"respiro queue start failed:\n{output}")
    return wall, steps  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    baseline = make_project_copy(folder / "baseline", CLUSTER_PARAMS)
    run(["dvc", "repro"], baseline)
    run(["git", "add", "-A"], baseline)
    run(["git", "commit", "-q", "-m", "baseline"], baseline)

    rows = [
        (f"`dvc queue start --jobs {jobs}` (this machine)", dvc_queue(baseline, folder / f"jobs{jobs}", jobs))
        for jobs in (1, 2)
    ]
    wall, steps = ray_queue(baseline, folder / "ray")
    rows.append(("`respiro queue start --cluster` (two one-CPU Ray nodes)", wall))
    base = rows[0][1]
    print(f"{len(SEEDS)} experiments (train + evaluate each), {machine()}\n")
    print("| runner | wall s | per experiment s | x --jobs 1 |")
    print("|---|---:|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.0f} | {seconds / len(SEEDS):.1f} | {seconds / base:.2f} |")
    fetch, run_s, push, pull = (statistics.mean(s[i] for s in steps) for i in range(4))
    print("\nPer experiment on the cluster (means of the driver's lines):\n")
    print(
        "| fetch on the node | dvc exp run | push from the node | pull by the driver | overhead (fetch + push + pull) |"
    )
    print("|---:|---:|---:|---:|---:|")
    print(f"| {fetch:.1f} s | {run_s:.1f} s | {push:.1f} s | {pull:.1f} s | {fetch + push + pull:.1f} s |")


if __name__ == "__main__":
    main()
