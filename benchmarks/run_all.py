"""The project's benchmark table in one run (not a test): audio stages and training, side by side.

    pip install -r benchmarks/requirements.txt      # librosa, for the reference script
    python -m benchmarks.run_all                     # ICBHI-scale corpus, ~5 minutes on 2 cores
    python -m benchmarks.run_all --recordings 160 --patients 40 --seconds 20   # quicker

One process measures, one after the other on the same machine and corpus: the librosa
reference script against the audio stages (whole `dvc repro stft` with DVC's hashing and
caching, the stage scripts alone, a no-op `dvc repro`; benchmarks/bench_audio.py), then the
training step of ResNet-18/34 with and without CBAM in fp32 and bf16 (on CUDA too when
present; benchmarks/bench_train.py). Ratios are what to read: the machine may be shared.
The table is printed as Markdown, ready for the README's "Benchmarks" section.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from benchmarks.bench_audio import audio_rows  # noqa: E402
from benchmarks.bench_train import train_rows  # noqa: E402
from respiro.core.config import SyntheticParams
from respiro.data.synthetic.corpus import generate_corpus


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB{gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def table(audio: list[dict], training: list[dict], recordings: int, hours: float) -> str:
    lines = [
        "| part | what | wall s | vs reference | peak MB | throughput |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in audio:
        if "wall_s" not in r:
            continue
        speed = f"{r['audio_s_per_s']:,} audio s/s" if r.get("audio_s_per_s") else ""
        peak = f"{r['peak_mb']:,}" if r["peak_mb"] is not None else ""
        lines.append(
            f"| audio ({recordings} recordings, {hours:.1f} h) | {r['what']} | {r['wall_s']:.1f} | {r['vs_librosa']:.2f} x librosa | {peak} | {speed} |"
        )
    fp32 = {(r["model"], r["device"], r["step"]): r for r in training if r["precision"] == "fp32"}
    for r in training:
        ratio = ""
        if r["precision"] != "fp32":
            ratio = f"{r['cycles_per_s'] / fp32[(r['model'], r['device'], r['step'])]['cycles_per_s']:.2f} x fp32"
        step = f"{r['ms_per_step'] / 1000:.2f}"
        lines.append(
            f"| training step, batch 32 ({r['device']}, {r['step']}) | {r['model']}, {r['precision']} | {step} | {ratio} | | {r['cycles_per_s']:.1f} cycles/s |"
        )
    stored = next((r for r in audio if "on_disk_gb" in r), None)
    if stored:
        lines.append("")
        lines.append(
            f"{stored['what']}: {stored['apparent_gb']} GB of files, {stored['on_disk_gb']} GB on disk (links counted once)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=126)
    parser.add_argument("--recordings", type=int, default=920)
    parser.add_argument("--seconds", type=float, default=21.5, help="mean recording length of the synthetic corpus")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per row")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the audio part; the best wall time is kept")
    args = parser.parse_args()

    print(f"machine: {machine()}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-all-"))
    try:
        corpus = scratch / "corpus"
        corpus.mkdir()
        started = time.perf_counter()
        generate_corpus(
            corpus,
            SyntheticParams(
                seed=2017, patients=args.patients, recordings=args.recordings, recording_seconds=args.seconds
            ),
        )
        audio_seconds = sum(sf.info(str(w)).duration for w in corpus.glob("*.wav"))
        print(
            f"corpus: {args.recordings} recordings, {audio_seconds / 3600:.2f} h, generated in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        audio = audio_rows(corpus, scratch, args.repeat, None, audio_seconds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    training = train_rows(devices, batch=32, steps=args.steps, warmup=1)
    print()
    print(table(audio, training, args.recordings, audio_seconds / 3600))


if __name__ == "__main__":
    main()
