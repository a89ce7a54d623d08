"""Start-up of each audio stage: what a stage process costs before it does any work (not a test).

For each stage script, the best of --repeat wall times of `python -m stages.<name> --help`
(every import at the top of the script runs, then argparse prints and exits) against a
no-op `python -c pass`, and whether torch was imported (`python -X importtime`).

    python -m benchmarks.bench_startup                       # this checkout
    python -m benchmarks.bench_startup --root /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("download", "resample", "normalize", "segment", "stft")


def best_wall(cmd: list[str], root: Path, repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def imported(stage: str, root: Path) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import stages.{stage}"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    return {
        line.rsplit("|", 1)[1].strip() for line in err.splitlines() if line.startswith("import time:") and "|" in line
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    noop = best_wall([sys.executable, "-c", "pass"], args.root, args.repeat)
    print(f"no-op `python -c pass`: {noop:.2f} s (best of {args.repeat})\n")
    print("| stage | `--help` wall s | above no-op s | modules imported | torch |")
    print("|---|---:|---:|---:|---|")
    for stage in STAGES:
        wall = best_wall([sys.executable, "-m", f"stages.{stage}", "--help"], args.root, args.repeat)
        names = imported(stage, args.root)
        print(f"| {stage} | {wall:.2f} | {wall - noop:.2f} | {len(names)} | {'yes' if 'torch' in names else 'no'} |")


if __name__ == "__main__":
    main()
