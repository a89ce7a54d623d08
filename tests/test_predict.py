"""predict and export on the five real ICBHI recordings, with a model from a tiny pipeline run.

The tiny run (stage scripts in a throw-away folder, data.source=local on ../shared/icbhi-sample)
trains with an audio chain unlike params.yaml's (2 kHz, -25 dBFS, 2 s zero-padded cycles,
hop 128), and predict runs from this project, whose params.yaml says otherwise: matching the
evaluate stage cycle for cycle shows that predict takes every setting from the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
import yaml

from respiro.audio.chain import AudioChain
from respiro.core.errors import CheckpointError, ParamsError
from respiro.core.outputs import read_csv
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.data.dataset import load_spectrograms
from respiro.evaluation.reports import PREDICTIONS
from respiro.inference.onnx import onnx_probabilities
from respiro.inference.recording import annotation_in, classify_spectrograms, prepare_recording
from respiro.inference.windows import default_window, window_spans
from respiro.training.checkpoint import load_checkpoint
from tests.conftest import ROOT, TINY_PARAMS, shared_dir

STAGES = ("download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate", "errors")
PROBS = [f"p_{name}" for name in CLASS_NAMES]
# Not params.yaml's values, so that only the checkpoint can tell predict to use them.
# Differences allowed between predict and ONNX on an input rebuilt from the metadata alone
# (numpy float64 STFT and resampler vs torch's float32). Measured on 101_1b1_Al_sc_Meditron:
# spectrograms 8.5e-4 (natural-log units, in the faintest bins), probabilities 4.9e-7 (the
# CSV's 6 decimals round by up to 5e-7).
ONNX_REBUILD_TOLERANCE = {"spectrogram": 5e-3, "probability": 1e-5}
CHAIN = {
    "resample": {"rate": 2000},
    "normalize": {"target_dbfs": -25.0},
    "segment": {"duration": 2.0, "pad": "zero"},
    "stft": {"hop_length": 128},
}


def python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(project folder after download..evaluate on the real recordings, the recordings' folder)."""
    sample = shared_dir("ICBHI_SAMPLE_DIR", "icbhi-sample")
    project = tmp_path_factory.mktemp("tiny")
    for part in ("src", "stages"):
        subprocess.run(["cp", "-r", str(ROOT / part), str(project / part)], check=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, values in {**TINY_PARAMS, **CHAIN}.items():
        params[group].update(values)
    params["data"].update(source="local", local_path=str(sample))
    # The sample has no split file: a random cycle split gives the evaluate stage most cycles.
    params["split"].update(method="random", test_fraction=0.6)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in STAGES:
        result = python(["-m", f"stages.{stage}"], project)
        assert result.returncode == 0, f"{stage}: {result.stderr}"
    return project, sample


def predict_cli(*args: str) -> subprocess.CompletedProcess:
    """`respiro predict` run from this project (its params.yaml is not the model's)."""
    return python(["-m", "respiro", "predict", *args], ROOT)


# --- fast: no trained model needed ---------------------------------------------------------


def test_windows_cover_the_recording_with_overlap():
    spans = window_spans(length=10_000, rate=1000, window_s=3.0, hop_s=1.5)
    assert [(s.start, s.end) for s in spans] == [
        (0, 3000),
        (1500, 4500),
        (3000, 6000),
        (4500, 7500),
        (6000, 9000),
        (7500, 10_000),
    ]
    assert [s.clipped for s in spans] == [False] * 5 + [True]
    assert [(s.start, s.end) for s in window_spans(2000, 1000, 3.0, 1.5)] == [(0, 2000)]  # shorter than a window
    assert [(s.start, s.end) for s in window_spans(3000, 1000, 3.0, 1.5)] == [(0, 3000)]


def test_default_window_is_the_typical_training_cycle_and_user_values_win():
    assert default_window(2.6789, None, None) == (2.68, 1.34)
    assert default_window(2.6789, 4.0, None) == (4.0, 2.0)
    assert default_window(2.6789, None, 0.5) == (2.68, 0.5)


def test_audio_chain_from_params_names_a_missing_or_wrong_key():
    groups = {name: dict(values) for name, values in yaml.safe_load((ROOT / "params.yaml").read_text()).items()}
    assert AudioChain.from_params(groups).shape == (
        groups["stft"]["n_fft"] // 2 + 1,
        1 + int(round(groups["segment"]["duration"] * groups["resample"]["rate"])) // groups["stft"]["hop_length"],
    )
    del groups["stft"]["hop_length"]
    with pytest.raises(ParamsError, match=r"stft\.hop_length"):
        AudioChain.from_params(groups)
    groups["stft"]["hop_length"] = 0
    with pytest.raises(ParamsError, match=r"stft\.hop_length: input should be greater than or equal to 1; got 0"):
        AudioChain.from_params(groups)


def test_a_file_that_is_not_our_checkpoint_stops_with_one_line(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    partial = tmp_path / "partial.pt"
    torch.save({"state_dict": {}, "epoch": 3}, partial)
    code = tmp_path / "code.pt"
    torch.save({"payload": np.random.default_rng(0)}, code)  # needs unpickling code: refused
    with pytest.raises(
        CheckpointError,
        match="not a checkpoint of this project: not a file of tensors and plain data written by torch.save; refused$",
    ):
        load_checkpoint(text)
    with pytest.raises(
        CheckpointError, match="missing class_names, params, input_mean, input_std, val_scores, cycle_seconds_median"
    ):
        load_checkpoint(partial)
    with pytest.raises(
        CheckpointError,
        match=r"not a checkpoint of this project: it asks for the Python object numpy\.random\.\S+, and a checkpoint is loaded as data only .*, never as code; refused$",
    ) as refused:
        load_checkpoint(code)
    assert "weights_only" not in str(refused.value)  # no advice to turn the safety off
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")
    recording = tmp_path / "r.wav"
    sf.write(recording, np.zeros(8000, np.float32), 4000)
    result = predict_cli(str(recording), "--model", str(partial), "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"predict: error: {partial}: not a checkpoint of this project: missing class_names, params, input_mean, input_std, val_scores, cycle_seconds_median"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "p.csv").exists()


# --- slow: a tiny pipeline run on the real recordings ----------------------------------------


@pytest.mark.slow
def test_predict_gives_the_evaluate_stage_probabilities_cycle_for_cycle(tiny_run, tmp_path):
    project, sample = tiny_run
    out = tmp_path / "predictions.csv"
    result = predict_cli(str(sample), "--model", str(project / "models" / "model.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert len(rows) == 51 and {r["unit"] for r in rows} == {"cycle"}
    assert {r["model_trained_on"] for r in rows} == {f"local({sample})"}
    assert re.search(
        r"^predict: 5 of 5 files classified \(0 skipped\), 51 cycles, 0 windows -> .* in \d+\.\d s$",
        result.stdout,
        re.M,
    )
    assert "101_1b1_Al_sc_Meditron.wav: 12 cycles: " in result.stdout and "not a diagnosis" in result.stderr

    # Every test cycle the evaluate stage scored: same class, same probabilities (6 decimals).
    evaluated = read_csv(project / PREDICTIONS)
    assert len(evaluated) >= 25
    ours = {(r["recording"], r["start"], r["end"]): r for r in rows}
    for e in evaluated:
        p = ours[(e["recording"], e["start"], e["end"])]
        assert (p["predicted_label"], p["annotated_label"]) == (e["predicted_label"], e["true_label"])
        assert max(abs(float(p[k]) - float(e[k])) for k in PROBS) <= 1e-6 + 1e-9

    # Full precision, every cycle: predict's spectrograms are the stages' own, bit for bit, and
    # its probabilities those of the evaluate stage's computation on them.
    trained = load_checkpoint(project / "models" / "model.pt")
    assert trained.chain.stft.hop_length == 128 and trained.chain.rate == 2000 and trained.chain.shape == (129, 32)
    specs, manifest = load_spectrograms(project / "data" / "spectrograms")
    staged = classify_spectrograms(trained, np.asarray(specs), 64)
    for wav in sorted(sample.glob("*.wav")):
        index = [i for i, r in enumerate(manifest) if r["recording"] == wav.stem]
        item = prepare_recording(trained, wav, annotation_in(wav.with_suffix(".txt"), wav), 3.0, 1.5)
        assert np.array_equal(item.spectrograms, specs[index]), wav.name
        probs = classify_spectrograms(trained, item.spectrograms, 64)
        assert np.abs(probs - staged[index]).max() <= 1e-6, wav.name
        written = np.array([[float(r[k]) for k in PROBS] for r in rows if r["recording"] == wav.stem])
        assert np.abs(written - probs).max() <= 5e-7 + 1e-9


@pytest.mark.slow
def test_a_recording_without_annotation_is_classified_in_windows(tiny_run, tmp_path):
    project, sample = tiny_run
    wav = tmp_path / "104_1b1_Ar_sc_Litt3200.wav"
    wav.symlink_to(sample / wav.name)  # the real file, without its annotation beside it
    out = tmp_path / "windows.csv"
    result = predict_cli(
        str(wav), "--model", str(project / "models" / "model.pt"), "--window", "2", "--hop", "1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    samples, rate = sf.read(wav)
    expected = window_spans(int(np.ceil(len(samples) * 2000 / rate)), 2000, 2.0, 1.0)
    assert len(rows) == len(expected) > 10
    assert {r["unit"] for r in rows} == {"window"} and {r["annotated_label"] for r in rows} == {""}
    assert [float(r["start"]) for r in rows] == [s.start / 2000 for s in expected]
    assert all(abs(sum(float(r[k]) for k in PROBS) - 1) < 1e-5 for r in rows)
    assert f"{len(rows)} windows of 2 s every 1 s (no annotation: windows, not cycles)" in result.stdout
    assert f"0 cycles, {len(rows)} windows" in result.stdout

    # Without --window: windows as long as the model's typical training cycle, half overlapping.
    typical = torch.load(project / "models" / "model.pt", weights_only=True)["cycle_seconds_median"]
    window, hop = default_window(typical, None, None)
    assert window == round(typical, 2) and hop == window / 2 and 0.5 < window < 8
    result = predict_cli(str(wav), "--model", str(project / "models" / "model.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = window_spans(int(np.ceil(len(samples) * 2000 / rate)), 2000, window, hop)
    assert [float(r["start"]) for r in read_csv(out)] == pytest.approx([s.start / 2000 for s in expected])
    assert f"windows of {window:g} s every {hop:g} s" in result.stdout


@pytest.mark.slow
def test_a_corrupt_and_a_too_short_file_are_skipped_and_the_rest_classified(tiny_run, tmp_path):
    project, sample = tiny_run
    folder = tmp_path / "mixed"
    folder.mkdir()
    for stem in ("104_1b1_Al_sc_Litt3200", "104_1b1_Ar_sc_Litt3200"):
        for suffix in (".wav", ".txt"):
            (folder / f"{stem}{suffix}").symlink_to(sample / f"{stem}{suffix}")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 10)
    sf.write(
        folder / "short.wav", np.full(80, 0.1, np.float32), 4000, subtype="PCM_16"
    )  # 20 ms < one 128 ms STFT window at 2 kHz
    out = tmp_path / "predictions.csv"
    result = predict_cli(str(folder), "--model", str(project / "models" / "model.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"predict: skipped {folder / 'corrupt.wav'}: not a readable audio file" in result.stderr
    assert f"predict: skipped {folder / 'short.wav'}: 20 ms of audio, shorter than one STFT window" in result.stderr
    rows = read_csv(out)
    assert {r["recording"] for r in rows} == {"104_1b1_Al_sc_Litt3200", "104_1b1_Ar_sc_Litt3200"} and len(
        rows
    ) == 6 + 14
    assert "2 of 4 files classified (2 skipped), 20 cycles" in result.stdout

    # Nothing classifiable: an error, and no CSV that looks like a result.
    result = predict_cli(
        str(folder / "corrupt.wav"),
        str(folder / "short.wav"),
        "--model",
        str(project / "models" / "model.pt"),
        "--out",
        str(tmp_path / "none.csv"),
    )
    assert result.returncode == 1 and "none of the 2 files could be classified" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "none.csv").exists()


@pytest.mark.slow
def test_a_checkpoint_with_other_classes_or_weights_is_refused(tiny_run, tmp_path):
    project, _ = tiny_run
    checkpoint = torch.load(project / "models" / "model.pt", weights_only=True)
    renamed = tmp_path / "renamed.pt"
    torch.save({**checkpoint, "class_names": ["normal", "normal", "x", "y"]}, renamed)
    with pytest.raises(CheckpointError, match=r"class_names must be two or more distinct names"):
        load_checkpoint(renamed)
    # Another scheme's names are a checkpoint of that scheme: its head must have as many outputs.
    torch.save({**checkpoint, "class_names": ["Normal", "Adventitious"]}, renamed)
    with pytest.raises(CheckpointError, match=r"weights of the wrong shape .* fc.bias \(4,\), expected \(2,\)"):
        load_checkpoint(renamed)
    deeper = tmp_path / "deeper.pt"
    torch.save(
        {
            **checkpoint,
            "params": {**checkpoint["params"], "model": {**checkpoint["params"]["model"], "arch": "resnet34"}},
        },
        deeper,
    )
    with pytest.raises(CheckpointError, match=r"weights do not fit ResNet-34 \+ CBAM .*missing"):
        load_checkpoint(deeper)
    unchained = tmp_path / "unchained.pt"
    params = {k: v for k, v in checkpoint["params"].items() if k != "stft"}
    torch.save({**checkpoint, "params": params}, unchained)
    with pytest.raises(CheckpointError, match="missing params group 'stft'"):
        load_checkpoint(unchained)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """(`respiro export`'s file of tiny_run's checkpoint, what the command printed)."""
    project, _ = tiny_run
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    result = python(["-m", "respiro", "export", "--out", str(out)], project)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.mark.slow
def test_onnx_export_gives_pytorch_probabilities_on_real_spectrograms(tiny_run, exported):
    project, _ = tiny_run
    out, printed = exported
    assert re.search(
        r"^export: .* opset \d+, input \(batch, 1, 129, 32\)\); onnxruntime vs PyTorch on 51 spectrograms",
        printed,
        re.M,
    )
    trained = load_checkpoint(project / "models" / "model.pt")
    specs = np.asarray(load_spectrograms(project / "data" / "spectrograms")[0])
    reference = classify_spectrograms(trained, specs, 64)
    for batch in (1, 64):  # the batch dimension is dynamic
        assert np.abs(onnx_probabilities(out, specs, batch) - reference).max() <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES)
    assert json.loads(meta["audio_chain"])["stft"]["hop_length"] == 128
    assert meta["trained_on"].startswith("local(") and "not a diagnosis" in meta["intended_use"]
    # Which checkpoint file it came from: an export outlives a retrained models/model.pt.
    assert meta["checkpoint_sha256"] == hashlib.sha256((project / "models" / "model.pt").read_bytes()).hexdigest()


def rebuild_input(recipe: dict, wav: Path, spans_s: list[tuple[float, float]]) -> np.ndarray:
    """The ONNX file's input `(n, 1, F, T)` for the cycles `spans_s` (seconds) of `wav`, made
    from its `input_recipe` metadata alone with numpy, scipy and soundfile: what a runtime
    without this project would write (no respiro import here)."""
    import math

    from scipy.signal import get_window

    data, source = sf.read(str(wav), dtype="float32", always_2d=True)
    x = data.mean(axis=1, dtype=np.float32)
    r = recipe["resample"]
    rate = r["rate"]
    if source != rate and r["method"] == "soxr":
        import soxr  # the resampler library itself, not this project's code

        x = soxr.resample(x, source, rate, quality="HQ").astype(np.float32)
    elif source != rate:
        g = math.gcd(source, rate)
        S, R, width = source // g, rate // g, r["lowpass_filter_width"]
        base = min(S, R) * r["rolloff"]
        w = math.ceil(width * S / base)
        t = ((np.arange(2 * w + S)[None, :] - w) / S - np.arange(R)[:, None] / R) * base  # (R, 2w+S)
        t = np.clip(t, -width, width)
        kernel = ((base / S) * np.sinc(t) * np.cos(np.pi * t / (2 * width)) ** 2).astype(np.float32)
        padded = np.concatenate([np.zeros(w, np.float32), x, np.zeros(w + S, np.float32)])
        frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + S)[::S]  # (K, 2w+S)
        x = (frames @ kernel.T).reshape(-1)[: math.ceil(len(x) * R / S)].astype(np.float32)
    n = recipe["normalize"]
    if n["method"] != "none":
        x64 = x.astype(np.float64)
        value = np.sqrt(np.mean(x64 * x64)) if n["method"] == "rms" else np.abs(x64).max()
        if value > 0:
            x = (x64 * 10 ** ((n["target_dbfs"] - 20 * np.log10(value)) / 20)).astype(np.float32)
    c, st, sc = recipe["cycle"], recipe["stft"], recipe["scale"]
    window = get_window(st["window"].split(",")[0], st["n_fft"], fftbins=True)  # periodic
    out = []
    for start_s, end_s in spans_s:
        start, end = int(round(start_s * rate)), min(int(round(end_s * rate)), len(x))
        cycle = x[start:end]
        if len(cycle) >= c["samples"]:
            cycle = cycle[: c["samples"]]
        elif c["pad"] == "repeat":
            cycle = np.resize(cycle, c["samples"])
        else:
            cycle = np.concatenate([cycle, np.zeros(c["samples"] - len(cycle), np.float32)])
        half = st["n_fft"] // 2
        padded = np.pad(cycle.astype(np.float64), half, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, st["n_fft"])[:: st["hop_length"]][: st["frames"]]
        power = np.abs(np.fft.rfft(frames * window, axis=1)).T ** 2  # (F, T)
        if sc["name"] == "log":
            spec = np.log(power + sc["log_floor"])
        elif sc["name"] == "db":
            db = 10 * np.log10(np.maximum(power, 1e-10))
            spec = np.maximum(db, db.max() - sc["top_db"])
        else:
            spec = power
        out.append(spec.astype(np.float32))
    return np.stack(out)[:, None]


@pytest.mark.slow
def test_the_onnx_metadata_alone_rebuild_the_input_of_a_real_recording(tiny_run, exported, tmp_path):
    """A 44.1 kHz ICBHI recording through the file's `input_recipe` (numpy/scipy, no project
    code), then onnxruntime: the probabilities `respiro predict` writes, within TOLERANCE."""
    import onnxruntime as ort

    project, sample = tiny_run
    model, _ = exported
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    recipe = json.loads(meta["input_recipe"])
    wav = sample / "101_1b1_Al_sc_Meditron.wav"
    assert sf.info(str(wav)).samplerate == 44100 != recipe["resample"]["rate"]  # resampling is part of it
    out = tmp_path / "p.csv"
    assert predict_cli(str(wav), "--model", str(project / "models" / "model.pt"), "--out", str(out)).returncode == 0
    rows = read_csv(out)
    spans = [(float(r["start"]), float(r["end"])) for r in rows]
    specs = rebuild_input(recipe, wav, spans)
    probs = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"spectrogram": specs})[0]
    written = np.array([[float(r[k]) for k in PROBS] for r in rows])
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES) and probs.shape == written.shape
    # The spectrograms themselves, against predict's own (float32 STFT vs float64 here).
    annotation = annotation_in(wav.with_suffix(".txt"), wav)
    ours = prepare_recording(load_checkpoint(project / "models" / "model.pt"), wav, annotation, 3.0, 1.5).spectrograms
    print(
        f"max |spectrogram difference| {np.abs(specs[:, 0] - ours).max():.2e}, max |p difference| {np.abs(probs - written).max():.2e}"
    )
    assert np.abs(specs[:, 0] - ours).max() <= ONNX_REBUILD_TOLERANCE["spectrogram"]
    assert np.abs(probs - written).max() <= ONNX_REBUILD_TOLERANCE["probability"]


@pytest.mark.slow
def test_a_strict_model_predicts_on_strict_kernels(tiny_run, tmp_path):
    """A checkpoint trained with train.precision: strict is predicted on strict kernels: the
    command starts again with them (they are read when torch loads) and says so; the
    probabilities stay those of the same weights (float32 either way, other summation order)."""
    project, sample = tiny_run
    checkpoint = torch.load(project / "models" / "model.pt", weights_only=True)
    checkpoint["params"]["train"]["precision"] = "strict"
    torch.save(checkpoint, tmp_path / "strict.pt")
    default_out, strict_out = tmp_path / "default.csv", tmp_path / "strict.csv"
    default = predict_cli(str(sample), "--model", str(project / "models" / "model.pt"), "--out", str(default_out))
    strict = predict_cli(str(sample), "--model", str(tmp_path / "strict.pt"), "--out", str(strict_out))
    assert default.returncode == 0 and strict.returncode == 0, strict.stderr
    assert "(strict kernels)" in strict.stderr and "(strict kernels)" not in default.stderr
    p_default, p_strict = (
        np.array([[float(r[f"p_{c}"]) for c in CLASS_NAMES] for r in read_csv(out)])
        for out in (default_out, strict_out)
    )
    assert np.abs(p_default - p_strict).max() < 1e-4
