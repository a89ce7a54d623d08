"""Benchmark of the audio stages against a one-process librosa script (not a test).

Generates a synthetic corpus in the ICBHI format once (ICBHI scale by default: 126 patients,
920 recordings, 5.5 h), then, --repeats times, side by side, from that folder to
spectrograms:

  - the reference script (benchmarks/librosa_reference.py, one process; librosa, or the
    calls librosa makes where it is not installed: its summary line says which);
  - `dvc repro stft` in a fresh copy of the project with `data.source: local` pointing at
    the folder (download -> resample -> normalize -> segment -> stft, DVC's hashing and
    caching included);
  - a no-op `dvc repro stft` right after it, then `dvc repro -f stft` (every stage again,
    with DVC's hashes of the unchanged input already known, as in a second run);
  - md5 of every file of the folder on one thread: the least DVC's first hash of a new
    input folder costs with one hashing thread (`core.checksum_jobs`; .dvc/config sets 4);
  - DVC's first hash of the folder alone: `dvc status` in a new repository whose one stage
    depends on it, with 1 and with 4 hashing threads, and once more with its hashes known
    (DVC's own start);
  - the five stage scripts alone, without DVC, in that copy (`audio.workers` 0: every
    core; with --workers-one also 1), and each stage's start-up: `python -c "import
    stages.<name>"`, the process and the script's imports (`--help` answers before them);
  - with --baseline REF, `dvc repro stft` of the project as committed at REF (e.g. the
    commit before a change), in a fresh copy of its own.

Every row is the median of the repeats; "x reference" is the median of the per-repeat
ratios (each against the reference run beside it, so that load on a shared machine moves
both sides). The breakdown of `dvc repro` splits its wall time into the stages' own work
(the time their summary lines report), their start-up (process, imports, params: a stage's
wall time alone less its work) and DVC's own time (the rest: hashing, caching, locking,
its own start-up). Peak memory comes from one more, untimed run of each command, sampled
every 50 ms as the sum of the proportional set size (PSS) of every process of the command
(DVC, the stage, its workers), so shared pages count once: sampling slows a process that
faults in much memory (the reference's 2.4 GB most), so the timed runs never sample. The
largest single process's peak RSS (wait4) comes from the timed runs. "CPU" is the user and
system time of all the command's processes. The load average is printed per repeat.

    pip install -r benchmarks/requirements.txt
    python -m benchmarks.bench_audio --repeats 3                       # ICBHI scale
    python -m benchmarks.bench_audio --repeats 3 --baseline HEAD~1
    python -m benchmarks.bench_audio --patients 40 --recordings 160 --seconds 20   # default corpus

Target (issue 19): `dvc repro` download -> stft in at most the reference's time (ratio <=
1.0, DVC included; aim for 0.5), peak memory under 1 GB. `audio_rows()` returns the table's
rows (a list of dicts) for a combined benchmark run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from respiro.core.config import SyntheticParams
from respiro.data.synthetic.corpus import generate_corpus
from tests.conftest import DVC_ENV, make_project_copy, set_params

STAGES = ("download", "resample", "normalize", "segment", "stft")
# What DVC does at least once to a new input folder: md5 every file, on one thread.
MD5_OF_FOLDER = (
    "import hashlib, pathlib, sys\n"
    "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
    "    if p.is_file():\n"
    "        hashlib.md5(p.read_bytes()).hexdigest()\n"
)
SAMPLE_EVERY = 0.05  # seconds between memory samples


@dataclass
class Measured:
    wall: float  # seconds
    peak_mb: float  # peak of the summed PSS of the command's processes (0 unless sampled)
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


def measure(cmd: list[str], cwd: Path, sample_memory: bool = False) -> Measured:
    """Run `cmd` to its end; its wall time, CPU time, largest process's peak RSS and output
    (stdout and stderr), and with `sample_memory` the peak PSS of all its processes.

    Sampling reads every process's smaps every 50 ms, which slows a process that faults in
    much memory (the kernel walks its mappings under the lock page faults take): timed runs
    never sample, and the memory pass after them is not timed."""
    start = time.perf_counter()
    # A project copy runs its own code (the package may be installed from another checkout).
    env = {**DVC_ENV, "PYTHONPATH": str(cwd / "src")} if (cwd / "src" / "respiro").is_dir() else DVC_ENV
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    if sample_memory:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    if sample_memory:
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


def stage_seconds_all(output: str) -> list[float]:
    """The times of every stage summary line in `output` (one per stage `dvc repro` ran)."""
    return [float(t) for t in re.findall(r"^[a-z]+: .* in ([\d.]+) s$", output.replace("\r", "\n"), re.MULTILINE)]


def baseline_copy(ref: str, dest: Path, overrides: dict[str, dict]) -> Path:
    """A fresh git copy of the project as committed at `ref` (`git archive`), DVC ready."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    set_params(dest, overrides)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", f"project at {ref}"],
    ):
        subprocess.run(cmd, cwd=dest, env=DVC_ENV, check=True, capture_output=True)
    return dest


def dvc_status_of(folder: Path, repo: Path, jobs: int) -> tuple[Measured, Measured]:
    """`dvc status` twice in `repo`, a new repository (a path DVC has never seen, so its state
    holds no hashes) whose one stage depends on `folder`, hashing on `jobs` threads: DVC's
    start plus its first hash of the folder, then its start with the hashes known."""
    repo.mkdir()
    (repo / "dvc.yaml").write_text(f"stages:\n  probe:\n    cmd: 'true'\n    deps:\n      - {folder}\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.checksum_jobs", str(jobs)]):
        subprocess.run(cmd, cwd=repo, env=DVC_ENV, check=True, capture_output=True)
    first, again = measure(["dvc", "status"], repo), measure(["dvc", "status"], repo)
    shutil.rmtree(repo)
    return first, again


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def median(values: list[float]) -> float:
    return statistics.median(values)


def audio_rows(
    corpus: Path,
    scratch: Path,
    repeat: int = 1,
    baseline: str | None = None,
    audio_seconds: float = 0.0,
    workers_one: bool = False,
) -> list[dict]:
    """Measure everything side by side, `repeat` times; one dict per table row (medians).

    `corpus` is an ICBHI folder; `scratch` an empty folder for the project copies.
    """
    local = {"data": {"source": "local", "local_path": str(corpus)}}
    python = sys.executable
    runs: dict[str, list[Measured]] = {}
    ratios: dict[str, list[float]] = {}

    def keep(name: str, m: Measured, reference: Measured) -> None:
        runs.setdefault(name, []).append(m)
        ratios.setdefault(name, []).append(m.wall / reference.wall)

    reference_cmd = [python, str(ROOT / "benchmarks" / "librosa_reference.py")]
    # librosa compiles (numba) on its first run on a machine: warm it on two recordings.
    warm = scratch / "warm"
    warm.mkdir()
    for wav in sorted(corpus.glob("*.wav"))[:2]:
        for f in (wav, wav.with_suffix(".txt")):
            shutil.copy(f, warm / f.name)
    which = measure([*reference_cmd, str(warm), str(scratch / "warm-out")], ROOT).output.split(", ")[-2]

    breakdown: list[dict[str, float]] = []
    for run in range(repeat):
        print(f"repeat {run + 1} of {repeat}: load average {load_average()}", flush=True)
        ref = measure([*reference_cmd, str(corpus), str(scratch / "librosa-out")], ROOT)
        shutil.rmtree(scratch / "librosa-out")
        keep("librosa", ref, ref)
        project = make_project_copy(scratch / f"project-{run}", local)
        repro = measure(["dvc", "repro", "stft"], project)
        keep("dvc repro", repro, ref)
        apparent, on_disk = stored_bytes(corpus, project / "data", project / ".dvc" / "cache")
        keep("no-op dvc repro", measure(["dvc", "repro", "stft"], project), ref)
        # A second run on this clone: DVC knows the hashes of unchanged files (its state), so
        # the input is not hashed again, as when a researcher reruns the audio stages.
        keep("forced dvc repro", measure(["dvc", "repro", "-f", "stft"], project), ref)
        keep("md5 of the input", measure([python, "-c", MD5_OF_FOLDER, str(corpus)], ROOT), ref)
        for jobs in (1, 4):
            first, again = dvc_status_of(corpus, scratch / f"status-{run}-{jobs}", jobs)
            keep(f"first hash on {jobs}", first, ref)
        keep("dvc start", again, ref)
        for workers in (0, 1) if workers_one else (0,):
            set_params(project, {"audio": {"workers": workers}})
            alone = {stage: measure([python, "-m", f"stages.{stage}"], project) for stage in STAGES}
            for m in alone.values():
                m.work = stage_seconds(m.output)
            for stage, m in alone.items():
                keep(f"{stage} (workers {workers})", m, ref)
            total = Measured(
                sum(m.wall for m in alone.values()),
                max(m.peak_mb for m in alone.values()),
                max(m.largest_rss_mb for m in alone.values()),
                "",
                sum(m.cpu for m in alone.values()),
                sum(m.work for m in alone.values()),
            )
            keep(f"stage scripts (workers {workers})", total, ref)
            if workers == 0:
                startup = {stage: measure([python, "-c", f"import stages.{stage}"], project).wall for stage in STAGES}
                for stage in STAGES:
                    runs.setdefault(f"{stage} start-up", []).append(Measured(startup[stage], 0, 0, ""))
                work = sum(stage_seconds_all(repro.output))
                started = total.wall - total.work  # process start, imports, params, outside each stage's timer
                breakdown.append(
                    {
                        "dvc": repro.wall,
                        "work": work,
                        "startup": started,
                        "dvc_own": repro.wall - work - started,
                        "ref": ref.wall,
                    }
                )
        if baseline:
            old = baseline_copy(baseline, scratch / f"baseline-{run}", local)
            keep(f"dvc repro at {baseline}", measure(["dvc", "repro", "stft"], old), ref)
            shutil.rmtree(old)
        shutil.rmtree(project)
        print(
            f"  reference {ref.wall:.1f} s, dvc repro {repro.wall:.1f} s ({repro.wall / ref.wall:.2f}x); load average {load_average()}",
            flush=True,
        )

    # The memory pass: each command once more, its processes' PSS sampled (not timed).
    print("memory pass", flush=True)
    project = make_project_copy(scratch / "project-memory", local)
    peaks = {"librosa": measure([*reference_cmd, str(corpus), str(scratch / "librosa-out")], ROOT, True).peak_mb}
    shutil.rmtree(scratch / "librosa-out")
    peaks["dvc repro"] = measure(["dvc", "repro", "stft"], project, True).peak_mb
    peaks["no-op dvc repro"] = measure(["dvc", "repro", "stft"], project, True).peak_mb
    peaks["forced dvc repro"] = measure(["dvc", "repro", "-f", "stft"], project, True).peak_mb
    set_params(project, {"audio": {"workers": 0}})
    for stage in STAGES:
        peaks[f"{stage} (workers 0)"] = measure([python, "-m", f"stages.{stage}"], project, True).peak_mb
    peaks["stage scripts (workers 0)"] = max(peaks[f"{stage} (workers 0)"] for stage in STAGES)
    shutil.rmtree(project)

    cores = len(os.sched_getaffinity(0))
    labels = {
        "librosa": f"reference script, {which} (1 process)",
        "dvc repro": "`dvc repro stft`: download -> stft, DVC included",
        **({f"dvc repro at {baseline}": f"`dvc repro stft` of the project at {baseline}"} if baseline else {}),
        "stage scripts (workers 0)": f"stage scripts alone, download -> stft, {cores} workers",
        **{f"{s} (workers 0)": f"  {s}" for s in STAGES},
        **({"stage scripts (workers 1)": "stage scripts alone, download -> stft, 1 worker"} if workers_one else {}),
        "no-op dvc repro": "no-op `dvc repro stft` (all up to date)",
        "forced dvc repro": "`dvc repro -f stft` on the same clone: every stage again, DVC's hashes of unchanged files known",
        "md5 of the input": "md5 of every file of the input folder, one thread (the least DVC's first hash of it costs on one hashing thread)",
        "first hash on 1": "`dvc status`, a new repository depending on the folder, 1 hashing thread (DVC's default on 2 cores)",
        "first hash on 4": "the same with 4 hashing threads (`core.checksum_jobs`, as .dvc/config sets)",
        "dvc start": "the same again, the folder's hashes known: DVC's start and its state lookup",
    }
    rows = []
    for key, label in labels.items():
        ms = runs[key]
        wall = median([m.wall for m in ms])
        rows.append(
            {
                "what": label,
                "wall_s": round(wall, 2),
                "stage_work_s": round(median([m.work for m in ms]), 2) if ms[0].work is not None else None,
                "cpu_s": round(median([m.cpu for m in ms]), 2),
                "vs_librosa": round(median(ratios[key]), 2),
                "audio_s_per_s": round(audio_seconds / wall) if audio_seconds else None,
                "peak_mb": round(peaks[key]) if key in peaks else None,
                "largest_process_rss_mb": round(median([m.largest_rss_mb for m in ms])),
                "repeats": [round(m.wall, 2) for m in ms],
            }
        )
    parts = {k: median([b[k] for b in breakdown]) for k in ("dvc", "work", "startup", "dvc_own", "ref")}
    rows.append(
        {
            "breakdown": True,
            **{k: round(v, 2) for k, v in parts.items()},
            "startup_per_stage": {s: round(median([m.wall for m in runs[f"{s} start-up"]]), 2) for s in STAGES},
        }
    )
    rows.append(
        {
            "what": "stored on disk: corpus + data/ + DVC cache",
            "apparent_gb": round(apparent / 1e9, 2),
            "on_disk_gb": round(on_disk / 1e9, 2),
        }
    )
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "| what | wall s (median) | x reference (median) | stage work s | CPU s | audio s / s | peak MB (all processes) | largest process MB | wall s per repeat |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "wall_s" in r:
            speed = f"{r['audio_s_per_s']:,}" if r["audio_s_per_s"] else ""
            work = f"{r['stage_work_s']:.1f}" if r["stage_work_s"] is not None else ""
            each = ", ".join(f"{w:.1f}" for w in r["repeats"])
            peak = f"{r['peak_mb']:,}" if r["peak_mb"] is not None else ""
            print(
                f"| {r['what']} | {r['wall_s']:.1f} | {r['vs_librosa']:.2f} | {work} | {r['cpu_s']:.1f} | {speed} | {peak} | {r['largest_process_rss_mb']:,} | {each} |"
            )
    for r in rows:
        if r.get("breakdown"):
            print(f"\n`dvc repro stft`, {r['dvc']:.1f} s (medians of the repeats; reference {r['ref']:.1f} s):\n")
            print("| part | s | share |")
            print("|---|---:|---:|")
            for key, label in (
                ("work", "stages' own work (their summary lines, inside `dvc repro`)"),
                ("startup", "stage start-up (process, imports, params; the stages alone, wall less work)"),
                ("dvc_own", "DVC's own time (the rest: hashing, cache links, lock, its start-up)"),
            ):
                print(f"| {label} | {r[key]:.1f} | {r[key] / r['dvc']:.0%} |")
            print(
                "\nStart-up alone (process and imports), `python -c 'import stages.<name>'`: "
                + ", ".join(f"{s} {v:.2f} s" for s, v in r["startup_per_stage"].items())
            )
    for r in rows:
        if "on_disk_gb" in r:
            print(
                f"\n{r['what']}: {r['apparent_gb']} GB of files, {r['on_disk_gb']} GB on disk (hard links counted once)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=126)
    parser.add_argument("--recordings", type=int, default=920)
    parser.add_argument("--seconds", type=float, default=21.5, help="mean recording length")
    parser.add_argument("--corpus", type=Path, default=None, help="an ICBHI folder to use instead of generating one")
    parser.add_argument(
        "--repeats", "--repeat", type=int, default=3, help="runs of everything, side by side; the table gives medians"
    )
    parser.add_argument("--workers-one", action="store_true", help="also run the stage scripts with audio.workers 1")
    parser.add_argument("--baseline", default=None, help="also time `dvc repro stft` of the project at this git ref")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="folder for the corpus and project copies (default: a temporary one, removed)",
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-audio-", dir=args.scratch))
    try:
        corpus = args.corpus
        if corpus is None:
            corpus = scratch / "corpus"
            corpus.mkdir()
            config = SyntheticParams(
                seed=2017, patients=args.patients, recordings=args.recordings, recording_seconds=args.seconds
            )
            start = time.perf_counter()
            generate_corpus(corpus, config)
            print(f"corpus generated in {time.perf_counter() - start:.1f} s")
        import soundfile as sf

        audio_seconds = sum(sf.info(str(w)).duration for w in corpus.glob("*.wav"))
        rows = audio_rows(corpus.resolve(), scratch, args.repeats, args.baseline, audio_seconds, args.workers_one)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"corpus: {len(list(corpus.glob('*.wav'))) if args.corpus else args.recordings} recordings, {audio_seconds / 3600:.2f} h of audio"
    )
    print(
        f"machine: {cpu}, {len(os.sched_getaffinity(0))} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}; medians of {args.repeats} repeats\n"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
