"""`respiro queue start --cluster ADDRESS`: DVC's experiment queue run on a Ray cluster.

    dvc exp run --queue -S loss.gamma=1 -S loss.gamma=2      # queue as usual
    respiro queue start                                      # run them on a Ray cluster started here
    respiro queue start --cluster head.lab:6379              # ... on a running cluster (from one of its nodes)
    respiro queue start --cluster ray://head.lab:10001       # ... from outside it (Ray Client)
    dvc exp show                                             # each one is an ordinary experiment

Every node fetches its experiment's queued commit from the git remote (--git-remote, default
origin), pulls what it needs from the project's default DVC remote (or --dvc-remote), runs
`dvc exp run`, and pushes the result to both; the driver pulls each result back and removes its
queue entry. Every node needs this project installed (`pip install -r requirements.txt`), git,
and access to both remotes. A failed experiment stays queued; Ctrl-C cancels what runs, and
the next start resumes. docs/cluster.md says what to set up.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from respiro.core.cli import run_stage


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="respiro queue", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="start")
    start = actions.add_parser(
        "start",
        help="run the queued experiments on a Ray cluster",
        description="Run the experiments of `dvc exp run --queue` on a Ray cluster; see `respiro queue --help`.",
    )
    start.add_argument(
        "--cluster",
        default="local",
        metavar="ADDRESS",
        help="what ray.init accepts: HOST:PORT of a running cluster's head, ray://HOST:10001, auto "
        "(a cluster `ray start` runs on this machine), or local: a cluster started in this process (default)",
    )
    start.add_argument("--git-remote", default="origin", help="git remote every node fetches from (default origin)")
    start.add_argument("--dvc-remote", help="DVC remote every node pulls from and pushes to (default: the default one)")
    start.add_argument(
        "--retries", type=int, default=3, help="tries more for an experiment whose node or worker died (default 3)"
    )
    start.add_argument(
        "--cpus",
        type=int,
        default=1,
        help="CPUs each experiment asks Ray for, and the threads it trains with (default 1)",
    )
    start.add_argument("names", nargs="*", metavar="NAME", help="only these queued experiments (default: all)")
    args = parser.parse_args(argv)
    if args.retries < 0:
        start.error(f"--retries must be >= 0; got {args.retries}")
    if args.cpus < 1:
        start.error(f"--cpus must be >= 1; got {args.cpus}")
    from respiro.commands.cluster_run import Cluster, run_queue
    from respiro.commands.cluster_setup import ClusterError

    cluster = Cluster(args.cluster, args.cpus, args.retries)
    failed = run_queue(Path.cwd(), cluster, args.git_remote, args.dvc_remote, args.names or None)
    if failed:
        raise ClusterError(
            f"{len(failed)} experiments failed and stay queued: {', '.join(failed)}; "
            "fix the cause and run `respiro queue start` again (`dvc queue remove NAME` drops one)"
        )


def run(argv: list[str] | None = None) -> None:
    """`respiro queue ...`: expected errors and Ctrl-C end with one line."""
    run_stage("queue", lambda: main(argv), resume="respiro queue start (what finished is kept)")
