"""Sources of a synthetic lung-sound recording: breath, crackles, wheezes, heart, noise, device.

Every function is pure: randomness comes from the `numpy.random.Generator` passed in, and each
returns a new float32 array. Conventions: a signal is a 1-D array `(time,)` sampled at `rate`
(samples per second); times and durations are in seconds, frequencies in Hz, levels in dB.
Filters are applied in the FFT domain (numpy only), as zero-phase magnitude responses.

The acoustics follow the usual textbook description of auscultation (e.g. Pasterkamp et al.,
"Respiratory sounds: advances beyond the stethoscope", AJRCCM 1997; CORSA guidelines):
- normal (vesicular) breath sound is band-limited noise, strong below ~300-500 Hz and falling
  steeply above; louder during inspiration (active, turbulent flow towards the periphery) than
  expiration, of which only the first part is audible. Tracheal sound is brighter (energy to
  1 kHz and beyond) with inspiration and expiration of similar loudness;
- crackles are explosive transients (sudden airway opening): a sharp initial deflection and a
  few damped oscillations whose period lengthens. Fine crackles are short (two-cycle duration
  ~5 ms) and high-pitched, coarse crackles longer (~10-25 ms) and lower;
- wheezes are continuous, musical sounds (a vibrating narrowed airway): a fundamental of
  100-1000 Hz lasting 100 ms or more, often with harmonics and a slow pitch glide;
- heart sounds S1/S2 are low-frequency (20-150 Hz) thumps at the heart rate, unrelated to the
  breathing; stethoscope friction, clicks, room noise and mains hum are the usual artefacts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.fft import next_fast_len

FloatArray = npt.NDArray[np.float32]
Response = Callable[[np.ndarray], np.ndarray]  # frequencies (Hz) -> linear magnitude, same shape


# --- FFT-domain filtering -------------------------------------------------------------------


def _frequencies(m: int, rate: int) -> np.ndarray:
    """Bin frequencies (Hz, float32) of a real FFT of length `m` at `rate`."""
    return np.fft.rfftfreq(m, 1.0 / rate).astype(np.float32)


def highpass(freqs: np.ndarray, corner_hz: float, order: int) -> np.ndarray:
    """Butterworth high-pass magnitude `1 / sqrt(1 + (fc/f)^(2 order))` at `freqs` (Hz)."""
    ratio = np.float32(corner_hz) / np.maximum(freqs, np.float32(1e-3))
    return 1.0 / np.sqrt(1.0 + ratio ** (2 * order))


def lowpass(freqs: np.ndarray, corner_hz: float, order: int) -> np.ndarray:
    """Butterworth low-pass magnitude `1 / sqrt(1 + (f/fc)^(2 order))` at `freqs` (Hz)."""
    return 1.0 / np.sqrt(1.0 + (freqs / np.float32(corner_hz)) ** (2 * order))


def resonance(freqs: np.ndarray, centre_hz: float, gain_db: float, width_octaves: float) -> np.ndarray:
    """A smooth peak (or dip, gain_db < 0): log-frequency Gaussian bump of `gain_db` at its centre."""
    octaves = np.log2(np.maximum(freqs, np.float32(1e-3)) / np.float32(centre_hz))
    return np.float32(10.0) ** (np.float32(gain_db / 20.0) * np.exp(-0.5 * (octaves / np.float32(width_octaves)) ** 2))


def _gaussian_spectrum(bins: int, rng: np.random.Generator) -> np.ndarray:
    """`bins` complex Gaussian values (real and imaginary parts N(0, 1)), complex64."""
    spectrum = np.empty(bins, dtype=np.complex64)
    spectrum.real = rng.standard_normal(bins, dtype=np.float32)
    spectrum.imag = rng.standard_normal(bins, dtype=np.float32)
    return spectrum


def shaped_noise(n: int, rate: int, rng: np.random.Generator, response: Response) -> FloatArray:
    """Gaussian noise of `n` samples whose magnitude spectrum follows `response`, unit RMS.

    Drawn directly in the frequency domain (complex Gaussian bins times the response), which
    costs one inverse FFT. Returns `(n,)` float32.
    """
    m = next_fast_len(n, real=True)  # 5-smooth (2^a 3^b 5^c): fast for numpy's FFT too
    freqs = _frequencies(m, rate)
    spectrum = _gaussian_spectrum(freqs.size, rng)
    spectrum *= response(freqs).astype(np.float32)
    noise = np.fft.irfft(spectrum, m)[:n]
    return (noise / max(float(np.sqrt(np.mean(np.square(noise, dtype=np.float64)))), 1e-12)).astype(np.float32)


# --- breath sounds --------------------------------------------------------------------------


def breath_response(corner_hz: float, rolloff_order: int = 3, low_hz: float = 90.0) -> Response:
    """Magnitude response of breath noise at the chest: flat from `low_hz` to `corner_hz`.

    Below ~100 Hz breath sound is masked by heart and muscle and falls off (a 2nd-order
    high-pass at `low_hz`); above `corner_hz` the lung parenchyma and chest wall filter it
    (a low-pass of `rolloff_order`, i.e. 6 * order dB per octave). Vesicular sound has its
    corner near 200-400 Hz, tracheal sound near 700-1200 Hz.
    """

    def response(freqs: np.ndarray) -> np.ndarray:
        return highpass(freqs, low_hz, 2) * lowpass(freqs, corner_hz, rolloff_order)

    return response


@dataclass(frozen=True)
class BreathPhase:
    """One inspiration or expiration: where it starts, how long it lasts, how loud it peaks.

    `rise` and `fall` shape its loudness as `u^rise (1-u)^fall` over the phase (`u` in 0..1,
    scaled to a peak of `peak`): a late, full inspiratory peak is `rise` > `fall`; the
    decrescendo of vesicular expiration is a small `rise` and a large `fall`.
    """

    start: float  # seconds from the start of the recording
    duration: float  # seconds
    peak: float  # linear amplitude of the envelope's maximum
    rise: float
    fall: float


def phase_envelope(n: int, rate: int, phases: Sequence[BreathPhase]) -> FloatArray:
    """Loudness envelope `(n,)` of a sequence of breath phases (zero between them), float32."""
    envelope = np.zeros(n, dtype=np.float32)
    for phase in phases:
        first = max(int(round(phase.start * rate)), 0)
        last = min(int(round((phase.start + phase.duration) * rate)), n)
        if last <= first:
            continue
        u = (np.arange(first, last, dtype=np.float32) / rate - phase.start) / phase.duration
        u = np.clip(u, 0.0, 1.0)
        shape = u**phase.rise * (1.0 - u) ** phase.fall
        top = (phase.rise / (phase.rise + phase.fall)) ** phase.rise * (
            phase.fall / (phase.rise + phase.fall)
        ) ** phase.fall
        envelope[first:last] += (phase.peak / top) * shape
    return envelope


# --- adventitious sounds --------------------------------------------------------------------


def crackle(rate: int, rng: np.random.Generator, fine: bool) -> FloatArray:
    """One crackle: a sharp initial deflection, then a damped oscillation whose period lengthens.

    The initial deflection (the explosive opening of a closed airway) is the first half-period
    of an oscillation whose instantaneous frequency then falls exponentially to 45-65 % of
    its start, the lengthening period of real crackle waveforms. Fine crackles
    (late-inspiratory; fibrosis, pneumonia, bronchiolitis): initial deflection width (IDW)
    0.3-0.7 ms, 3-8 ms long, energy mostly at 300-1000 Hz. Coarse crackles (bronchiectasis,
    COPD): IDW 0.9-2 ms, 10-25 ms, energy mostly at 100-350 Hz.
    The envelope peaks within the first deflection and decays exponentially. Polarity is
    random. Returns `(samples,)` float32 with peak |x| = 1.
    """
    if fine:
        idw, duration = rng.uniform(0.0003, 0.0007), rng.uniform(0.003, 0.008)
    else:
        idw, duration = rng.uniform(0.0009, 0.002), rng.uniform(0.010, 0.025)
    n = max(int(round(duration * rate)), 2)
    t = np.arange(n, dtype=np.float64) / rate
    f_start = 0.5 / idw
    f_end = f_start * rng.uniform(0.45, 0.65)
    frequency = f_end + (f_start - f_end) * np.exp(-t / (duration / 2.5))
    phase = 2.0 * np.pi * (np.cumsum(frequency) - frequency[0]) / rate
    decay = np.exp(-t / (duration / 4.0))  # ~ -35 dB at the end of the event
    wave = np.sin(phase) * decay
    wave *= rng.choice((-1.0, 1.0)) / np.max(np.abs(wave))
    return wave.astype(np.float32)


def wheeze(
    rate: int,
    rng: np.random.Generator,
    duration: float,
    f0_hz: float,
    glide: float,
    harmonics: Sequence[float],
) -> FloatArray:
    """A wheeze: a tonal sound with harmonics, a pitch glide, slight vibrato and jitter.

    `f0_hz` is the starting fundamental (100-1000 Hz), `glide` the relative change of pitch
    over the wheeze (e.g. -0.2 falls by 20 %, as the airway opens at the end of expiration),
    `harmonics` the amplitudes of partials 1, 2, ... (partials above 0.45 * rate are left
    out). Amplitude fades in and out over 25-60 ms and swells with the airflow in between.
    Returns `(round(duration * rate),)` float32; the partials are scaled to unit total
    power (a pure tone peaks at 1).
    """
    n = max(int(round(duration * rate)), 2)
    t = np.arange(n, dtype=np.float64) / rate
    vibrato = 0.01 * rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * rng.uniform(3.0, 8.0) * t + rng.uniform(0, 2 * np.pi))
    # Jitter: a slow random walk of pitch (~1 %), smoothed so the line stays narrow.
    steps = max(n // max(rate // 50, 1), 2)
    walk = np.interp(t, np.linspace(0, t[-1], steps), np.cumsum(rng.normal(0.0, 0.004, steps)))
    frequency = f0_hz * (1.0 + glide * t / duration) * (1.0 + vibrato + walk)
    phase = 2.0 * np.pi * np.cumsum(frequency) / rate
    wave = np.zeros(n, dtype=np.float64)
    for k, amplitude in enumerate(harmonics, start=1):
        if np.max(frequency) * k < 0.45 * rate:
            wave += amplitude * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    fade = min(rng.uniform(0.025, 0.06), duration / 3)
    ramp = np.clip(np.minimum(t, t[-1] - t) / fade, 0.0, 1.0)
    swell = 0.6 + 0.4 * np.sin(np.pi * t / t[-1])  # loudness follows the airflow through the phase
    wave *= (0.5 - 0.5 * np.cos(np.pi * ramp)) * swell  # raised-cosine fade in and out
    norm = np.sqrt(np.sum(np.square(harmonics)))
    return (wave / norm).astype(np.float32)


# --- heart sounds ---------------------------------------------------------------------------


def _thump(rate: int, rng: np.random.Generator, low_hz: float, high_hz: float, duration: float) -> np.ndarray:
    """A heart-sound component: a few cycles of a low-frequency damped sinusoid (peak 1)."""
    t = np.arange(int(round(duration * rate)), dtype=np.float64) / rate
    f = rng.uniform(low_hz, high_hz)
    envelope = (t / (duration / 5)) ** 2 * np.exp(-t / (duration / 5) * 2)  # gamma-like: smooth onset
    wave = envelope * np.sin(2 * np.pi * f * t)
    return wave / max(np.max(np.abs(wave)), 1e-12)


def heart_sounds(n: int, rate: int, rng: np.random.Generator, bpm: float) -> FloatArray:
    """S1 and S2 at `bpm` beats per minute for `n` samples; `(n,)` float32, peak about 1.

    S1 (mitral/tricuspid closure, 25-60 Hz, ~100 ms) on each beat and S2 (aortic/pulmonary
    closure, 50-110 Hz, ~70 ms, a little weaker) one systole later; systole shortens as the
    rate rises (~0.42 s at 60 bpm). Beat intervals vary by ~3 % (heart-rate variability).
    The first beat falls anywhere in the first period: the heart does not wait for a breath.
    """
    period = 60.0 / bpm
    out = np.zeros(n, dtype=np.float64)
    beat = rng.uniform(-period, 0.0)
    end = n / rate
    while beat < end:
        systole = max(0.42 - 0.0017 * (bpm - 60.0), 0.25)
        for onset, low, high, length, level in (
            (beat, 25.0, 60.0, 0.10, 1.0),
            (beat + systole, 50.0, 110.0, 0.07, 0.7),
        ):
            wave = level * rng.uniform(0.8, 1.1) * _thump(rate, rng, low, high, length)
            first = int(round(onset * rate))
            lo, hi = max(first, 0), min(first + wave.size, n)
            if hi > lo:
                out[lo:hi] += wave[lo - first : hi - first]
        beat += period * (1.0 + rng.normal(0.0, 0.03))
    return out.astype(np.float32)


# --- background -----------------------------------------------------------------------------


def ambient_noise(n: int, rate: int, rng: np.random.Generator, tilt_db_per_octave: float) -> FloatArray:
    """Room and body noise: Gaussian noise with a spectral tilt (-3 pink, -6 brown), unit RMS.

    Flat below 30 Hz so the tilt does not explode at DC. Returns `(n,)` float32.
    """

    def response(freqs: np.ndarray) -> np.ndarray:
        return (np.maximum(freqs, 30.0) / 30.0) ** (tilt_db_per_octave / 6.02) * highpass(freqs, 15.0, 2)

    return shaped_noise(n, rate, rng, response)


def friction_bursts(n: int, rate: int, rng: np.random.Generator, per_second: float) -> FloatArray:
    """Chest-piece friction: bursts of broadband, rapidly fluctuating noise, 50-300 ms each.

    Bursts arrive as a Poisson process of `per_second`; each is noise above ~150 Hz, chopped by
    a random amplitude pattern at ~20-60 Hz (skin rubbing is a train of micro-slips). Returns
    `(n,)` float32, bursts of RMS about 1, zero elsewhere.
    """
    out = np.zeros(n, dtype=np.float32)
    count = rng.poisson(per_second * n / rate)
    if count == 0:
        return out
    noise = shaped_noise(n, rate, rng, lambda f: highpass(f, 150.0, 2) * lowpass(f, 2500.0, 2))
    for _ in range(count):
        length = int(rng.uniform(0.05, 0.3) * rate)
        first = int(rng.integers(0, max(n - length, 1)))
        t = np.arange(length) / rate
        chop = np.abs(np.sin(2 * np.pi * rng.uniform(20.0, 60.0) * t + rng.uniform(0, np.pi))) ** 2
        window = np.sin(np.pi * np.arange(length) / length)
        segment = slice(first, first + length)
        out[segment] += (noise[segment] * chop[: out[segment].size] * window[: out[segment].size] * 2.3).astype(
            np.float32
        )
    return out


def clicks(n: int, rate: int, rng: np.random.Generator, per_second: float) -> FloatArray:
    """Isolated clicks (tapping, cable or contact artefacts): sub-millisecond broadband pulses.

    Poisson arrivals at `per_second`, each a ~0.3 ms pulse with a brief high-frequency ring,
    random polarity and level in 0.5-1. Unlike crackles they are not tied to the breathing
    phase and carry no lengthening oscillation, but in a spectrogram both are vertical lines:
    they make a normal cycle look a little like a crackle, as in real recordings.
    Returns `(n,)` float32, peak <= 1.
    """
    out = np.zeros(n, dtype=np.float32)
    width = max(int(round(0.0003 * rate)), 1)
    ring_hz = min(2500.0, 0.4 * rate)
    t = np.arange(width * 6) / rate
    for _ in range(rng.poisson(per_second * n / rate)):
        first = int(rng.integers(0, max(n - t.size, 1)))
        pulse = np.exp(-t / (width / rate)) * np.cos(2 * np.pi * ring_hz * t)
        pulse *= rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0)
        out[first : first + t.size] += pulse[: out[first : first + t.size].size].astype(np.float32)
    return out


def mains_hum(n: int, rate: int, rng: np.random.Generator, mains_hz: float) -> FloatArray:
    """Mains interference: `mains_hz` (50 or 60) and its odd harmonics up to 5, peak about 1."""
    t = np.arange(n, dtype=np.float64) / rate
    wave = np.zeros(n)
    for k, a in ((1, 1.0), (3, 0.4), (5, 0.2)):
        wave += a * np.sin(2 * np.pi * k * mains_hz * t + rng.uniform(0, 2 * np.pi))
    return (wave / 1.6).astype(np.float32)


# --- devices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """How one recording device colours sound: a magnitude response and self-noise.

    The response is a high-pass, a low-pass, a steep (8th-order) band edge where the device's
    bandwidth ends, and smooth resonances; `self_noise_db` is the level of the device's own
    (white) noise relative to the signal RMS, added before its filters.
    """

    highpass_hz: float
    highpass_order: int
    lowpass_hz: float
    lowpass_order: int
    band_edge_hz: float
    resonances: tuple[tuple[float, float, float], ...]  # (centre Hz, gain dB, width octaves)
    self_noise_db: float

    def response(self, freqs: np.ndarray) -> np.ndarray:
        """Linear magnitude at `freqs` (Hz), same shape."""
        gain = highpass(freqs, self.highpass_hz, self.highpass_order) * lowpass(
            freqs, self.lowpass_hz, self.lowpass_order
        )
        gain = gain * lowpass(freqs, self.band_edge_hz, 8)
        for centre, gain_db, width in self.resonances:
            gain = gain * resonance(freqs, centre, gain_db, width)
        return gain


DEVICES: dict[str, Device] = {
    # AKG C417L lavalier condenser microphone in a chest piece (the database's multichannel
    # rig, 44.1 kHz): nearly flat from 50 Hz to 10 kHz, with a mild cavity resonance and the
    # most self-noise (hiss) of the four, which fills the band above the lung sounds.
    "AKGC417L": Device(50.0, 2, 10000.0, 2, 16000.0, ((300.0, 3.0, 1.0),), -32.0),
    # 3M Littmann Classic II SE, an acoustic stethoscope with a microphone in its tube
    # (44.1 kHz): the tube's resonances boost ~100-250 Hz and the acoustic path loses almost
    # everything above ~1 kHz (a steep 4th-order roll-off from 600 Hz).
    "LittC2SE": Device(40.0, 2, 600.0, 4, 16000.0, ((110.0, 6.0, 0.6), (260.0, 4.0, 0.5)), -45.0),
    # 3M Littmann 3200 electronic stethoscope (4 kHz): "extended range" filter, 20-2000 Hz
    # with low-frequency emphasis; its anti-alias filter leaves nothing at Nyquist.
    "Litt3200": Device(20.0, 2, 1000.0, 2, 1800.0, ((150.0, 3.0, 1.0),), -48.0),
    # WelchAllyn Meditron electronic stethoscope (4 kHz, a few files at 10 kHz): band-limited
    # to ~2 kHz whatever the sampling rate, so a 10 kHz file has little energy above 2 kHz.
    "Meditron": Device(35.0, 2, 1300.0, 4, 2000.0, ((220.0, 2.0, 1.0),), -46.0),
}


def device_recording(
    signal: FloatArray,
    rate: int,
    rng: np.random.Generator,
    device: Device,
    upsample: int = 1,
    samples: int | None = None,
) -> FloatArray:
    """What `device` records of `signal (time,)` at `rate`, written at `rate * upsample` Hz.

    The device's self-noise (white over the whole output band, `device.self_noise_db` below
    the signal's RMS) is added and its response applied, in one FFT pass that also
    interpolates the signal to the output rate (zero-padding its spectrum: exact band-limited
    interpolation). This lets the sounds, which all lie below ~4 kHz, be synthesised at a low
    rate and written at 44.1 kHz for a fraction of the cost. The signal is zero-padded by
    0.1 s so that the response's short impulse response does not wrap its end onto its start.
    Returns `(samples,)` float32, `samples` defaulting to `signal.size * upsample`.
    """
    samples = signal.size * upsample if samples is None else samples
    m = next_fast_len(signal.size + rate // 10, real=True)
    size = m * upsample
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex64)
    low = np.fft.rfft(signal.astype(np.float32), m) * np.float32(upsample)
    if upsample > 1:
        low[-1] *= 0.5  # the old Nyquist bin becomes an ordinary bin shared by +/- frequencies
    spectrum[: low.size] = low
    rms = max(float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))), 1e-12)
    # A complex Gaussian spectrum with E|X|^2 = 2 gives time-domain variance 2 / size.
    hiss = _gaussian_spectrum(spectrum.size, rng) * np.float32(
        rms * 10.0 ** (device.self_noise_db / 20.0) * np.sqrt(size / 2.0)
    )
    spectrum += hiss
    spectrum *= device.response(_frequencies(size, rate * upsample)).astype(np.float32)
    return np.fft.irfft(spectrum, size)[:samples].astype(np.float32)
