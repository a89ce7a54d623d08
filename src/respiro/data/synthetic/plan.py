"""The plan of a synthetic corpus: patients, sessions, file names, devices, rates, sample
formats, levels, respiratory cycles with their labels, and the split, drawn from one random
stream (`PLAN_STREAM`) before any audio. Cheap, so tests can check the class mix of an
ICBHI-sized plan without rendering it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from respiro.core.config import SyntheticParams
from respiro.data.databases.icbhi import LABELS as ICBHI_LABELS
from respiro.data.icbhi import DEVICE_RATES, label_of
from respiro.data.synthetic.population import (
    DEVICE_LEVEL_DBFS,
    DIAGNOSES,
    HIFI_SUBTYPES,
    LOCATION_LOGIT,
    LOCATION_WEIGHTS,
    MEDITRON_10K_SHARE,
    MULTICHANNEL_SHARE,
    SPLIT_TRAIN_SHARE,
)

# Independent random streams of one seed: the plan, and one per rendered recording.
PLAN_STREAM = 0
AUDIO_STREAM = 1

# The database's size: about 6,900 cycles (the default params give about 1,100).
ICBHI_SCALE = SyntheticParams(seed=2017, patients=126, recordings=920, recording_seconds=21.5)


@dataclass(frozen=True)
class Patient:
    """One synthetic patient: metadata (demographic file) and the traits their sounds share."""

    pid: int
    diagnosis: str
    age: float  # years
    sex: str  # "M" or "F"
    bmi: float | None  # adults, kg/m^2
    weight: float | None  # children, kg
    height: float | None  # children, cm
    device: str  # the device most of their recordings use
    cycle_seconds: float  # median respiratory cycle length
    inspiration_share: float  # inspiration as a share of the cycle (COPD: short, long expiration)
    crackle_logit: float  # tendency to crackles (logit of the per-cycle probability)
    wheeze_logit: float
    fine_share: float  # share of fine crackles among their crackles
    crackles_per_cycle: float  # mean number of crackles in a crackle cycle
    wheeze_hz: float  # fundamental of their wheezes (the "voice" of their airways)
    event_db: float  # loudness of their adventitious sounds relative to their breath sound
    heart_bpm: float
    breath_corner_hz: float  # brightness of their vesicular sound (thin chest wall: brighter)


@dataclass(frozen=True)
class Recording:
    """One planned recording: file name parts, format, level, cycles and split side."""

    number: int  # position in the corpus (stem order); seeds the recording's audio stream
    patient: int
    index: str  # RecIdx, e.g. "1b1"
    location: str
    mode: str
    device: str
    rate: int  # Hz
    subtype: str  # soundfile subtype, PCM_16/24/32
    samples: int
    level_dbfs: float  # RMS level the audio is scaled to (lower if the peak would clip)
    cycles: tuple[tuple[float, float, int, int], ...]  # (start s, end s, crackle, wheeze)
    split: str  # "train" or "test"

    @property
    def stem(self) -> str:
        return f"{self.patient:03d}_{self.index}_{self.location}_{self.mode}_{self.device}"

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    @property
    def time_style(self) -> str:
        return _time_style(self.device)


@dataclass(frozen=True)
class CorpusPlan:
    patients: tuple[Patient, ...]
    recordings: tuple[Recording, ...]


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integer counts proportional to `weights` (largest remainder)."""
    exact = np.array(weights, dtype=float) / sum(weights) * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _stratified_normals(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` standard normal draws, one from each of `n` equal-probability strata, shuffled.

    Patient tendencies drawn this way spread over the whole distribution even for a few
    patients, so the corpus's class mix varies less from seed to seed than with plain draws.
    """
    normal = NormalDist()
    return np.array([normal.inv_cdf((k + rng.random()) / n) for k in rng.permutation(n)])


def _draw_patient(pid: int, diagnosis: str, tendency: tuple[float, float], rng: np.random.Generator) -> Patient:
    """A patient's metadata and traits; `tendency` is their (crackle, wheeze) standard score."""
    model = DIAGNOSES[diagnosis]
    low, high = model.ages
    if diagnosis == "COPD":
        age = float(np.clip(round(rng.normal(68.0, 9.0)), low, high))
    elif high < 18:
        # Children: infants' ages are written in years with two decimals (0.58, 0.75).
        age = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        age = round(age, 2) if age < 1 else float(round(age))
    else:
        age = float(round(rng.uniform(low, high)))
    child = age < 18
    sex = "M" if rng.random() < (0.65 if diagnosis == "COPD" else 0.5) else "F"
    bmi = weight = height = None
    if child:
        height = 50.0 + 25.0 * age if age < 1 else 75.0 + 6.0 * age + rng.normal(0, 5)
        weight = (height / 100.0) ** 2 * rng.normal(16.5, 1.5)
        if rng.random() < 0.06:  # the database misses some children's measurements
            height = weight = None
    elif rng.random() > 0.02:
        bmi = float(np.clip(rng.normal(27.0, 5.0), 16.0, 45.0))
    # Children breathe faster (infants ~40/min, 10-year-olds ~20/min); adults 15-25/min here
    # (patients breathe deeply for auscultation, ICBHI's cycles average 2.7 s).
    cycle = (1.6 + 0.1 * age if child else 2.8) * float(np.exp(rng.normal(0.0, 0.17)))
    # Brightness: children's thin chest walls pass more high frequency, obesity less.
    corner = (420.0 if child else 300.0 - 3.0 * ((bmi or 27.0) - 27.0)) * float(np.exp(rng.normal(0.0, 0.15)))
    heart = rng.uniform(85.0, 110.0) if child else rng.uniform(60.0, 100.0)
    return Patient(
        pid=pid,
        diagnosis=diagnosis,
        age=age,
        sex=sex,
        bmi=None if bmi is None else round(bmi, 2),
        weight=None if weight is None else round(float(weight), 1),
        height=None if height is None else float(round(height)),
        device=_pick(rng, model.devices),
        cycle_seconds=cycle,
        inspiration_share=rng.uniform(0.28, 0.36) if diagnosis in ("COPD", "Asthma") else rng.uniform(0.34, 0.42),
        crackle_logit=_logit(model.crackle) + 0.75 * tendency[0],
        wheeze_logit=_logit(model.wheeze) + 0.75 * tendency[1],
        fine_share=float(np.clip(model.fine + rng.normal(0.0, 0.2), 0.0, 1.0)),
        crackles_per_cycle=rng.uniform(3.0, 10.0),
        wheeze_hz=float(np.exp(rng.uniform(np.log(130.0), np.log(750.0)))),
        event_db=rng.normal(0.0, 3.0),
        heart_bpm=heart,
        breath_corner_hz=corner,
    )


def _time_style(device: str) -> str:
    """How an annotation writes seconds: the real Litt3200 files use 5 significant digits
    (`0.54469`), the others milliseconds without trailing zeros (`0.036`, `2.45`)."""
    return "sig5" if device == "Litt3200" else "ms"


def _quantize(seconds: float, style: str) -> float:
    """A time as the annotation file will write it, so that audio and text agree exactly."""
    return round(seconds, 3) if style == "ms" else float(f"{seconds:.5g}")


def _cycle_length(rng: np.random.Generator, median: float) -> float:
    """One cycle length (s): log-normal around the patient's median, with a few long ones
    (sighs, pauses, merged breaths) that give ICBHI's right-skewed tail past 8 s."""
    length = median * math.exp(rng.normal(0.0, 0.25))
    if rng.random() < 0.03:
        length *= rng.uniform(1.8, 3.5)
    return float(np.clip(length, 0.4, 10.0))


def _plan_cycles(rng: np.random.Generator, patient: Patient, seconds: float, style: str) -> list[tuple[float, float]]:
    """Consecutive cycles covering most of a recording of `seconds`: the first may start a
    little after 0, most follow the previous one directly, a few after a short gap; the last
    may be a partial breath cut by the end of the recording (>= 0.4 s), as annotators did,
    and always is when more than a typical breath is left."""
    t = 0.0 if rng.random() < 0.35 else _quantize(rng.uniform(0.02, 0.6), style)
    limit = seconds - rng.uniform(0.0, 0.3)
    cycles: list[tuple[float, float]] = []
    while True:
        length = _cycle_length(rng, patient.cycle_seconds)
        if t + length > limit:
            rest = limit - t
            if rest >= 0.4 and (not cycles or rest > patient.cycle_seconds or rng.random() < 0.6):
                cycles.append((t, _quantize(t + rest, style)))
            return cycles
        end = _quantize(t + length, style)
        cycles.append((t, end))
        t = end if rng.random() < 0.85 else _quantize(end + rng.uniform(0.02, 0.3), style)


def _sessions(rng: np.random.Generator, patient: Patient, count: int) -> list[tuple[str, str, list[str]]]:
    """Split a patient's `count` recordings into sessions: (device, mode, locations).

    A multichannel (mc) session records several locations at once, a sequential (sc) one
    one location or a few in turn; a patient uses their own device in most sessions.
    """
    sessions = []
    locations = list(LOCATION_WEIGHTS)
    weights = np.array([LOCATION_WEIGHTS[k] for k in locations], dtype=float)
    while count > 0:
        device = patient.device if rng.random() < 0.93 else _pick(rng, {d: 1.0 for d in DEVICE_RATES})
        mode = "mc" if rng.random() < MULTICHANNEL_SHARE[device] else "sc"
        size = min(count, int(rng.integers(2, 8)) if mode == "mc" else int(rng.choice((1, 1, 2, 3, 6))))
        chosen = rng.choice(len(locations), size=size, replace=False, p=weights / weights.sum())
        sessions.append((device, mode, sorted(locations[i] for i in chosen)))
        count -= size
    return sessions


def _recording_seconds(rng: np.random.Generator, mean: float) -> float:
    """Most recordings last exactly the mean (ICBHI's 20 s), the rest spread log-normally."""
    if rng.random() < 0.6:
        return mean
    return float(np.clip(mean * math.exp(rng.normal(-0.5 * 0.45**2, 0.45)), 5.0, 4.0 * mean))


def _split(rng: np.random.Generator, recordings: list[Recording]) -> dict[int, str]:
    """Patient-wise split, ~60/40 by recordings with the class mix alike on both sides.

    Patients, largest first (ties in random order), go one by one to the side that keeps
    train's share of recordings and of each class's cycles closest to 60 %: with few
    patients, a plain random split often leaves one side with almost no Both cycles.
    """
    counts: dict[int, np.ndarray] = {}
    for r in recordings:
        row = counts.setdefault(r.patient, np.zeros(1 + len(ICBHI_LABELS)))
        row[0] += 1
        for _, _, crackle, wheeze in r.cycles:
            row[1 + label_of(crackle, wheeze)] += 1
    totals = np.maximum(sum(counts.values()), 1.0)
    order = list(counts)
    rng.shuffle(order)
    order.sort(key=lambda pid: -counts[pid][0])
    train, done = np.zeros_like(totals), np.zeros_like(totals)
    sides: dict[int, str] = {}

    def miss(candidate: np.ndarray, done: np.ndarray) -> float:
        return float(np.sum(((candidate - SPLIT_TRAIN_SHARE * done) / totals) ** 2))

    for pid in order:
        done += counts[pid]
        side = "train" if miss(train + counts[pid], done) <= miss(train, done) else "test"
        if side == "train":
            train += counts[pid]
        sides[pid] = side
    return sides


def plan_corpus(config: SyntheticParams) -> CorpusPlan:
    """Everything about the corpus except the audio samples, from the seed's plan stream."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, PLAN_STREAM]))
    names = list(DIAGNOSES)
    diagnoses = [
        d for d, k in zip(names, _allocate(config.patients, [DIAGNOSES[d].patients for d in names])) for _ in range(k)
    ]
    rng.shuffle(diagnoses)
    # Tendencies to crackles and to wheezes per diagnosis, slightly anti-correlated: patients
    # lean to one picture ("crackler" or "wheezer") more than to both.
    tendencies: list[tuple[float, float]] = [(0.0, 0.0)] * len(diagnoses)
    for name in names:
        members = [i for i, d in enumerate(diagnoses) if d == name]
        crackle = _stratified_normals(rng, len(members))
        wheeze = -0.25 * crackle + math.sqrt(1 - 0.25**2) * _stratified_normals(rng, len(members))
        for i, c, w in zip(members, crackle, wheeze):
            tendencies[i] = (float(c), float(w))
    patients = [_draw_patient(101 + i, d, tendencies[i], rng) for i, d in enumerate(diagnoses)]

    weights = np.array([DIAGNOSES[p.diagnosis].recordings * math.exp(rng.normal(0.0, 0.5)) for p in patients])
    extra = rng.multinomial(config.recordings - config.patients, weights / weights.sum())
    counts = {p.pid: 1 + int(k) for p, k in zip(patients, extra)}

    recordings: list[Recording] = []
    for patient in patients:
        patient_level = rng.normal(0.0, 3.0)
        for number, (device, mode, locations) in enumerate(_sessions(rng, patient, counts[patient.pid]), start=1):
            index = f"{number}{'b' if rng.random() < 0.7 else 'p'}{int(rng.integers(1, 6))}"
            rate = DEVICE_RATES[device]
            if device == "Meditron" and rng.random() < MEDITRON_10K_SHARE:
                rate = 10000
            samples = int(round(_recording_seconds(rng, float(config.recording_seconds)) * rate))
            style = _time_style(device)
            # A multichannel session records the same breaths at every location at once.
            shared_spans = _plan_cycles(rng, patient, samples / rate, style) if mode == "mc" else None
            for location in locations:
                subtype = _pick(rng, HIFI_SUBTYPES) if rate == 44100 else "PCM_16"
                spans = shared_spans or _plan_cycles(rng, patient, samples / rate, style)
                # Recording effect: one location or session shows more or fewer abnormal cycles.
                crackle_bias, wheeze_bias = LOCATION_LOGIT[location]
                p_crackle = 1.0 / (1.0 + math.exp(-(patient.crackle_logit + crackle_bias + rng.normal(0.0, 0.8))))
                p_wheeze = 1.0 / (1.0 + math.exp(-(patient.wheeze_logit + wheeze_bias + rng.normal(0.0, 0.8))))
                cycles = tuple(
                    (start, end, int(rng.random() < p_crackle), int(rng.random() < p_wheeze)) for start, end in spans
                )
                level = DEVICE_LEVEL_DBFS[device] + patient_level + rng.normal(0.0, 4.0)
                recordings.append(
                    Recording(-1, patient.pid, index, location, mode, device, rate, subtype, samples, level, cycles, "")
                )
    sides = _split(rng, recordings)
    recordings.sort(key=lambda r: r.stem)  # numbered in file-name order, as the split file lists them
    numbered = (dataclasses.replace(r, number=i, split=sides[r.patient]) for i, r in enumerate(recordings))
    return CorpusPlan(patients=tuple(patients), recordings=tuple(numbered))
