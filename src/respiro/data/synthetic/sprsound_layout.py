"""The synthetic corpus in SPRSound's layout (respiro.data.databases.sprsound): the ICBHI-format
corpus's plan and audio (plan.py, render.py), its (crackles, wheezes) cycles written as
SPRSound's event types, in SPRSound's file names, folders and JSON, with the real files' quirks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from respiro.core.config import SyntheticParams
from respiro.data.databases.sprsound import PARTS, POOR_QUALITY
from respiro.data.synthetic.corpus import check_empty_folder
from respiro.data.synthetic.plan import AUDIO_STREAM, plan_corpus
from respiro.data.synthetic.render import render_recording

_CRACKLES = ("Fine Crackle", "Coarse Crackle")
_WHEEZES = ("Wheeze", "Rhonchi", "Stridor")


def _event_type(crackle: int, wheeze: int, k: int) -> str:
    if crackle and wheeze:
        return "Wheeze+Crackle"
    if crackle:
        return _CRACKLES[k % len(_CRACKLES)]
    if wheeze:
        return _WHEEZES[k % len(_WHEEZES)]
    return "Normal"


def _record_label(types: list[str]) -> str:
    cas = any(t in _WHEEZES or t == "Wheeze+Crackle" for t in types)
    das = any(t in _CRACKLES or t == "Wheeze+Crackle" for t in types)
    return {(False, False): "Normal", (True, False): "CAS", (False, True): "DAS", (True, True): "CAS & DAS"}[(cas, das)]


def write_synthetic_sprsound(out_dir: Path, config: SyntheticParams, progress: bool = True) -> None:
    """The synthetic corpus of `config` in SPRSound's layout, into the empty folder `out_dir`.

    Parts: the plan's test patients are test_inter; of every train patient with two or more
    recordings, the last is test_intra. Every 12th recording is labelled Poor Quality. Times
    are digit strings in ms, and every other recording lists its events last to first, as
    the real files do. The same config gives byte-identical files.
    """
    check_empty_folder(out_dir)
    plan = plan_corpus(config)
    patients = {p.pid: p for p in plan.patients}
    last_train = {r.patient: r.number for r in plan.recordings if r.split == "train"}
    train_count = {p: sum(1 for r in plan.recordings if r.patient == p and r.split == "train") for p in last_train}
    for folder in {f for pair in PARTS.values() for f in pair}:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    for recording in tqdm(plan.recordings, desc="synthetic corpus (SPRSound layout)", unit="rec", disable=not progress):
        part = "test_inter" if recording.split == "test" else "train"
        if (
            part == "train"
            and train_count[recording.patient] >= 2
            and last_train[recording.patient] == recording.number
        ):
            part = "test_intra"
        patient = patients[recording.patient]
        stem = (
            f"{41000000 + recording.patient}_{min(patient.age, 17.9):.1f}_{int(patient.sex == 'F')}"
            f"_p{1 + recording.number % 4}_{recording.number + 1}"
        )
        json_dir, wav_dir = PARTS[part]
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, AUDIO_STREAM, recording.number]))
        audio = render_recording(recording, patient, rng)
        sf.write(out_dir / wav_dir / f"{stem}.wav", audio, recording.rate, subtype=recording.subtype, format="WAV")
        events = [
            {
                "start": str(round(s * 1000)),
                "end": str(round(e * 1000)),
                "type": _event_type(c, w, recording.number + k),
            }
            for k, (s, e, c, w) in enumerate(recording.cycles)
        ]
        poor = recording.number % 12 == 11
        record = POOR_QUALITY if poor else _record_label([e["type"] for e in events])
        if poor:
            events = []
        if recording.number % 2:
            events.reverse()
        text = json.dumps({"record_annotation": record, "event_annotation": events})
        (out_dir / json_dir / f"{stem}.json").write_bytes(text.encode("ascii"))
