"""Benchmark of the audio stages on an ICBHI-scale synthetic corpus (not a test).

Runs the real stage scripts (download -> resample -> normalize -> segment -> stft) in a
scratch copy of the project and prints, per stage, wall time, throughput in seconds of
audio per second, and peak resident memory of the stage's process.

    python benchmarks/bench_audio.py                 # ICBHI scale: 126 patients, 920 recordings
    python benchmarks/bench_audio.py --patients 40 --recordings 160 --seconds 20   # the default corpus

Target (issue 2): resample -> stft under 2 minutes on 2 cores, peak memory under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["download", "resample", "normalize", "segment", "stft"]


def run_stage(workdir: Path, stage: str) -> tuple[float, float, str]:
    """Run one stage script; returns (wall seconds, peak RSS in MB, its summary line)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"stage {stage} failed:\n{out}")
    summary = next((line for line in out.splitlines() if line.startswith(f"{stage}: ")), "")
    return wall, usage.ru_maxrss / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=126)
    parser.add_argument("--recordings", type=int, default=920)
    parser.add_argument("--seconds", type=float, default=21.5, help="mean recording length")
    parser.add_argument("--hop", type=int, default=None, help="stft.hop_length (default: params.yaml)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-audio-"))
    for part in ("src", "stages"):
        shutil.copytree(ROOT / part, workdir / part, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["synthetic"].update(patients=args.patients, recordings=args.recordings, recording_seconds=args.seconds)
    if args.hop:
        params["stft"]["hop_length"] = args.hop
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    rows = []
    try:
        for stage in STAGES:
            rows.append((stage, *run_stage(workdir, stage)))
        raw = json.loads((workdir / "metrics" / "raw.json").read_text())
        audio_seconds = float(raw["audio_seconds"])
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    print(f"corpus: {args.patients} patients, {args.recordings} recordings, {audio_seconds / 3600:.2f} h of audio; hop {params['stft']['hop_length']}")
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| stage | wall s | audio s / s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for stage, wall, rss, _ in rows:
        print(f"| {stage} | {wall:.1f} | {audio_seconds / wall:,.0f} | {rss:,.0f} |")
    audio = [r for r in rows if r[0] != "download"]
    wall = sum(r[1] for r in audio)
    print(f"| resample -> stft | {wall:.1f} | {audio_seconds / wall:,.0f} | {max(r[2] for r in audio):,.0f} |")
    print()
    for row in rows:
        print(row[3])


if __name__ == "__main__":
    main()
