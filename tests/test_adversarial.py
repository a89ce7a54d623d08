"""Everything a user can type or hand over, adversarially (issue 18): each case ends with the
one line it should, the exit code it should, and nothing else on disk changed.

Most cases call the commands' `run()` in this process (monkeypatched cwd, captured output):
that is what `respiro predict ...` runs. One subprocess per entry point checks the real
command line (predict, export), and SIGINT tests send a real Ctrl-C to a running predict
and a running train stage. The model is an untrained checkpoint in the train stage's format
(ResNet-18, 2 s cycles at 4 kHz): no case here depends on what a model has learnt.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from respiro.commands import export as export_command
from respiro.commands import predict as predict_command
from respiro.core.config import parse_params
from respiro.core.errors import ParamsError
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.model.resnet import build_model
from tests.conftest import DVC_ENV, ROOT, TINY_PARAMS, make_project_copy, write_untrained_checkpoint

RATE = 4000
CYCLES = "0.0\t1.5\t0\t0\n1.5\t3.0\t1\t0\n3.0\t4.0\t0\t1\n"


def breath(seconds: float = 4.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * noise).astype(np.float32)


class Evil:
    """A pickle that runs a shell command when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder (outside every workspace) with `model.pt`, an untrained checkpoint of params.yaml
    with a small chain, `foreign.pt` (a dict that is not ours) and `evil.pt` (code)."""
    folder = tmp_path_factory.mktemp("models")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["segment"]["duration"] = 2.0
    params["model"].update(arch="resnet18", cbam=False)
    torch.manual_seed(0)
    model = build_model(18, False, 16, len(CLASS_NAMES))
    write_untrained_checkpoint(folder / "model.pt", model, params, CLASS_NAMES, (-8.0, 3.0), 2.5)
    torch.save({"state_dict": {}, "weights": [1, 2, 3]}, folder / "foreign.pt")
    torch.save({"state_dict": Evil(folder / "PWNED")}, folder / "evil.pt")
    return folder


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch) -> Path:
    """The user's folder, the current one: a good recording with its annotation, notes, and
    an earlier output."""
    sf.write(tmp_path / "rec.wav", breath(), RATE, subtype="PCM_16")
    (tmp_path / "rec.txt").write_text(CYCLES)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("keep\n")
    (tmp_path / "old.csv").write_text("an earlier output\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.rglob("*"))
    }


def call(command, argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """(exit code, stdout, stderr lines) of `respiro COMMAND argv` run in this process."""
    capsys.readouterr()
    try:
        command.run(argv)
        code = 0
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def predict(models: Path, capsys, *args: str, model: str = "model.pt") -> tuple[int, str, list[str]]:
    return call(predict_command, [*args, "--model", str(models / model)], capsys)


def assert_one_error(code: int, err: list[str], expected: str, name: str = "predict") -> None:
    """Exit 1, and the error is one line that starts `<name>: error: ` and holds `expected`;
    every other stderr line is the command's own (no traceback, no library warning)."""
    errors = [line for line in err if line.startswith(f"{name}: error: ")]
    assert code == 1 and len(errors) == 1 and expected in errors[0], err
    assert all(line.startswith(f"{name}: ") for line in err), err


# --- recordings -----------------------------------------------------------------------------


def write_corrupt(path: Path) -> None:
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 10)


def write_truncated(path: Path) -> None:
    sf.write(path, breath(), RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BAD_RECORDINGS = {
    "corrupt": (write_corrupt, "not a readable audio file"),
    "truncated": (write_truncated, "truncated WAV"),
    "silent": (
        lambda p: sf.write(p, np.zeros(4 * RATE, np.float32), RATE, subtype="PCM_16"),
        "all samples are zero (silent recording)",
    ),
    "nan-filled": (
        lambda p: sf.write(p, np.full(4 * RATE, np.nan, np.float32), RATE, subtype="FLOAT"),
        "contains NaN or infinite samples",
    ),
    "very short": (
        lambda p: sf.write(p, breath(0.02), RATE, subtype="PCM_16"),
        "20 ms of audio, shorter than one STFT window (256 samples at 4000 Hz = 64 ms)",
    ),
}


@pytest.mark.parametrize("case", BAD_RECORDINGS, ids=list(BAD_RECORDINGS))
def test_a_bad_recording_is_skipped_by_name_and_alone_is_an_error(models, workspace, capsys, case):
    write, reason = BAD_RECORDINGS[case]
    write(workspace / "bad.wav")
    before = snapshot(workspace)
    code, _, err = predict(models, capsys, "bad.wav", "--out", "p.csv")
    assert any(line.startswith(f"predict: skipped bad.wav: {reason}") for line in err), err
    assert_one_error(code, err, "none of the 1 files could be classified (each reason above); nothing written")
    assert snapshot(workspace) == before


GOOD_FORMATS = {
    "stereo": lambda p: sf.write(p, np.stack([breath(), -breath()], axis=1), RATE, subtype="PCM_16"),
    "8-bit": lambda p: sf.write(p, breath(), RATE, subtype="PCM_U8"),
    "24-bit": lambda p: sf.write(p, breath(), RATE, subtype="PCM_24"),
    "float": lambda p: sf.write(p, breath(), RATE, subtype="FLOAT"),
    "44.1 kHz": lambda p: sf.write(p, breath(rate=44100), 44100, subtype="PCM_16"),
    "flac": lambda p: sf.write(p.with_suffix(".flac"), breath(), RATE, format="FLAC"),
}


@pytest.mark.parametrize("case", GOOD_FORMATS, ids=list(GOOD_FORMATS))
def test_any_format_soundfile_reads_is_classified_and_only_the_output_appears(models, workspace, capsys, case):
    GOOD_FORMATS[case](workspace / "any.wav")
    name = next(p.name for p in workspace.glob("any.*"))
    (workspace / name).with_suffix(".txt").write_text(CYCLES)
    before = snapshot(workspace)
    code, out, err = predict(models, capsys, name, "--out", "p.csv")
    assert code == 0 and all(line.startswith("predict: ") for line in err), err
    assert f"{name}: 3 cycles: " in out
    after = snapshot(workspace)
    assert after.pop("p.csv").count(b"\n") == 1 + 3 and after == before


def test_a_malformed_annotation_skips_its_recording_naming_file_and_line(models, workspace, capsys):
    (workspace / "rec.txt").write_text(CYCLES + "4.0\t5.0\t2\t0\n")
    before = snapshot(workspace)
    code, _, err = predict(models, capsys, "rec.wav", "--out", "p.csv")
    assert "predict: skipped rec.txt:4: crackles must be 0 or 1, got '2'" in err
    assert_one_error(code, err, "none of the 1 files could be classified")
    assert snapshot(workspace) == before


# --- checkpoints ----------------------------------------------------------------------------


def test_a_foreign_checkpoint_is_refused_in_one_line(models, workspace, capsys):
    before = snapshot(workspace)
    code, _, err = predict(models, capsys, "rec.wav", "--out", "p.csv", model="foreign.pt")
    assert_one_error(
        code, err, f"{models / 'foreign.pt'}: not a checkpoint of this project: missing class_names, params"
    )
    assert len(err) == 1 and snapshot(workspace) == before


@pytest.mark.parametrize("command", [predict_command, export_command], ids=["predict", "export"])
def test_a_malicious_checkpoint_is_refused_as_data_and_its_code_never_runs(models, workspace, capsys, command):
    before = snapshot(workspace)
    args = ["rec.wav", "--out", "p.csv"] if command is predict_command else ["--out", "m.onnx"]
    code, _, err = call(command, [*args, "--model", str(models / "evil.pt")], capsys)
    name = command.__name__.rsplit(".", 1)[1]
    expected = f"{models / 'evil.pt'}: not a checkpoint of this project: it asks for the Python object posix.system, and a checkpoint is loaded as data only"
    assert_one_error(code, err, expected, name)
    assert len(err) == 1 and "weights_only" not in err[0]  # no advice to turn the safety off
    assert not (models / "PWNED").exists() and snapshot(workspace) == before


# --- output paths (both commands) -----------------------------------------------------------

OUTS = {"a folder": "results", "the current folder": ".", "the input recording": "rec.wav", "the annotation": "rec.txt"}


@pytest.mark.parametrize("out", OUTS.values(), ids=list(OUTS))
@pytest.mark.parametrize("command", [predict_command, export_command], ids=["predict", "export"])
def test_an_output_that_is_not_a_file_of_its_own_is_refused_and_nothing_changes(
    models, workspace, capsys, command, out
):
    before = snapshot(workspace)
    name = command.__name__.rsplit(".", 1)[1]
    args = ["rec.wav"] if command is predict_command else []
    code, _, err = call(command, [*args, "--out", out, "--model", str(models / "model.pt")], capsys)
    assert_one_error(code, err, "nothing was changed", name)
    assert len(err) == 1 and snapshot(workspace) == before


# --- options --------------------------------------------------------------------------------

OPTIONS = {
    "--window nan": (["--window", "nan"], "--window nan: must be a finite number of seconds > 0"),
    "--hop inf": (["--hop", "inf"], "--hop inf: must be a finite number of seconds > 0"),
    "--window=-inf": (["--window=-inf"], "--window -inf: must be a finite number of seconds > 0"),
    "--hop 0": (["--hop", "0"], "--hop 0: must be a finite number of seconds > 0"),
    "--window below one STFT window": (
        ["--window", "0.01"],
        "--window 0.01: must be at least 0.064 s (one STFT window of the model: stft.n_fft = 256 samples at 4000 Hz)",
    ),
    "--hop below one STFT window": (["--hop", "0.0001"], "--hop 0.0001: must be at least 0.064 s"),
    "hop > window": (
        ["--window", "1", "--hop", "1.5"],
        "--hop 1.5: longer than the window, so 0.5 s of audio after each window would never be classified; give a shorter --hop, or --allow-gaps",
    ),
    "hop > the cycle a window is cropped to": (
        ["--window", "5", "--hop", "3"],
        "--hop 3: longer than the 2 s of a window the model sees (its segment.duration)",
    ),
    "--batch-size 0": (["--batch-size", "0"], "--batch-size 0: must be >= 1"),
}


@pytest.mark.parametrize("case", OPTIONS, ids=list(OPTIONS))
def test_a_bad_option_value_is_one_line_naming_it_and_nothing_changes(models, workspace, capsys, case):
    args, expected = OPTIONS[case]
    before = snapshot(workspace)
    code, _, err = predict(models, capsys, "rec.wav", "--annotations", "none", "--out", "p.csv", *args)
    assert_one_error(code, err, expected)
    assert snapshot(workspace) == before


def test_gaps_only_when_asked_for_and_no_window_past_the_audio(models, workspace, capsys):
    code, out, err = predict(
        models,
        capsys,
        "rec.wav",
        "--annotations",
        "none",
        "--window",
        "1",
        "--hop",
        "1.5",
        "--allow-gaps",
        "--out",
        "p.csv",
    )
    assert code == 0, err
    starts = [line.split(",")[4] for line in (workspace / "p.csv").read_text().splitlines()[1:]]
    assert starts == ["0.000", "1.500", "3.000"]  # 4 s of audio: a window at 4.5 s would hold none
    assert "3 windows of 1 s every 1.5 s" in out


def test_window_mode_holds_one_batch_not_every_window(models, workspace, capsys, monkeypatch):
    """Windows are made lazily and classified --batch-size at a time: no forward pass (and
    no spectrogram array before it) ever holds more than one batch of windows."""
    sf.write(workspace / "long.wav", breath(20.0), RATE, subtype="PCM_16")
    from respiro.inference import recording

    seen: list[int] = []
    real = recording.classify_spectrograms
    monkeypatch.setattr(
        recording, "classify_spectrograms", lambda t, specs, b: seen.append(len(specs)) or real(t, specs, b)
    )
    code, _, err = predict(
        models, capsys, "long.wav", "--annotations", "none", "--hop", "0.5", "--batch-size", "16", "--out", "p.csv"
    )
    assert code == 0, err
    windows = (workspace / "p.csv").read_text().count("\n") - 1
    assert windows == math.ceil((20 * RATE - 2.5 * RATE) / 2000) + 1 == sum(seen) == 36 and seen == [16, 16, 4]


# --- params: refused by the schema before any stage runs -------------------------------------

PARAMS = {
    "loss.gamma: .nan": ({"loss": {"gamma": float("nan")}}, "loss.gamma"),
    "train.lr: .nan": ({"train": {"lr": float("nan")}}, "train.lr"),
    "train.lr: .inf": ({"train": {"lr": float("inf")}}, "train.lr"),
    "segment.duration: 0.01 < stft.n_fft": ({"segment": {"duration": 0.01}}, "segment.duration"),
}


@pytest.mark.parametrize("case", PARAMS, ids=list(PARAMS))
def test_a_params_value_no_stage_can_use_is_refused_naming_the_key(case):
    overrides, key = PARAMS[case]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, values in overrides.items():
        params[group].update(values)
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")) as refused:
        parse_params(yaml.safe_load(yaml.safe_dump(params)))  # as read from a file: .nan, .inf
    if key == "segment.duration":
        assert "stft.n_fft" in str(refused.value)


# --- the real command lines, and Ctrl-C -----------------------------------------------------


def cli(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "respiro", command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_predict_command_line_answers_nan_with_one_line_and_exit_1(models, workspace):
    before = snapshot(workspace)
    result = cli(
        "predict", "rec.wav", "--window", "nan", "--model", str(models / "model.pt"), "--out", "p.csv", cwd=workspace
    )
    assert (
        result.returncode == 1
        and result.stderr == "predict: error: --window nan: must be a finite number of seconds > 0\n"
    )
    assert snapshot(workspace) == before


def test_the_export_command_line_refuses_the_current_folder_with_one_line_and_exit_1(models, workspace):
    before = snapshot(workspace)
    result = cli("export", "--model", str(models / "model.pt"), "--out", ".", cwd=workspace)
    assert (
        result.returncode == 1
        and result.stderr.startswith("export: error: . is a folder")
        and result.stderr.count("\n") == 1
    )
    assert snapshot(workspace) == before


def interrupted(proc: subprocess.Popen, name: str) -> list[str]:
    """Wait for `proc` after its SIGINT: exit 130 and exactly one line `<name>: interrupted`
    on stderr, no traceback. Returns that line."""
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.startswith(f"{name}: interrupted")]
    assert proc.returncode == 130, err
    assert len(lines) == 1 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return lines[0]


def test_ctrl_c_in_predict_leaves_the_earlier_output_and_no_temporary(models, workspace):
    sf.write(workspace / "long.wav", breath(120.0), RATE, subtype="PCM_16")
    before = snapshot(workspace)
    cmd = [
        sys.executable,
        "-m",
        "respiro",
        "predict",
        "long.wav",
        "--annotations",
        "none",
        "--hop",
        "0.064",
        "--batch-size",
        "8",
        "--model",
        str(models / "model.pt"),
        "--out",
        "old.csv",
    ]
    proc = subprocess.Popen(cmd, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(workspace.glob(".old.csv.tmp-*")):  # the CSV is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    line = interrupted(proc, "predict")
    assert (
        "no output was left half-written" in line and "run `respiro predict ... (the same command)` to carry on" in line
    )
    assert snapshot(workspace) == before  # old.csv as it was, no .tmp- file


@pytest.mark.slow
def test_ctrl_c_in_training_ends_in_one_line_that_says_how_to_recover(tmp_path):
    """The train stage of a tiny project, interrupted during its first epochs: one line, exit
    130, the earlier model untouched, no temporary; the line names the curves DVCLive had
    rewritten (git-tracked, not in DVC's cache) and how to restore them, and they do."""
    overrides = copy.deepcopy(TINY_PARAMS)
    overrides["train"]["epochs"] = 100
    project = make_project_copy(tmp_path / "project", overrides)
    for stage in ("download", "resample", "normalize", "segment", "stft", "pretrained"):
        assert (
            subprocess.run(
                [sys.executable, "-m", f"stages.{stage}"], cwd=project, env=DVC_ENV, capture_output=True, check=False
            ).returncode
            == 0
        ), stage
    (project / "models" / "model.pt").write_bytes(b"an earlier model\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=project,
        env=DVC_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("epoch 1/100: ")  # DVCLive has written the curves
    proc.send_signal(signal.SIGINT)
    line = interrupted(proc, "train")
    assert (
        "metrics/train/ may hold the curves of the epochs it reached: `git checkout -- metrics/train` restores the committed ones"
        in line
    )
    assert "no other output was left half-written" in line and "run `dvc repro` to carry on" in line
    assert (project / "models" / "model.pt").read_bytes() == b"an earlier model\n"
    assert not [p for p in project.rglob("*") if ".tmp-" in p.name and ".git" not in p.parts]
    changed = subprocess.run(
        ["git", "status", "--porcelain", "metrics"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assert "metrics/train/" in changed
    subprocess.run(["git", "checkout", "--", "metrics/train"], cwd=project, check=True)
    assert (
        subprocess.run(
            ["git", "status", "--porcelain", "metrics"], cwd=project, capture_output=True, text=True, check=True
        ).stdout
        == ""
    )
