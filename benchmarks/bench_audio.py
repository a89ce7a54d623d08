"""Benchmark of the audio stages against a one-process librosa script (not a test).

Generates a synthetic corpus in the ICBHI format once (ICBHI scale by default: 126 patients,
920 recordings, 5.5 h), then, side by side in one run, from that folder to spectrograms:

  - the librosa reference script (benchmarks/librosa_reference.py, one process);
  - `dvc repro stft` in a fresh copy of the project with `data.source: local` pointing at
    the folder (download -> resample -> normalize -> segment -> stft, DVC's hashing and
    caching included);
  - a no-op `dvc repro stft` right after it;
  - the five stage scripts alone, without DVC, with `audio.workers` 0 (every core) and 1;
  - with --baseline REF, `dvc repro stft` of the project as committed at REF (e.g. the
    commit before a change), in a fresh copy of its own.

Wall times are the best of --repeat runs (the machine is shared: the best run is the one
least disturbed). Peak memory is sampled every 50 ms as the sum of the proportional set size
(PSS) of every process of the command (DVC, the stage, its workers), so shared pages count
once; the largest single process's peak RSS is given too. "Stage work" is the time the
stages' own summary lines report: the wall time less Python's and torch's start-up. "CPU"
is the user and system time of all the command's processes: wall time well under CPU time
is the worker pool using several cores at once.

    pip install -r benchmarks/requirements.txt
    python benchmarks/bench_audio.py                          # ICBHI scale
    python benchmarks/bench_audio.py --repeat 2 --baseline HEAD~1
    python benchmarks/bench_audio.py --patients 40 --recordings 160 --seconds 20   # default corpus

Target (issue 12): `dvc repro` from the folder to spectrograms in at most half the librosa
script's time, peak memory under 1 GB. `audio_rows()` returns the table's rows (a list of
dicts) for a combined benchmark run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from respiro.data.synthetic.corpus import SyntheticParams, generate_corpus
from tests.conftest import DVC_ENV, make_project_copy, set_params  # noqa: E402

STAGES = ("download", "resample", "normalize", "segment", "stft")
SAMPLE_EVERY = 0.05  # seconds between memory samples


@dataclass
class Measured:
    wall: float  # seconds
    peak_mb: float  # peak of the summed PSS of the command's processes
    largest_rss_mb: float  # peak RSS of its largest process (wait4's ru_maxrss)
    output: str
    cpu: float = 0.0  # user + system CPU seconds of all its processes
    work: float | None = None  # what a stage's own summary line says it took (no start-up)


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process now running."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the ppid follows its ')'.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def _tree_pss_kb(pid: int) -> int:
    """Summed PSS in kB of `pid` and all its descendants (0 for those already gone)."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(tree.get(p, []))
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def measure(cmd: list[str], cwd: Path) -> Measured:
    """Run `cmd` to its end; its wall time, peak memory and output (stdout and stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=DVC_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))
    reader.start()
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_pss_kb(proc.pid))
            done.wait(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    reader.join()
    output = "".join(chunks)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{output[-3000:]}")
    return Measured(wall, peak / 1024, usage.ru_maxrss / 1024, output, usage.ru_utime + usage.ru_stime)


def stage_seconds(output: str) -> float:
    """The time in a stage's summary line (`<stage>: ... in 4.2 s`): its work, without the
    Python and torch start-up before it."""
    times = re.findall(r"^[a-z]+: .* in ([\d.]+) s$", output.replace("\r", "\n"), re.MULTILINE)
    return float(times[-1])


def baseline_copy(ref: str, dest: Path, overrides: dict[str, dict]) -> Path:
    """A fresh git copy of the project as committed at `ref` (`git archive`), DVC ready."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    set_params(dest, overrides)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", f"project at {ref}"]):
        subprocess.run(cmd, cwd=dest, env=DVC_ENV, check=True, capture_output=True)
    return dest


def stored_bytes(*folders: Path) -> tuple[int, int]:
    """(bytes of every file in `folders`, bytes on disk counting each hard-linked file once)."""
    apparent, inodes = 0, {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                apparent += st.st_size
                inodes[(st.st_dev, st.st_ino)] = st.st_size
    return apparent, sum(inodes.values())


def audio_rows(corpus: Path, scratch: Path, repeat: int = 1, baseline: str | None = None, audio_seconds: float = 0.0) -> list[dict]:
    """Measure everything side by side; one dict per table row (best wall time of `repeat`).

    `corpus` is an ICBHI folder; `scratch` an empty folder for the project copies.
    """
    local = {"data": {"source": "local", "local_path": str(corpus)}}
    python = sys.executable
    best: dict[str, Measured] = {}

    def keep(name: str, m: Measured) -> None:
        if name not in best or m.wall < best[name].wall:
            best[name] = m

    # librosa compiles (numba) on its first run on a machine: warm it on two recordings.
    warm = scratch / "warm"
    warm.mkdir()
    for wav in sorted(corpus.glob("*.wav"))[:2]:
        for f in (wav, wav.with_suffix(".txt")):
            shutil.copy(f, warm / f.name)
    measure([python, str(ROOT / "benchmarks" / "librosa_reference.py"), str(warm), str(scratch / "warm-out")], ROOT)

    for run in range(repeat):
        keep("librosa", measure([python, str(ROOT / "benchmarks" / "librosa_reference.py"), str(corpus), str(scratch / "librosa-out")], ROOT))
        shutil.rmtree(scratch / "librosa-out")
        project = make_project_copy(scratch / f"project-{run}", local)
        keep("dvc repro", measure(["dvc", "repro", "stft"], project))
        keep("no-op dvc repro", measure(["dvc", "repro", "stft"], project))
        apparent, on_disk = stored_bytes(corpus, project / "data", project / ".dvc" / "cache")
        for workers in (0, 1):
            set_params(project, {"audio": {"workers": workers}})
            runs = {stage: measure([python, "-m", f"stages.{stage}"], project) for stage in STAGES}
            for m in runs.values():
                m.work = stage_seconds(m.output)
            for stage, m in runs.items():
                keep(f"{stage} (workers {workers})", m)
            total = Measured(
                sum(m.wall for m in runs.values()),
                max(m.peak_mb for m in runs.values()),
                max(m.largest_rss_mb for m in runs.values()),
                "",
                sum(m.cpu for m in runs.values()),
                sum(m.work for m in runs.values()),
            )
            keep(f"stage scripts (workers {workers})", total)
        if baseline:
            old = baseline_copy(baseline, scratch / f"baseline-{run}", local)
            keep(f"dvc repro at {baseline}", measure(["dvc", "repro", "stft"], old))
            shutil.rmtree(old)
        shutil.rmtree(project)

    cores = len(os.sched_getaffinity(0))
    librosa_wall = best["librosa"].wall
    labels = {
        "librosa": "librosa reference script (1 process)",
        "dvc repro": "`dvc repro stft`: download -> stft, DVC included",
        **({f"dvc repro at {baseline}": f"`dvc repro stft` of the project at {baseline}"} if baseline else {}),
        "stage scripts (workers 0)": f"stage scripts alone, download -> stft, {cores} workers",
        **{f"{s} (workers 0)": f"  {s}" for s in STAGES},
        "stage scripts (workers 1)": "stage scripts alone, download -> stft, 1 worker",
        "no-op dvc repro": "no-op `dvc repro stft` (all up to date)",
    }
    rows = []
    for key, label in labels.items():
        m = best[key]
        rows.append(
            {
                "what": label,
                "wall_s": round(m.wall, 2),
                "stage_work_s": round(m.work, 2) if m.work is not None else None,
                "cpu_s": round(m.cpu, 2),
                "vs_librosa": round(m.wall / librosa_wall, 2),
                "audio_s_per_s": round(audio_seconds / m.wall) if audio_seconds else None,
                "peak_mb": round(m.peak_mb),
                "largest_process_rss_mb": round(m.largest_rss_mb),
            }
        )
    rows.append({"what": "stored on disk: corpus + data/ + DVC cache", "apparent_gb": round(apparent / 1e9, 2), "on_disk_gb": round(on_disk / 1e9, 2)})
    return rows


def print_table(rows: list[dict]) -> None:
    print("| what | wall s | x librosa | stage work s | CPU s | audio s / s | peak MB (all processes) | largest process MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "wall_s" in r:
            speed = f"{r['audio_s_per_s']:,}" if r["audio_s_per_s"] else ""
            work = f"{r['stage_work_s']:.1f}" if r["stage_work_s"] is not None else ""
            print(
                f"| {r['what']} | {r['wall_s']:.1f} | {r['vs_librosa']:.2f} | {work} | {r['cpu_s']:.1f} | {speed} | {r['peak_mb']:,} | {r['largest_process_rss_mb']:,} |"
            )
    for r in rows:
        if "on_disk_gb" in r:
            print(f"\n{r['what']}: {r['apparent_gb']} GB of files, {r['on_disk_gb']} GB on disk (hard links counted once)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=126)
    parser.add_argument("--recordings", type=int, default=920)
    parser.add_argument("--seconds", type=float, default=21.5, help="mean recording length")
    parser.add_argument("--corpus", type=Path, default=None, help="an ICBHI folder to use instead of generating one")
    parser.add_argument("--repeat", type=int, default=1, help="runs of everything; the best wall time is kept")
    parser.add_argument("--baseline", default=None, help="also time `dvc repro stft` of the project at this git ref")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the corpus and project copies (default: a temporary one, removed)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-audio-", dir=args.scratch))
    try:
        corpus = args.corpus
        if corpus is None:
            corpus = scratch / "corpus"
            corpus.mkdir()
            config = SyntheticParams(seed=2017, patients=args.patients, recordings=args.recordings, recording_seconds=args.seconds)
            start = time.perf_counter()
            generate_corpus(corpus, config)
            print(f"corpus generated in {time.perf_counter() - start:.1f} s")
        import soundfile as sf

        audio_seconds = sum(sf.info(str(w)).duration for w in corpus.glob("*.wav"))
        rows = audio_rows(corpus.resolve(), scratch, args.repeat, args.baseline, audio_seconds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    print(f"corpus: {len(list(corpus.glob('*.wav'))) if args.corpus else args.recordings} recordings, {audio_seconds / 3600:.2f} h of audio")
    print(f"machine: {cpu}, {len(os.sched_getaffinity(0))} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}; best of {args.repeat}\n")
    print_table(rows)


if __name__ == "__main__":
    main()
