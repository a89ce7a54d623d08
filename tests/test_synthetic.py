"""The synthetic corpus: ICBHI format, realistic statistics, audio that matches its labels.

Most checks run on one moderate corpus (60 patients, 200 recordings of ~12 s, ~900 cycles,
generated once per module); statistics that need ICBHI's size are checked on the plan of an
ICBHI-scale corpus, which is cheap because it renders no audio.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.transforms as T
from scipy.fft import next_fast_len
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from respiro.core.config import SyntheticParams, validate_group
from respiro.core.errors import ParamsError
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.data.icbhi import (
    DEMOGRAPHIC_FILE,
    DIAGNOSIS_FILE,
    SPLIT_FILE,
    label_of,
    parse_recording_name,
    read_annotations,
    read_demographics,
    read_diagnosis,
    read_split_file,
    scan_folder,
)
from respiro.data.synthetic import sounds
from respiro.data.synthetic.corpus import generate_corpus
from respiro.data.synthetic.plan import ICBHI_SCALE, CorpusPlan, plan_corpus
from respiro.data.synthetic.population import DIAGNOSES

SMALL = SyntheticParams(seed=11, patients=6, recordings=12, recording_seconds=10.0)
MODERATE = SyntheticParams(seed=5, patients=60, recordings=200, recording_seconds=12.0)
ICBHI_MIX = {"Normal": 0.53, "Crackle": 0.27, "Wheeze": 0.13, "Both": 0.07}
RATE = 4000  # the pipeline's rate: signal checks look at what the model will see
EXPECTED_RATES = {"AKGC417L": {44100}, "LittC2SE": {44100}, "Litt3200": {4000}, "Meditron": {4000, 10000}}


@pytest.fixture(scope="module")
def moderate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("moderate")
    generate_corpus(root, MODERATE, progress=False)
    return root


@pytest.fixture(scope="module")
def icbhi_plan():
    return plan_corpus(ICBHI_SCALE)


@dataclass(frozen=True)
class CycleAudio:
    stem: str
    label: int
    crackle: int
    wheeze: int
    split: str
    samples: np.ndarray  # (time,) at 4 kHz, recording scaled to unit RMS


@pytest.fixture(scope="module")
def cycles(moderate: Path) -> list[CycleAudio]:
    """Every cycle of the moderate corpus at 4 kHz, its recording normalised to unit RMS."""
    root = moderate
    split = read_split_file(root / SPLIT_FILE)
    resamplers: dict[int, T.Resample] = {}
    out = []
    for found in scan_folder(root).recordings:
        audio, rate = sf.read(found.wav, dtype="float32")
        if rate != RATE:
            resampler = resamplers.setdefault(rate, T.Resample(rate, RATE))
            with torch.inference_mode():
                audio = resampler(torch.from_numpy(audio)).numpy()
        audio = audio / np.sqrt(np.mean(np.square(audio)))
        for cycle in read_annotations(found.annotation):
            segment = audio[int(cycle.start * RATE) : int(cycle.end * RATE)]
            out.append(
                CycleAudio(found.name.stem, cycle.label, cycle.crackle, cycle.wheeze, split[found.name.stem], segment)
            )
    return out


def sha256_of_files(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


# --- format ---------------------------------------------------------------------------------


def test_every_file_parses_as_icbhi(moderate: Path) -> None:
    root = moderate
    scan = scan_folder(root)
    assert scan.skipped == [] and scan.ignored == []
    assert set(scan.metadata) == {SPLIT_FILE, DIAGNOSIS_FILE, DEMOGRAPHIC_FILE}
    assert len(scan.recordings) == MODERATE.recordings
    assert len(list(root.glob("*.wav"))) == MODERATE.recordings

    patients = {found.name.patient for found in scan.recordings}
    assert patients == set(range(101, 101 + MODERATE.patients))  # every patient has a recording
    assert all(read_annotations(found.annotation) for found in scan.recordings)
    assert set(read_split_file(root / SPLIT_FILE)) == {found.name.stem for found in scan.recordings}

    diagnosis = read_diagnosis(root / DIAGNOSIS_FILE)
    assert set(diagnosis) == patients and set(diagnosis.values()) <= set(DIAGNOSES)
    demographics = read_demographics(root / DEMOGRAPHIC_FILE)
    assert set(demographics) == patients
    for row in demographics.values():
        assert row.sex in ("M", "F") and row.age is not None
        if row.age >= 18:  # adults: BMI (or NA), never the children's columns
            assert row.child_weight is None and row.child_height is None
        else:
            assert row.adult_bmi is None


def test_names_sessions_and_modes_look_like_icbhi(moderate: Path) -> None:
    root = moderate
    names = [found.name for found in scan_folder(root).recordings]
    assert all(re.fullmatch(r"\d[bp]\d", n.index) for n in names)
    sessions: dict[tuple[int, str], list] = defaultdict(list)
    for n in names:
        sessions[n.patient, n.index].append(n)
    for group in sessions.values():
        assert len({n.location for n in group}) == len(group)  # one file per location
        assert len({(n.mode, n.device) for n in group}) == 1  # one session, one device and mode
    # Multichannel sessions record several locations at once.
    assert any(len(g) > 1 and g[0].mode == "mc" for g in sessions.values())
    assert {n.mode for n in names} == {"sc", "mc"}
    assert {n.location for n in names} == {"Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr"}
    # A patient uses one device for most recordings.
    by_patient: dict[int, Counter] = defaultdict(Counter)
    for n in names:
        by_patient[n.patient][n.device] += 1
    main_device = sum(c.most_common(1)[0][1] for c in by_patient.values())
    assert main_device >= 0.85 * len(names)


def test_metadata_files_have_the_real_byte_layout(tmp_path: Path) -> None:
    generate_corpus(tmp_path, SMALL, progress=False)
    split = (tmp_path / SPLIT_FILE).read_bytes()
    assert b"\r" not in split and not split.endswith(b"\n")  # like the real file: LF, no final newline
    stems = [line.split(b"\t")[0] for line in split.split(b"\n")]
    assert stems == sorted(stems) and len(stems) == SMALL.recordings
    diagnosis = (tmp_path / DIAGNOSIS_FILE).read_bytes()
    assert b"\r" not in diagnosis and re.fullmatch(rb"(\d{3}\t[A-Za-z]+\n)*\d{3}\t[A-Za-z]+", diagnosis)
    demographic = (tmp_path / DEMOGRAPHIC_FILE).read_bytes()
    assert demographic.startswith(b"\r\n") and not demographic.endswith(b"\n")  # as in the real file
    for line in demographic.split(b"\r\n")[1:]:
        assert re.fullmatch(rb"\d{3} [\d.]+ [MF] (NA|[\d.]+) (NA|[\d.]+) (NA|[\d.]+)", line), line
    for txt in tmp_path.glob("*_*_*_*_*.txt"):
        text = txt.read_bytes()
        assert b"\r" not in text and text.endswith(b"\n")
        for line in text.decode().splitlines():
            assert re.fullmatch(r"\d+(\.\d{1,5})?\t\d+(\.\d{1,5})?\t[01]\t[01]", line), (txt.name, line)


def test_audio_is_mono_at_the_device_rate_in_the_databases_sample_formats(moderate: Path) -> None:
    root = moderate
    subtypes: Counter = Counter()
    for found in scan_folder(root).recordings:
        info = sf.info(str(found.wav))
        assert info.channels == 1
        assert info.samplerate in EXPECTED_RATES[found.name.device], found.name.stem
        if info.samplerate != 44100:
            assert info.subtype == "PCM_16"  # the 4 kHz (and 10 kHz) files are 16 bit
        subtypes[info.subtype] += 1
    assert set(subtypes) == {"PCM_16", "PCM_24", "PCM_32"}


# --- annotations, split, class mix ----------------------------------------------------------


def test_cycles_are_consecutive_and_cover_the_recording(moderate: Path) -> None:
    root = moderate
    covered = []
    for found in scan_folder(root).recordings:
        info = sf.info(str(found.wav))
        seconds = info.frames / info.samplerate
        cycles = read_annotations(found.annotation)
        assert cycles[0].start <= 0.6
        assert cycles[-1].end <= seconds
        for before, after in zip(cycles, cycles[1:]):
            assert 0.0 <= after.start - before.end <= 0.3
        assert all(0.4 <= c.end - c.start <= 10.0 for c in cycles)
        covered.append(sum(c.end - c.start for c in cycles) / seconds)
    assert min(covered) > 0.5 and np.mean(covered) > 0.85


def test_cycle_lengths_are_icbhi_like(icbhi_plan) -> None:
    lengths = np.array([end - start for r in icbhi_plan.recordings for start, end, _, _ in r.cycles])
    assert 6000 <= lengths.size <= 8000  # ICBHI: 6,898 cycles
    assert 2.5 <= lengths.mean() <= 2.9  # ICBHI: 2.7 s
    assert np.median(lengths) < lengths.mean()  # right-skewed
    assert lengths.min() < 0.7 and lengths.max() > 8.0
    seconds = sum(r.seconds for r in icbhi_plan.recordings)
    assert 5.0 <= seconds / 3600 <= 6.0  # ICBHI: 5.5 hours


def test_split_is_patient_wise_about_60_40(moderate: Path, icbhi_plan) -> None:
    root = moderate
    split = read_split_file(root / SPLIT_FILE)
    sides: dict[int, set[str]] = defaultdict(set)
    for stem, side in split.items():
        sides[parse_recording_name(stem).patient].add(side)
    assert all(len(s) == 1 for s in sides.values())
    assert 0.55 <= Counter(split.values())["train"] / len(split) <= 0.65
    train = sum(r.split == "train" for r in icbhi_plan.recordings) / len(icbhi_plan.recordings)
    assert 0.58 <= train <= 0.62


def mix(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: counts[name] / total for name in CLASS_NAMES}


def planned_cycles(plan: CorpusPlan) -> dict[str, int]:
    labels = Counter(label_of(c, w) for r in plan.recordings for _, _, c, w in r.cycles)
    return {name: labels[i] for i, name in enumerate(CLASS_NAMES)}


def test_class_mix_is_near_icbhi(cycles: list[CycleAudio], icbhi_plan) -> None:
    for name, share in mix(planned_cycles(icbhi_plan)).items():
        assert share == pytest.approx(ICBHI_MIX[name], abs=0.04), name
    # 60 patients: patient effects make the mix vary more.
    written = Counter(c.label for c in cycles)
    for name, share in mix({name: written[i] for i, name in enumerate(CLASS_NAMES)}).items():
        assert share == pytest.approx(ICBHI_MIX[name], abs=0.10), name


def test_patients_differ_by_diagnosis(icbhi_plan) -> None:
    diagnosis = {p.pid: p.diagnosis for p in icbhi_plan.patients}
    abnormal: dict[str, list[int]] = defaultdict(list)
    for r in icbhi_plan.recordings:
        abnormal[diagnosis[r.patient]] += [int(c or w) for _, _, c, w in r.cycles]
    assert np.mean(abnormal["COPD"]) > 0.4 > 0.15 > np.mean(abnormal["Healthy"])
    assert Counter(diagnosis.values()) == {name: d.patients for name, d in DIAGNOSES.items()}  # 126: the real counts
    recordings = Counter(diagnosis[r.patient] for r in icbhi_plan.recordings)
    assert recordings["COPD"] / len(icbhi_plan.recordings) > 0.75  # ICBHI: 86 % of recordings


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (first, again, other):
        folder.mkdir()
    generate_corpus(first, SMALL, progress=False)
    generate_corpus(again, SMALL, progress=False)
    assert sha256_of_files(first) == sha256_of_files(again)
    generate_corpus(other, SMALL.model_copy(update={"seed": SMALL.seed + 1}), progress=False)
    a, c = sha256_of_files(first), sha256_of_files(other)
    assert a.keys() != c.keys() or all(a[k] != c[k] for k in a if k.endswith(".wav"))


def test_refuses_a_missing_or_non_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        generate_corpus(tmp_path / "missing", SMALL, progress=False)
    (tmp_path / "old.wav").write_bytes(b"")
    with pytest.raises(FileExistsError):
        generate_corpus(tmp_path, SMALL, progress=False)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"patients": 0}, "synthetic.patients"),
        ({"patients": 900}, "synthetic.patients"),
        ({"patients": 2.5}, "synthetic.patients"),
        ({"recordings": 5, "patients": 6}, "synthetic.recordings"),
        ({"recording_seconds": 0}, "synthetic.recording_seconds"),
        ({"recording_seconds": 4.9}, "synthetic.recording_seconds"),
        ({"recording_seconds": "20"}, "synthetic.recording_seconds"),
        ({"seed": 1.5}, "synthetic.seed"),
        ({"seed": -1}, "synthetic.seed"),
        ({"seed": True}, "synthetic.seed"),
    ],
)
def test_invalid_config_names_the_key(changes: dict, key: str) -> None:
    values = {"seed": 1, "patients": 6, "recordings": 12, "recording_seconds": 10.0} | changes
    with pytest.raises(ParamsError, match=re.escape(key) + ": "):
        validate_group("synthetic", values)


# --- the audio matches its labels -----------------------------------------------------------


def peakiness(segment: np.ndarray) -> float:
    """Height (log power) of the most prominent narrow spectral line in 100-1000 Hz above the
    spectrum's local median (+-4 bins of 15.6 Hz); noise gives ~1, a wheeze several."""
    frames = max(segment.size // 256, 1)
    blocks = np.pad(segment, (0, max(0, 256 - segment.size)))[: frames * 256].reshape(frames, 256)
    spectrum = np.log(np.mean(np.abs(np.fft.rfft(blocks * np.hanning(256), axis=1)) ** 2, axis=0) + 1e-12)
    median = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(spectrum, 4, mode="edge"), 9), axis=1)
    return float((spectrum - median)[7:65].max())


def transient_kurtosis(segment: np.ndarray) -> float:
    """Kurtosis of the signal above 400 Hz: Gaussian breath noise gives ~3, crackles far more."""
    spectrum = np.fft.rfft(segment)
    spectrum[np.fft.rfftfreq(segment.size, 1.0 / RATE) < 400.0] = 0.0
    high = np.fft.irfft(spectrum, segment.size)
    return float(np.mean(high**4) / np.mean(high**2) ** 2)


def share_of_recordings_where(cycles: list[CycleAudio], label: int, measure, minimum: int) -> float:
    """In recordings with both Normal and `label` cycles: the share whose median `measure` of
    the `label` cycles exceeds that of the Normal cycles (the same patient, place and device)."""
    by_recording: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cycles:
        if c.label in (0, label):
            by_recording[c.stem][c.label].append(measure(c.samples))
    wins = [np.median(m[label]) > np.median(m[0]) for m in by_recording.values() if m[0] and m[label]]
    assert len(wins) >= minimum
    return float(np.mean(wins))


def test_wheeze_cycles_have_a_spectral_line_normal_cycles_lack(cycles: list[CycleAudio]) -> None:
    assert share_of_recordings_where(cycles, 2, peakiness, minimum=20) >= 0.7


def test_crackle_cycles_have_more_transients_than_normal_cycles(cycles: list[CycleAudio]) -> None:
    assert share_of_recordings_where(cycles, 1, transient_kurtosis, minimum=40) >= 0.7


def test_inspiration_is_louder_than_expiration(cycles: list[CycleAudio]) -> None:
    louder = [
        np.mean(c.samples[: int(0.35 * c.samples.size)] ** 2) > np.mean(c.samples[int(0.35 * c.samples.size) :] ** 2)
        for c in cycles
        if c.label == 0 and "_Tc_" not in c.stem
    ]
    assert np.mean(louder) > 0.9


def test_recordings_differ_in_loudness_and_never_clip(moderate: Path) -> None:
    root = moderate
    levels = []
    for path in root.glob("*.wav"):
        audio, _ = sf.read(path, dtype="float64")
        assert np.max(np.abs(audio)) < 0.96
        levels.append(10 * np.log10(np.mean(audio**2)))
    assert max(levels) - min(levels) >= 20.0


def band_share(audio: np.ndarray, rate: int, low: float, high: float) -> float:
    """Share of the power above 20 Hz that lies in [low, high) Hz."""
    size = next_fast_len(audio.size, real=True)  # zero-padded: an FFT of a prime length is slow
    power = np.abs(np.fft.rfft(audio, size)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power[freqs >= 20.0].sum())


def test_devices_colour_the_sound_differently() -> None:
    rng = np.random.default_rng(0)
    white = rng.standard_normal(4 * 8820).astype(np.float32)
    # 44.1 kHz devices: the AKG microphone is flat, the acoustic Littmann loses the highs.
    akg = sounds.device_recording(white, 8820, rng, sounds.DEVICES["AKGC417L"], upsample=5)
    littc2se = sounds.device_recording(white, 8820, rng, sounds.DEVICES["LittC2SE"], upsample=5)
    assert band_share(akg, 44100, 1000, 4000) > 0.3 > 0.02 > band_share(littc2se, 44100, 1000, 4000)
    # Electronic stethoscopes stop near 2 kHz, even a Meditron sampling at 10 kHz.
    meditron = sounds.device_recording(
        rng.standard_normal(40000).astype(np.float32), 10000, rng, sounds.DEVICES["Meditron"]
    )
    assert band_share(meditron, 10000, 2000, 5000) < 0.01
    litt3200 = sounds.device_recording(
        rng.standard_normal(16000).astype(np.float32), 4000, rng, sounds.DEVICES["Litt3200"]
    )
    assert band_share(litt3200, 4000, 1800, 2000) < 0.01


def test_device_colouring_is_in_the_files(moderate: Path) -> None:
    root = moderate
    high: dict[str, list[float]] = defaultdict(list)
    for found in scan_folder(root).recordings:
        audio, rate = sf.read(found.wav, dtype="float64")
        if rate == 10000:
            assert band_share(audio, rate, 2000, 5000) < 0.01
        high[found.name.device].append(band_share(audio, rate, 1000, 2000))
    assert np.median(high["AKGC417L"]) > 3 * np.median(high["LittC2SE"])
    assert any(sf.info(str(p)).samplerate == 10000 for p in root.glob("*.wav"))  # the 10 kHz check above did run


def cycle_features(segment: np.ndarray) -> np.ndarray:
    """Simple per-cycle features at 4 kHz (STFT 256/256, log power in 16 bands): the mean and
    the max-minus-mean over time of each band, and the mean and max over frames of the
    strongest narrow line in 100-1000 Hz."""
    frames = max(segment.size // 256, 1)
    blocks = np.pad(segment, (0, max(0, 256 - segment.size)))[: frames * 256].reshape(frames, 256)
    power = np.log(np.abs(np.fft.rfft(blocks * np.hanning(256), axis=1)) ** 2 + 1e-6)  # (frames, 129)
    bands = power[:, 1:].reshape(frames, 16, 8).mean(axis=2)
    median = np.median(
        np.lib.stride_tricks.sliding_window_view(np.pad(power, ((0, 0), (4, 4)), mode="edge"), 9, axis=1), axis=2
    )
    line = (power - median)[:, 7:65].max(axis=1)
    return np.concatenate([bands.mean(0), bands.max(0) - bands.mean(0), [line.mean(), line.max()]])


@pytest.mark.parametrize("target", ["crackle", "wheeze"])
def test_labels_are_learnable_but_not_trivially(cycles: list[CycleAudio], target: str) -> None:
    features = np.array([cycle_features(c.samples) for c in cycles])
    labels = np.array([getattr(c, target) for c in cycles])
    train = np.array([c.split == "train" for c in cycles])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced"))
    model.fit(features[train], labels[train])
    score = balanced_accuracy_score(labels[~train], model.predict(features[~train]))
    assert 0.65 < score < 0.99, score


# --- the sound sources ----------------------------------------------------------------------


def test_crackles_are_short_fine_ones_shorter_and_higher() -> None:
    rng = np.random.default_rng(1)
    rate = 44100
    freqs = np.fft.rfftfreq(4096, 1.0 / rate)
    centroid = {}
    for fine, (low_ms, high_ms) in ((True, (3, 8)), (False, (10, 25))):
        waves = [sounds.crackle(rate, rng, fine) for _ in range(50)]
        lengths_ms = np.array([w.size / rate * 1000 for w in waves])
        assert lengths_ms.min() >= low_ms - 0.1 and lengths_ms.max() <= high_ms + 0.1
        assert all(np.max(np.abs(w)) == pytest.approx(1.0) for w in waves)
        # The initial deflection is the largest: the explosive start, then a damped ring.
        assert all(np.argmax(np.abs(w)) < 0.25 * w.size for w in waves)
        power = np.mean([np.abs(np.fft.rfft(w, 4096)) ** 2 for w in waves], axis=0)
        centroid[fine] = float((freqs * power).sum() / power.sum())
    assert centroid[True] > 1.5 * centroid[False]  # fine crackles are higher-pitched


def test_wheeze_is_a_tone_at_its_pitch() -> None:
    rng = np.random.default_rng(2)
    tone = sounds.wheeze(4000, rng, duration=0.5, f0_hz=400.0, glide=0.0, harmonics=(1.0, 0.3))
    assert tone.size == 2000
    power = np.abs(np.fft.rfft(tone * np.hanning(tone.size))) ** 2
    freqs = np.fft.rfftfreq(tone.size, 1 / 4000)
    assert freqs[np.argmax(power)] == pytest.approx(400.0, rel=0.05)
    assert power[(freqs > 760) & (freqs < 840)].max() > 0.02 * power.max()  # the 2nd harmonic


def test_heart_sounds_are_low_and_at_the_heart_rate() -> None:
    rng = np.random.default_rng(3)
    heart = sounds.heart_sounds(20 * 4000, 4000, rng, bpm=75.0)
    assert band_share(heart, 4000, 20, 160) > 0.95
    # The envelope repeats once per beat: its autocorrelation peaks at 0.8 s.
    envelope = np.convolve(np.abs(heart), np.ones(80) / 80, mode="same")
    envelope -= envelope.mean()
    spectrum = np.fft.rfft(envelope, 2 * envelope.size)
    correlation = np.fft.irfft(np.abs(spectrum) ** 2)[: envelope.size]
    lag = (2000 + np.argmax(correlation[2000:4800])) / 4000  # search 0.5-1.2 s
    assert lag == pytest.approx(0.8, rel=0.06)


def test_shaped_noise_has_unit_rms_and_its_spectrum() -> None:
    rng = np.random.default_rng(4)
    noise = sounds.shaped_noise(12345, 4000, rng, sounds.breath_response(300.0))
    assert noise.shape == (12345,) and noise.dtype == np.float32
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert band_share(noise, 4000, 100, 400) > 10 * band_share(noise, 4000, 800, 1100)
