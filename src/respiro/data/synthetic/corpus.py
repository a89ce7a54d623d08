"""A synthetic corpus in the ICBHI 2017 file format, written: `generate_corpus` plans it
(plan.py), renders each recording from its own random stream, seeded by (seed, recording
number), and writes it with its annotation and the database's metadata files, so the bytes
of a file do not depend on the order in which recordings are made.

The numbers follow the real database where it is documented (920 recordings of 126
patients, diagnoses, devices and rates, cycle lengths, class mix); where it is not, they are
the usual clinical picture (population.py), with patient and recording effects so that the
task is learnable but not trivial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from respiro.core.config import SyntheticParams
from respiro.core.errors import MissingInputError
from respiro.data.icbhi import DEMOGRAPHIC_FILE, DIAGNOSIS_FILE, SPLIT_FILE
from respiro.data.synthetic.plan import AUDIO_STREAM, CorpusPlan, Recording, plan_corpus
from respiro.data.synthetic.render import render_recording


def _seconds_text(seconds: float, style: str) -> str:
    """`0.036`, `2.45`, `3` (ms style) or `0.54469`, `8.2502` (5 significant digits)."""
    if style == "ms":
        return f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{seconds:.5g}"


def _annotation_text(recording: Recording) -> str:
    style = recording.time_style
    return "".join(
        f"{_seconds_text(s, style)}\t{_seconds_text(e, style)}\t{c}\t{w}\n" for s, e, c, w in recording.cycles
    )


def _number_text(value: float | None) -> str:
    return "NA" if value is None else f"{value:g}"


def _metadata_texts(plan: CorpusPlan) -> dict[str, str]:
    """The split, diagnosis and demographic files, in the byte layout of the real ones: the
    split and diagnosis files tab-separated with LF and no final newline; the demographic file
    space-separated with CRLF, starting with an empty line, NA for missing values."""
    split = "\n".join(f"{r.stem}\t{r.split}" for r in sorted(plan.recordings, key=lambda r: r.stem))
    diagnosis = "\n".join(f"{p.pid}\t{p.diagnosis}" for p in plan.patients)
    demographic = "\r\n" + "\r\n".join(
        " ".join(
            (
                str(p.pid),
                _number_text(p.age),
                p.sex,
                _number_text(p.bmi),
                _number_text(p.weight),
                _number_text(p.height),
            )
        )
        for p in plan.patients
    )
    return {SPLIT_FILE: split, DIAGNOSIS_FILE: diagnosis, DEMOGRAPHIC_FILE: demographic}


def check_empty_folder(out_dir: Path) -> None:
    """A corpus is written into an existing, empty folder (the download stage's temporary one)."""
    if not out_dir.is_dir():
        raise MissingInputError(f"{out_dir}: output folder does not exist")
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: output folder is not empty")


def generate_corpus(out_dir: Path, config: SyntheticParams, progress: bool = True) -> None:
    """Write a synthetic ICBHI corpus into the existing, empty folder `out_dir`.

    One `PID_RecIdx_Location_Mode_Device.wav` (mono, the device's rate and a PCM subtype) and
    `.txt` annotation per recording, plus the split, diagnosis and demographic files. One
    recording is rendered and written at a time (memory stays at one recording's worth). The
    same config gives byte-identical files.
    """
    out_dir = Path(out_dir)
    check_empty_folder(out_dir)
    plan = plan_corpus(config)
    patients = {p.pid: p for p in plan.patients}
    for recording in tqdm(plan.recordings, desc="synthetic corpus", unit="rec", disable=not progress):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, AUDIO_STREAM, recording.number]))
        audio = render_recording(recording, patients[recording.patient], rng)
        sf.write(out_dir / f"{recording.stem}.wav", audio, recording.rate, subtype=recording.subtype, format="WAV")
        (out_dir / f"{recording.stem}.txt").write_bytes(_annotation_text(recording).encode("ascii"))
    for name, text in _metadata_texts(plan).items():
        (out_dir / name).write_bytes(text.encode("ascii"))
