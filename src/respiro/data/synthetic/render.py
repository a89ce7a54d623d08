"""Rendering one planned recording: breaths, crackles, wheezes, artefacts and noise at the
device's rate, from the recording's own random stream (the signal models are in sounds.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from respiro.data.synthetic import sounds
from respiro.data.synthetic.plan import Patient, Recording
from respiro.data.synthetic.population import UPSAMPLE
from respiro.data.synthetic.sounds import FloatArray


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
    upsample = UPSAMPLE.get(recording.rate, 1)
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
