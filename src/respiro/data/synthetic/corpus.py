"""A synthetic corpus in the ICBHI 2017 file format: the plan of patients and recordings, and the writer.

Generation has two steps. `plan_corpus` decides everything that is not audio (patients and
their traits, sessions, file names, devices, rates, sample formats, levels, respiratory cycles
and their labels, the split) from one random stream; it is cheap, so tests can check the
class mix of an ICBHI-sized plan without rendering it. `generate_corpus` then renders each
recording from its own random stream, seeded by (seed, recording number), and writes it with
its annotation: the bytes of a file do not depend on the order in which recordings are made.

The numbers follow the real database where it is documented (920 recordings of 126
patients, diagnoses, devices and rates, cycle lengths, class mix); where it is not, they are
the usual clinical picture, with patient and recording effects so that the task is learnable
but not trivial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from respiro.core.config import CLASS_NAMES, SyntheticParams
from respiro.core.errors import MissingInputError
from respiro.data.icbhi import DEMOGRAPHIC_FILE, DEVICE_RATES, DIAGNOSIS_FILE, LOCATIONS, SPLIT_FILE, label_of
from respiro.data.synthetic import sounds
from respiro.data.synthetic.sounds import FloatArray

# Independent random streams of one seed: the plan, and one per rendered recording.
_PLAN_STREAM = 0
_AUDIO_STREAM = 1


# The database's size: about 6,900 cycles (the default params give about 1,100).
ICBHI_SCALE = SyntheticParams(seed=2017, patients=126, recordings=920, recording_seconds=21.5)


# --- the clinical picture -------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """How patients with one diagnosis look and sound.

    `patients` is the count in ICBHI (the draw's weight); `recordings` the relative number of
    recordings per patient (ICBHI's COPD patients have ~12, the others ~2: 86 % of its
    recordings are COPD); `crackle` and `wheeze` the typical per-cycle probabilities of
    those sounds; `fine` the share of fine crackles; `devices` the weights of the device
    a patient is mostly recorded with.
    """

    patients: int
    ages: tuple[float, float]
    recordings: float
    crackle: float
    wheeze: float
    fine: float
    devices: dict[str, float]


_ADULT_DEVICES = {"AKGC417L": 0.55, "Litt3200": 0.12, "LittC2SE": 0.13, "Meditron": 0.20}
_CHILD_DEVICES = {"Meditron": 0.60, "AKGC417L": 0.25, "LittC2SE": 0.15}

DIAGNOSES: dict[str, Diagnosis] = {
    # COPD: coarse early-inspiratory crackles and expiratory wheezes, many recordings each.
    "COPD": Diagnosis(64, (45.0, 93.0), 12.0, 0.34, 0.165, 0.2, _ADULT_DEVICES),
    "Healthy": Diagnosis(26, (0.25, 16.0), 1.4, 0.04, 0.03, 0.5, _CHILD_DEVICES),
    "URTI": Diagnosis(14, (0.6, 16.0), 1.6, 0.12, 0.08, 0.5, _CHILD_DEVICES),
    # Bronchiectasis: abundant coarse crackles (secretions in dilated airways).
    "Bronchiectasis": Diagnosis(
        7, (19.0, 75.0), 2.3, 0.65, 0.10, 0.1, {"Meditron": 0.5, "AKGC417L": 0.3, "LittC2SE": 0.2}
    ),
    # Bronchiolitis (infants): fine crackles and wheezes together.
    "Bronchiolitis": Diagnosis(6, (0.5, 3.0), 2.2, 0.40, 0.40, 0.8, _CHILD_DEVICES),
    # Pneumonia: fine (later coarse) inspiratory crackles over the consolidation.
    "Pneumonia": Diagnosis(6, (4.0, 81.0), 6.0, 0.55, 0.10, 0.7, {"LittC2SE": 0.6, "Meditron": 0.2, "AKGC417L": 0.2}),
    "LRTI": Diagnosis(2, (0.5, 4.0), 1.0, 0.35, 0.12, 0.5, _CHILD_DEVICES),
    # Asthma: wheezes, few crackles.
    "Asthma": Diagnosis(1, (20.0, 70.0), 1.0, 0.05, 0.55, 0.5, {"LittC2SE": 0.5, "AKGC417L": 0.5}),
}

# Sampling rate and sample formats per device, as in the database: 44.1 kHz files are mostly
# 24 and 32 bit with some 16 bit; 4 kHz (and the few 10 kHz Meditron) files are 16 bit.
# The nominal rates are src.icbhi.DEVICE_RATES; a few Meditron files are 10 kHz.
_HIFI_SUBTYPES = {"PCM_24": 0.45, "PCM_32": 0.35, "PCM_16": 0.20}
MEDITRON_10K_SHARE = 0.05
# Share of sessions recorded in multichannel mode (several chest locations at once): the
# AKG C417L rig was the multichannel one; some LittC2SE sessions too; the rest sequential.
_MULTICHANNEL_SHARE = {"AKGC417L": 0.9, "LittC2SE": 0.4, "Litt3200": 0.0, "Meditron": 0.0}
# Typical recorded RMS level (dBFS) per device: spread over >20 dB with the recording and
# patient effects, so that volume normalisation has work to do.
_DEVICE_LEVEL_DBFS = {"AKGC417L": -33.0, "LittC2SE": -27.0, "Litt3200": -19.0, "Meditron": -24.0}
# Chest locations weighted like the database's (Ar, Al most, Ll least).
_LOCATION_WEIGHTS = dict(zip(LOCATIONS, (130, 162, 168, 139, 132, 77, 112)))  # Tc Al Ar Pl Pr Ll Lr
# Crackles arise in small airways and alveoli, most at the lung bases (posterior and lateral)
# and hardly reach the trachea; wheezes transmit well along the airways to the trachea.
# Logit offsets (crackle, wheeze) per location.
_LOCATION_LOGIT = {
    "Tc": (-0.7, 0.3),
    "Al": (-0.2, 0.0),
    "Ar": (-0.2, 0.0),
    "Pl": (0.3, 0.0),
    "Pr": (0.3, 0.0),
    "Ll": (0.2, -0.1),
    "Lr": (0.2, -0.1),
}
_SPLIT_TRAIN_SHARE = 0.6  # of recordings, patient-wise, as the official split
_UPSAMPLE = {44100: 5}  # output rate -> synthesis at rate / factor (see render_recording)


# --- the plan -------------------------------------------------------------------------------


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
    locations = list(_LOCATION_WEIGHTS)
    weights = np.array([_LOCATION_WEIGHTS[k] for k in locations], dtype=float)
    while count > 0:
        device = patient.device if rng.random() < 0.93 else _pick(rng, {d: 1.0 for d in DEVICE_RATES})
        mode = "mc" if rng.random() < _MULTICHANNEL_SHARE[device] else "sc"
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
        row = counts.setdefault(r.patient, np.zeros(1 + len(CLASS_NAMES)))
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
        return float(np.sum(((candidate - _SPLIT_TRAIN_SHARE * done) / totals) ** 2))

    for pid in order:
        done += counts[pid]
        side = "train" if miss(train + counts[pid], done) <= miss(train, done) else "test"
        if side == "train":
            train += counts[pid]
        sides[pid] = side
    return sides


def plan_corpus(config: SyntheticParams) -> CorpusPlan:
    """Everything about the corpus except the audio samples, from the seed's plan stream."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _PLAN_STREAM]))
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
                subtype = _pick(rng, _HIFI_SUBTYPES) if rate == 44100 else "PCM_16"
                spans = shared_spans or _plan_cycles(rng, patient, samples / rate, style)
                # Recording effect: one location or session shows more or fewer abnormal cycles.
                crackle_bias, wheeze_bias = _LOCATION_LOGIT[location]
                p_crackle = 1.0 / (1.0 + math.exp(-(patient.crackle_logit + crackle_bias + rng.normal(0.0, 0.8))))
                p_wheeze = 1.0 / (1.0 + math.exp(-(patient.wheeze_logit + wheeze_bias + rng.normal(0.0, 0.8))))
                cycles = tuple(
                    (start, end, int(rng.random() < p_crackle), int(rng.random() < p_wheeze)) for start, end in spans
                )
                level = _DEVICE_LEVEL_DBFS[device] + patient_level + rng.normal(0.0, 4.0)
                recordings.append(
                    Recording(-1, patient.pid, index, location, mode, device, rate, subtype, samples, level, cycles, "")
                )
    sides = _split(rng, recordings)
    recordings.sort(key=lambda r: r.stem)  # numbered in file-name order, as the split file lists them
    numbered = (dataclasses.replace(r, number=i, split=sides[r.patient]) for i, r in enumerate(recordings))
    return CorpusPlan(patients=tuple(patients), recordings=tuple(numbered))


# --- rendering one recording ----------------------------------------------------------------


class _Breath(NamedTuple):
    """One rendered breath: its labels, depth (linear loudness) and its two phases."""

    crackle: int
    wheeze: int
    depth: float
    inspiration: sounds.BreathPhase
    expiration: sounds.BreathPhase
    end: float  # end of the annotated cycle (s): no event of this breath may sound after it


def _add(signal: np.ndarray, at_seconds: float, rate: int, wave: np.ndarray) -> None:
    """Add `wave` into `signal` starting at `at_seconds`, clipped to the signal's extent."""
    first = int(round(at_seconds * rate))
    lo, hi = max(first, 0), min(first + wave.size, signal.size)
    if hi > lo:
        signal[lo:hi] += wave[lo - first : hi - first]


def _breaths(recording: Recording, patient: Patient, rng: np.random.Generator) -> list[_Breath]:
    """The breaths of a recording: one per annotated cycle, plus one before the first and one
    after the last (breathing goes on outside the annotations; those carry no events).

    Inspiration starts at the cycle's start and takes the patient's share of it; expiration
    follows after a short pause. Vesicular: inspiration full and louder, expiration a soft
    decrescendo; tracheal (Tc): both phases loud and similar, separated by a clear pause.
    """
    tracheal = recording.location == "Tc"
    cycles = list(recording.cycles)
    median = patient.cycle_seconds
    spans = [(cycles[0][0] - median, cycles[0][0], 0, 0), *cycles, (cycles[-1][1], cycles[-1][1] + median, 0, 0)]
    breaths = []
    for start, end, crackle, wheeze in spans:
        length = end - start
        depth = math.exp(rng.normal(0.0, 0.15))  # breath-to-breath depth varies
        onset = start + length * rng.uniform(0.0, 0.04)
        t_in = length * patient.inspiration_share * rng.uniform(0.9, 1.1)
        pause = length * (rng.uniform(0.04, 0.08) if tracheal else rng.uniform(0.0, 0.03))
        t_ex = min(length * rng.uniform(0.45, 0.58), end - onset - t_in - pause)
        exp_peak, exp_rise, exp_fall = (0.85, 0.6, 0.7) if tracheal else (rng.uniform(0.3, 0.55), 0.35, 1.6)
        inspiration = sounds.BreathPhase(onset, t_in, depth, 0.9, 0.5)
        expiration = sounds.BreathPhase(onset + t_in + pause, t_ex, depth * exp_peak, exp_rise, exp_fall)
        breaths.append(_Breath(crackle, wheeze, depth, inspiration, expiration, end))
    return breaths


def _artefacts(n: int, rate: int, rng: np.random.Generator, recording: Recording, patient: Patient) -> FloatArray:
    """Everything but the lungs, `(n,)` at `rate`, relative to a breath of depth 1: heart sounds
    (loudest over the heart, left anterior; faint at the back and trachea), room noise, and in
    some recordings clicks, friction and 50 Hz mains hum (recorded in Portugal and Greece)."""
    heart_level = {"Al": 0.8, "Ll": 0.5, "Ar": 0.4}.get(recording.location, 0.2) * math.exp(rng.normal(0.0, 0.5))
    out = heart_level * sounds.heart_sounds(n, rate, rng, patient.heart_bpm * rng.uniform(0.95, 1.05))
    out += 10.0 ** (rng.uniform(-32.0, -16.0) / 20.0) * sounds.ambient_noise(n, rate, rng, rng.uniform(-6.0, -3.0))
    if rng.random() < 0.35:
        out += rng.uniform(0.5, 2.0) * sounds.clicks(n, rate, rng, rng.uniform(0.02, 0.3))
    if rng.random() < 0.25:
        out += rng.uniform(0.3, 1.2) * sounds.friction_bursts(n, rate, rng, rng.uniform(0.03, 0.2))
    if rng.random() < 0.12:
        out += 10.0 ** (rng.uniform(-30.0, -14.0) / 20.0) * sounds.mains_hum(n, rate, rng, 50.0)
    return out


def render_recording(recording: Recording, patient: Patient, rng: np.random.Generator) -> FloatArray:
    """The audio of one planned recording, `(recording.samples,)` float32 at `recording.rate`.

    Breath sound (vesicular, tracheal at Tc) shaped by each cycle's inspiration and
    expiration; crackles in the cycles labelled crackle (mostly in inspiration: the airways
    that closed at the end of expiration snap open as the lung inflates — early in
    inspiration for coarse crackles, late for fine ones); a wheeze in those labelled wheeze
    (mostly in expiration, when the airways narrow under dynamic compression); heart sounds
    and artefacts; then the device's colouring and self-noise, and the recording's level.
    Labels and audio agree: a Normal cycle has no crackle or wheeze.
    """
    # Every source lies below ~4 kHz, so a 44.1 kHz recording is synthesised at a fifth of its
    # rate (8820 Hz) and brought to 44.1 kHz by the device stage; only self-noise is wider.
    upsample = _UPSAMPLE.get(recording.rate, 1)
    rate = recording.rate // upsample
    n = -(-recording.samples // upsample)  # ceil
    breaths = _breaths(recording, patient, rng)

    # Inspiration is a little brighter than expiration (higher flow, more turbulence).
    tracheal = recording.location == "Tc"
    corner = (
        900.0 * math.exp(rng.normal(0.0, 0.2))
        if tracheal
        else patient.breath_corner_hz * math.exp(rng.normal(0.0, 0.1))
    )
    audio = sounds.shaped_noise(n, rate, rng, sounds.breath_response(corner * 1.15))
    audio *= sounds.phase_envelope(n, rate, [b.inspiration for b in breaths])
    expiration = sounds.shaped_noise(n, rate, rng, sounds.breath_response(corner * 0.85))
    audio += expiration * sounds.phase_envelope(n, rate, [b.expiration for b in breaths])
    del expiration

    for breath in breaths:
        if breath.crackle:
            _add_crackles(audio, rate, rng, patient, breath)
        if breath.wheeze:
            _add_wheeze(audio, rate, rng, patient, breath)
    audio += _artefacts(n, rate, rng, recording, patient)

    audio = sounds.device_recording(audio, rate, rng, sounds.DEVICES[recording.device], upsample, recording.samples)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    gain = 10.0 ** (recording.level_dbfs / 20.0) / max(rms, 1e-12)
    peak = float(np.max(np.abs(audio))) * gain
    if peak > 0.95:  # never clip: a loud recording with a big click is scaled down instead
        gain *= 0.95 / peak
    return (audio * gain).astype(np.float32)


def _event_level(rng: np.random.Generator, patient: Patient, depth: float, offset_db: float) -> float:
    """Amplitude of an adventitious sound relative to the breath: the patient's loudness, a
    per-cycle spread, and one event in six faint (10-18 dB down), which keeps the task hard."""
    level_db = offset_db + patient.event_db + rng.normal(0.0, 3.0)
    if rng.random() < 1 / 6:
        level_db -= rng.uniform(10.0, 18.0)
    return depth * 10.0 ** (level_db / 20.0)


def _add_crackles(audio: np.ndarray, rate: int, rng: np.random.Generator, patient: Patient, breath: _Breath) -> None:
    """Add a cycle's crackles (at least two): fine ones in late inspiration, coarse ones in
    early inspiration and some in expiration, each with its own amplitude around the cycle's."""
    count = 2 + rng.poisson(patient.crackles_per_cycle - 1.0)
    level = _event_level(rng, patient, breath.depth, 14.0)
    for _ in range(count):
        fine = rng.random() < patient.fine_share
        inspiration, expiration = breath.inspiration, breath.expiration
        if fine:
            at = inspiration.start + inspiration.duration * rng.beta(5.0, 2.0)
        elif rng.random() < 0.75:
            at = inspiration.start + inspiration.duration * rng.beta(2.0, 4.0)
        else:
            at = expiration.start + expiration.duration * rng.beta(1.5, 4.0)
        wave = level * math.exp(rng.normal(0.0, 0.35)) * sounds.crackle(rate, rng, fine)
        _add(audio, min(at, breath.end - wave.size / rate), rate, wave)


def _add_wheeze(audio: np.ndarray, rate: int, rng: np.random.Generator, patient: Patient, breath: _Breath) -> None:
    """Add a cycle's wheeze: expiratory mostly (75 %), else inspiratory, lasting 0.1 s to most
    of its phase, at the patient's pitch (±15 %), sometimes with a second, non-harmonic tone
    (polyphonic wheeze, typical of COPD)."""
    chosen = breath.expiration if rng.random() < 0.75 else breath.inspiration
    start, phase = chosen.start, chosen.duration
    duration = min(max(phase * rng.uniform(0.35, 0.95), 0.12), max(phase, 0.12))
    at = start + rng.uniform(0.0, max(phase - duration, 0.0))
    level = _event_level(rng, patient, breath.depth, -3.0)
    f0 = float(np.clip(patient.wheeze_hz * math.exp(rng.normal(0.0, 0.15)), 100.0, 1000.0))
    harmonics = (1.0, rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.25))
    tone = sounds.wheeze(rate, rng, duration, f0, rng.uniform(-0.25, 0.1), harmonics)
    if rng.random() < 0.25:
        second = sounds.wheeze(rate, rng, duration, f0 * rng.uniform(1.25, 1.7), rng.uniform(-0.2, 0.1), (1.0, 0.2))
        tone = tone + rng.uniform(0.4, 0.9) * second
    _add(audio, min(at, breath.end - tone.size / rate), rate, level * tone)


# --- writing --------------------------------------------------------------------------------


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


def generate_corpus(out_dir: Path, config: SyntheticParams, progress: bool = True) -> None:
    """Write a synthetic ICBHI corpus into the existing, empty folder `out_dir`.

    One `PID_RecIdx_Location_Mode_Device.wav` (mono, the device's rate and a PCM subtype) and
    `.txt` annotation per recording, plus the split, diagnosis and demographic files. One
    recording is rendered and written at a time (memory stays at one recording's worth). The
    same config gives byte-identical files.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise MissingInputError(f"{out_dir}: output folder does not exist")
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: output folder is not empty")
    plan = plan_corpus(config)
    patients = {p.pid: p for p in plan.patients}
    for recording in tqdm(plan.recordings, desc="synthetic corpus", unit="rec", disable=not progress):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, _AUDIO_STREAM, recording.number]))
        audio = render_recording(recording, patients[recording.patient], rng)
        sf.write(out_dir / f"{recording.stem}.wav", audio, recording.rate, subtype=recording.subtype, format="WAV")
        (out_dir / f"{recording.stem}.txt").write_bytes(_annotation_text(recording).encode("ascii"))
    for name, text in _metadata_texts(plan).items():
        (out_dir / name).write_bytes(text.encode("ascii"))
