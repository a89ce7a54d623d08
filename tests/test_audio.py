"""The audio stages' signal processing: resampling, normalization, segmentation, STFT."""

import numpy as np
import pytest
import soundfile as sf
import torch

from respiro.audio.normalize import gain_db_for, level_dbfs, normalize
from respiro.audio.resample import Resampler
from respiro.audio.segment import cycle_span, fit_length
from respiro.audio.spectrogram import Spectrogram
from respiro.audio.store import AudioStore, AudioStoreWriter
from respiro.audio.wavio import read_mono
from respiro.core.errors import AudioReadError, DamagedArtifactError


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("method", ["soxr", "torchaudio"])
@pytest.mark.parametrize("source_rate", [44100, 10000, 4000])
def test_resampling_keeps_a_440_hz_tone_at_440_hz(source_rate, method):
    out = Resampler(4000, method)(tone(440, source_rate, 2.0), source_rate)
    assert len(out) == 8000
    assert peak_frequency(out, 4000) == pytest.approx(440, abs=1.0)
    # Amplitude kept: the band-limited kernel passes 440 Hz untouched (RMS of 0.5 sine).
    assert np.sqrt(np.mean(out[400:-400] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("method", ["soxr", "torchaudio"])
def test_resampling_removes_content_above_the_new_nyquist(method):
    # 3 kHz at 44.1 kHz is above the 2 kHz Nyquist of 4 kHz: naive decimation would alias it
    # to 1 kHz at full strength. The anti-aliasing filter must remove it.
    out = Resampler(4000, method)(tone(3000, 44100, 2.0) + tone(440, 44100, 2.0, amp=0.1), 44100)
    spectrum = np.abs(np.fft.rfft(out[400:-400] * np.hanning(len(out) - 800)))
    freqs = np.fft.rfftfreq(len(out) - 800, 1 / 4000)
    alias = spectrum[np.abs(freqs - 1000) < 20].max()
    kept = spectrum[np.abs(freqs - 440) < 20].max()
    assert alias < kept * 1e-2  # >= 40 dB below the in-band tone of a fifth of its amplitude


def test_soxr_keeps_the_top_of_the_band_and_removes_what_lies_just_above_it():
    # Why soxr is the default (benchmarks/bench_resample.py): 1.8 kHz passes within 0.1 dB
    # (torchaudio's short kernel: -2.4 dB) and 2.2 kHz, just above the 2 kHz Nyquist, is
    # removed instead of folding back to 1.8 kHz (torchaudio: -14 dB).
    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[1000:-1000].astype(np.float64) ** 2)))

    soxr, torchaudio = Resampler(4000, "soxr"), Resampler(4000, "torchaudio")
    unit = 0.5 / np.sqrt(2)
    assert abs(20 * np.log10(rms(soxr(tone(1800, 44100, 2.0), 44100)) / unit)) < 0.1
    assert 20 * np.log10(rms(torchaudio(tone(1800, 44100, 2.0), 44100)) / unit) < -2
    assert 20 * np.log10(rms(soxr(tone(2200, 44100, 2.0), 44100)) / unit) < -100
    assert 20 * np.log10(rms(torchaudio(tone(2200, 44100, 2.0), 44100)) / unit) > -20


@pytest.mark.parametrize("method,target", [("rms", -20.0), ("peak", -1.0), ("rms", -35.5)])
def test_normalization_reaches_its_level(method, target):
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal(8000) * 0.001).astype(np.float32)
    out, gain = normalize(quiet, method, target)
    assert level_dbfs(out, method) == pytest.approx(target, abs=1e-3)
    assert gain == pytest.approx(target - level_dbfs(quiet, method), abs=1e-6)


def test_normalization_of_silence_does_not_divide_by_zero():
    out, gain = normalize(np.zeros(100, np.float32), "rms", -20)
    assert gain == 0.0 and not out.any() and np.isfinite(out).all()


def test_normalization_none_is_identity():
    x = np.linspace(-0.3, 0.3, 50, dtype=np.float32)
    out, gain = normalize(x, "none", -20)
    assert gain == 0 and np.array_equal(out, x)


def test_cycle_span_clips_and_skips():
    span = cycle_span(0.5, 1.0, 4000, 10_000)
    assert (span.start, span.end, span.clipped) == (2000, 4000, False)
    clipped = cycle_span(2.0, 3.0, 4000, 10_000)  # audio ends at 2.5 s
    assert (clipped.start, clipped.end, clipped.clipped) == (8000, 10_000, True)
    assert cycle_span(1.0, 1.0, 4000, 10_000) is None  # zero length
    assert cycle_span(3.0, 4.0, 4000, 10_000) is None  # after the end


def test_fit_length_pads_by_repeating_or_zeros_and_crops_from_the_start():
    cycle = np.array([1, 2, 3], np.float32)
    assert fit_length(cycle, 8, "repeat").tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert fit_length(cycle, 5, "zero").tolist() == [1, 2, 3, 0, 0]
    assert fit_length(np.arange(10, dtype=np.float32), 4, "repeat").tolist() == [0, 1, 2, 3]
    assert fit_length(cycle, 3, "zero").tolist() == [1, 2, 3]


def test_spectrogram_shape_and_a_tones_bin():
    rate, n_fft, hop = 4000, 256, 128
    spec = Spectrogram(n_fft, hop)(np.stack([tone(500, rate, 8.0), tone(1250, rate, 8.0)]))
    assert spec.shape == (2, 129, 251) and spec.dtype == np.float32
    # Bin k is k * rate / n_fft Hz: 500 Hz -> bin 32, 1250 Hz -> bin 80.
    assert spec[0].mean(axis=1).argmax() == 32
    assert spec[1].mean(axis=1).argmax() == 80


def test_spectrogram_scales():
    x = tone(500, 4000, 1.0)[None]
    power = Spectrogram(256, 256, scale="linear")(x)
    np.testing.assert_allclose(Spectrogram(256, 256, scale="log")(x), np.log(power + 1e-6), rtol=1e-6)
    db = Spectrogram(256, 256, scale="db", top_db=40)(x)
    assert db.max() - db.min() <= 40 + 1e-4
    hamming = Spectrogram(256, 256, window="hamming")(x)
    assert hamming.shape == power.shape and not np.allclose(hamming, np.log(power + 1e-6))


@pytest.mark.parametrize("n_fft, hop, window", [(256, 256, "hann"), (256, 100, "hamming"), (255, 64, "hann")])
def test_spectrogram_is_torch_stft_centred_with_reflect_padding(n_fft, hop, window):
    # The numpy STFT replaces torch.stft (the stage then starts without torch): the same
    # frames, window and padding, so the same numbers up to float32 rounding.
    x = np.random.default_rng(0).standard_normal((3, 4001)).astype(np.float32)
    make = {"hann": torch.hann_window, "hamming": torch.hamming_window}[window]
    spec = torch.stft(
        torch.from_numpy(x),
        n_fft,
        hop,
        window=make(n_fft, periodic=True),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    ours = Spectrogram(n_fft, hop, window, scale="linear")(x)
    assert ours.shape == tuple(spec.shape)
    np.testing.assert_allclose(ours, spec.abs().square().numpy(), rtol=1e-3, atol=1e-3)


def test_store_round_trip(tmp_path):
    with AudioStoreWriter(tmp_path, 4000) as writer:
        writer.append({"stem": "a"}, np.arange(5, dtype=np.float32))
        writer.append({"stem": "b"}, np.array([9.5], np.float32))
    store = AudioStore(tmp_path)
    assert [r["stem"] for r in store.rows] == ["a", "b"]
    assert store.samples(0).tolist() == [0, 1, 2, 3, 4] and store.samples(1).tolist() == [9.5]
    (tmp_path / "samples.f32").write_bytes(b"\0" * 8)  # damaged: fewer bytes than the index
    with pytest.raises(ValueError, match="damaged"):
        AudioStore(tmp_path)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_read_mono_reads_every_width_and_mixes_channels(tmp_path, subtype):
    stereo = np.stack([tone(440, 4000, 0.5, 0.4), tone(440, 4000, 0.5, 0.2)], axis=1)
    stereo[:4] = [[-1.0, 1.0], [0.999, -0.999], [1e-7, -3e-5], [0.5, 0.25]]  # full scale and the smallest steps
    path = tmp_path / "x.wav"
    sf.write(path, stereo, 4000, subtype=subtype)
    samples, rate = read_mono(path)
    assert rate == 4000 and samples.dtype == np.float32 and samples.ndim == 1
    np.testing.assert_allclose(samples, stereo.mean(axis=1), atol=1e-2 if subtype == "PCM_U8" else 1e-4)
    # Integer PCM is read as integers and scaled here: the same float32 bits as libsndfile's.
    as_float, _ = sf.read(path, dtype="float32", always_2d=True)
    assert np.array_equal(samples, as_float.mean(axis=1, dtype=np.float32))
    mono = tmp_path / "mono.wav"
    sf.write(mono, stereo[:, 0], 4000, subtype=subtype)
    assert np.array_equal(read_mono(mono)[0], sf.read(mono, dtype="float32")[0])


def test_read_mono_gives_libsndfiles_floats_on_real_recordings(icbhi_sample):
    wavs = sorted(icbhi_sample.glob("*.wav"))
    assert wavs
    for wav in wavs:
        assert np.array_equal(read_mono(wav)[0], sf.read(wav, dtype="float32")[0]), wav.name


def test_read_mono_rejects_bad_files(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(440, 4000, 1.0), 4000, subtype="PCM_16")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:3000])
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2], np.float32), 4000, subtype="FLOAT")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 4000, subtype="PCM_16")
    for path, reason in [(truncated, "truncated"), (corrupt, "not a readable"), (nan, "NaN"), (empty, "no audio")]:
        with pytest.raises(AudioReadError, match=reason) as err:
            read_mono(path)
        assert path.name in str(err.value)


def test_npy_rows_written_in_place_give_numpys_file(tmp_path):
    from respiro.audio.arrays import create_npy, write_npy_rows

    data = np.random.default_rng(0).standard_normal((7, 3, 5)).astype(np.float32)
    create_npy(tmp_path / "a.npy", data.shape)
    write_npy_rows(tmp_path / "a.npy", 4, data[4:])
    write_npy_rows(tmp_path / "a.npy", 0, data[:4])
    np.save(tmp_path / "b.npy", data)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


@pytest.mark.parametrize(
    "duration, pad, frontend",
    [(1.0, "repeat", "stft"), (1.0, "zero", "stft"), (0.3, "repeat", "stft"), (1.0, "repeat", "fbank")],
)
def test_stft_stage_batches_and_the_predict_chain_fit_and_transform_cycles_alike(tmp_path, duration, pad, frontend):
    # The segment stage stores where each cycle lies and its recording's gain; the stft
    # stage's workers cut it, scale it and fit it to segment.duration (fit_cycles). The
    # predict chain scales the whole recording, cuts and fits: the same bytes.
    from respiro.audio.arrays import create_npy
    from respiro.audio.chain import AudioChain
    from respiro.audio.segment import CycleSpan, CycleTable
    from respiro.audio.spectrogram import SpectrogramBatch, write_spectrogram_batch
    from respiro.core.config import NormalizeParams, ResampleParams, SegmentParams, StftParams

    rate = 4000
    recording = np.random.default_rng(1).standard_normal(3 * rate).astype(np.float32)
    store = tmp_path / "store"
    store.mkdir()
    with AudioStoreWriter(store, rate) as writer:
        writer.append({"stem": "r"}, recording)
    spans = [
        CycleSpan(0, 1700, False),
        CycleSpan(1500, 6900, False),
        CycleSpan(7000, 12000, True),
    ]  # shorter, longer than 1 s
    gain = gain_db_for(recording, "rms", -20.0)
    cycles = tmp_path / "cycles"
    cycles.mkdir()
    CycleTable(
        rate,
        np.zeros(3, np.int64),
        np.array([s.start for s in spans]),
        np.array([s.end for s in spans]),
        np.full(3, gain),
    ).write(cycles)

    chain = AudioChain(
        ResampleParams(rate=rate, method="soxr"),
        NormalizeParams(method="rms", target_dbfs=-20.0),
        SegmentParams(duration=duration, pad=pad),
        StftParams(frontend=frontend, n_fft=256, hop_length=128, window="hann", scale="log", top_db=80.0, n_mels=64),
    )
    create_npy(tmp_path / "specs.npy", (3, *chain.shape))
    for first, count in ((0, 2), (2, 1)):
        write_spectrogram_batch(
            SpectrogramBatch(
                store,
                cycles,
                tmp_path / "specs.npy",
                first,
                count,
                chain.cycle_samples,
                pad,
                chain.stft,
            )
        )
    expected = chain.spectrograms(chain.cycles(chain.recording(recording, rate), spans))
    assert np.load(tmp_path / "specs.npy").tobytes() == expected.tobytes()


def test_a_checkpoints_params_without_resample_method_mean_torchaudio():
    # Models trained before resample.method existed were fed torchaudio-resampled audio:
    # predict must keep giving them that (the checkpoint reader upgrades them), while
    # params.yaml itself must name the method: a missing key is an error, never a default.
    import yaml

    from respiro.audio.chain import AudioChain
    from respiro.core.errors import ParamsError
    from respiro.training.checkpoint import upgrade_params
    from tests.conftest import ROOT

    groups = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert AudioChain.from_params(groups).resample.method == groups["resample"]["method"] == "soxr"
    del groups["resample"]["method"]
    with pytest.raises(ParamsError, match=r"^missing key resample\.method$"):
        AudioChain.from_params(groups)
    assert AudioChain.from_params(upgrade_params(groups)).resample.method == "torchaudio"
    assert "method" not in groups["resample"]  # upgraded as a copy


def test_gains_are_stored_exactly_and_must_be_the_stores_recordings(tmp_path):
    from respiro.audio.normalize import read_gains, write_gains

    gains = [gain_db_for(np.random.default_rng(i).standard_normal(400), "rms", -20.0) for i in range(3)]
    write_gains(tmp_path, ["a", "b", "c"], gains)
    assert read_gains(tmp_path, ["a", "b", "c"]) == gains  # repr round-trips every bit
    with pytest.raises(DamagedArtifactError, match=r"gains\.csv: its recordings are not the resampled store's"):
        read_gains(tmp_path, ["a", "c", "b"])


def test_a_gain_applied_to_a_slice_is_the_slice_of_the_scaled_recording():
    from respiro.audio.normalize import apply_gain

    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    scaled, gain = normalize(x, "peak", -3.0)
    assert apply_gain(x[1234:4321], gain).tobytes() == scaled[1234:4321].tobytes()
    assert apply_gain(x, 0.0).tobytes() == x.tobytes()


def test_a_cycle_table_that_does_not_fit_its_store_is_damaged(tmp_path):
    from respiro.audio.segment import TABLE, CycleTable

    with AudioStoreWriter(tmp_path, 4000) as writer:
        writer.append({"stem": "r"}, np.zeros(1000, np.float32))
    store = AudioStore(tmp_path)
    one = np.ones(1, np.int64)
    CycleTable(4000, 0 * one, 10 * one, 1000 * one, np.zeros(1)).write(tmp_path)
    assert len(CycleTable.open(tmp_path, store)) == 1
    for bad in (
        CycleTable(4000, 0 * one, 10 * one, 1001 * one, np.zeros(1)),  # past the recording's end
        CycleTable(4000, one, 10 * one, 20 * one, np.zeros(1)),  # no such recording
        CycleTable(2000, 0 * one, 10 * one, 20 * one, np.zeros(1)),  # another rate
    ):
        bad.write(tmp_path)
        with pytest.raises(DamagedArtifactError, match=f"{tmp_path / TABLE}: its cycles do not lie in {tmp_path}"):
            CycleTable.open(tmp_path, store)
    (tmp_path / TABLE).write_bytes(b"not a zip")
    with pytest.raises(DamagedArtifactError, match=f"{tmp_path / TABLE}: not a cycle table"):
        CycleTable.open(tmp_path, store)
