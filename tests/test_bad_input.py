"""Bad input through the real stage scripts: skipped and reported, or stopped with an error
that names the file and line. The rule: a problem confined to one recording (unreadable,
truncated, non-finite or silent audio, a missing partner file, a name outside the ICBHI
pattern, no cycles) skips that recording and is counted in data/reports/<stage>.json; a
problem that makes the data ambiguous or wrong as a whole (a malformed annotation line, a
duplicated stem) stops the stage, since silently dropping it would change the class counts.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.conftest import ROOT

GOOD_CYCLES = "0.0\t1.5\t0\t0\n1.5\t3.0\t1\t0\n3.0\t4.0\t0\t1\n"


def tone(seconds: float = 4.0, rate: int = 4000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def add_recording(
    raw: Path, stem: str, audio: np.ndarray | None = None, annotation: str | None = GOOD_CYCLES, rate: int = 4000
) -> None:
    sf.write(
        raw / f"{stem}.wav",
        tone() if audio is None else audio,
        rate,
        subtype="PCM_16" if audio is None or np.isfinite(audio).all() else "FLOAT",
    )
    if annotation is not None:
        (raw / f"{stem}.txt").write_text(annotation)


@pytest.fixture
def project(tmp_path) -> Path:
    for part in ("src", "stages"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", tmp_path)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    add_recording(tmp_path / "data" / "raw", "101_1b1_Al_sc_Meditron")
    return tmp_path


def stage(project: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=project, capture_output=True, text=True)


def audio_stages(project: Path) -> subprocess.CompletedProcess:
    for name in ("resample", "normalize", "segment"):
        result = stage(project, name)
        if result.returncode != 0:
            return result
    return result


def report(project: Path, name: str) -> dict:
    return json.loads((project / "data" / "reports" / f"{name}.json").read_text())


def test_bad_recordings_are_skipped_and_reported(project):
    raw = project / "data" / "raw"
    add_recording(raw, "102_1b1_Ar_sc_Meditron")
    (raw / "102_1b1_Ar_sc_Meditron.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)  # corrupt
    add_recording(raw, "103_1b1_Ar_sc_Meditron")
    full = (raw / "103_1b1_Ar_sc_Meditron.wav").read_bytes()
    (raw / "103_1b1_Ar_sc_Meditron.wav").write_bytes(full[: len(full) // 2])  # truncated
    add_recording(raw, "104_1b1_Ar_sc_Meditron", audio=np.array([0.1, np.nan] * 8000, np.float32))
    add_recording(raw, "105_1b1_Ar_sc_Meditron", audio=np.zeros(16000, np.float32))
    add_recording(raw, "106_1b1_Ar_sc_Meditron", annotation=None)  # wav without annotation
    (raw / "107_1b1_Ar_sc_Meditron.txt").write_text(GOOD_CYCLES)  # annotation without wav
    add_recording(raw, "patient7_recording")  # outside the naming pattern
    add_recording(raw, "108_1b1_Ar_sc_Meditron", annotation="")  # no cycles
    (raw / "ICBHI_challenge_train_test.txt").write_text("101_1b1_Al_sc_Meditron\ttrain\n999_1b1_Al_sc_Meditron\ttest\n")

    result = audio_stages(project)
    assert result.returncode == 0, result.stderr
    resample = report(project, "resample")
    reasons = {entry["file"]: entry["reason"] for entry in resample["skipped_files"]}
    assert "not a readable" in reasons["102_1b1_Ar_sc_Meditron.wav"]
    assert "truncated" in reasons["103_1b1_Ar_sc_Meditron.wav"]
    assert "NaN" in reasons["104_1b1_Ar_sc_Meditron.wav"]
    assert "zero" in reasons["105_1b1_Ar_sc_Meditron.wav"]
    assert "without its annotation" in reasons["106_1b1_Ar_sc_Meditron.wav"]
    assert "without its .wav" in reasons["107_1b1_Ar_sc_Meditron.txt"]
    assert "not PID_RecIdx" in reasons["patient7_recording.wav"]
    assert resample["skipped"] == 7
    assert resample["split_file_names_unknown_recordings"] == 1
    segment = report(project, "segment")
    assert segment["skipped_files"] == [
        {"file": "108_1b1_Ar_sc_Meditron.txt", "reason": "annotation file has no cycles"}
    ]
    assert segment["cycles"] == 3  # the one good recording
    assert (
        "7 skipped"
        in subprocess.run([sys.executable, "-m", "stages.resample"], cwd=project, capture_output=True, text=True).stdout
    )


@pytest.mark.parametrize(
    "line,message",
    [
        ("0.0\t1.5\t0", "expected 4 columns"),
        ("0.0\tabc\t0\t0", "must be numbers"),
        ("2.0\t1.0\t0\t0", "is after end"),
        ("0.0\t1.0\t2\t0", "crackles must be 0 or 1"),
    ],
)
def test_malformed_annotation_stops_with_file_and_line(project, line, message):
    (project / "data" / "raw" / "101_1b1_Al_sc_Meditron.txt").write_text(GOOD_CYCLES + line + "\n")
    result = audio_stages(project)
    assert result.returncode == 1
    assert "101_1b1_Al_sc_Meditron.txt:4: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data" / "cycles").exists()  # nothing half-written


def test_cycles_past_the_audio_are_clipped_and_counted(project):
    # 4 s of audio: the second cycle is clipped, the third starts after the end.
    (project / "data" / "raw" / "101_1b1_Al_sc_Meditron.txt").write_text(
        "0.0\t3.0\t0\t0\n3.0\t5.0\t1\t0\n4.5\t6.0\t0\t1\n3.0\t3.0\t0\t0\n"
    )
    assert audio_stages(project).returncode == 0
    segment = report(project, "segment")
    assert segment["cycles"] == 2 and segment["cycles_clipped_to_audio"] == 1
    assert [e["file"] for e in segment["skipped_files"]] == [
        "101_1b1_Al_sc_Meditron.txt:3",
        "101_1b1_Al_sc_Meditron.txt:4",
    ]


def test_duplicated_stem_stops(project):
    sub = project / "data" / "raw" / "again"
    sub.mkdir()
    add_recording(sub, "101_1b1_Al_sc_Meditron")
    result = stage(project, "resample")
    assert result.returncode == 1 and "appears twice" in result.stderr
    assert not (project / "data" / "resampled").exists()


def test_no_usable_recording_stops(project):
    (project / "data" / "raw" / "101_1b1_Al_sc_Meditron.wav").write_bytes(b"not audio")
    result = stage(project, "resample")
    assert result.returncode == 1 and "no usable recordings" in result.stderr


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("model.arch", 50, "model.arch: input should be a valid string; got 50"),
        ("split.method", "kfold", "split.method: input should be "),
    ],
)
def test_invalid_params_stop_the_stage_naming_the_key(project, key, value, message):
    group, name = key.split(".")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[group][name] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = stage(project, "resample")
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_a_killed_stage_leaves_nothing_that_looks_complete(project):
    """SIGKILL the segment stage after its cycle table is written: no data/cycles appears,
    only a temporary, which the next run clears before writing a complete output."""
    assert audio_stages(project).returncode == 0
    shutil.rmtree(project / "data" / "cycles")
    killer = (
        "import os, signal, stages.segment as stage\n"
        "real = stage.CycleTable.write\n"
        "def dying(table, folder):\n"
        "    real(table, folder)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "stage.CycleTable.write = dying\n"
        "stage.main()\n"
    )
    killed = subprocess.run([sys.executable, "-c", killer], cwd=project, capture_output=True, text=True)
    assert killed.returncode == -9
    assert not (project / "data" / "cycles").exists()
    assert list((project / "data").glob(".cycles.tmp-*"))
    assert stage(project, "segment").returncode == 0
    assert not list((project / "data").glob(".cycles.tmp-*"))
    assert len(np.load(project / "data" / "cycles" / "cycles.npz")["start"]) == 3  # 3 cycles


@pytest.mark.parametrize(
    "name", ["download", "resample", "normalize", "segment", "stft", "pretrained", "train", "evaluate", "errors"]
)
def test_stage_help_describes_it_and_runs_nothing(tmp_path, name):
    """`python -m stages.X --help` says what the stage reads and writes; a stray argument is
    refused. Neither runs the stage (run in an empty folder: it would fail or write there)."""
    env = {
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "PATH": "/usr/bin:/bin",
    }  # this checkout's package, not an installed one
    shown = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: python -m stages.{name} [-h]") and f"Stage {name}:" in shown.stdout
    refused = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", "--epochs", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "unrecognized arguments: --epochs 3" in refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_ends_the_stage_in_one_line_naming_the_output(project, tmp_path):
    """The download stage writing the synthetic corpus onto a full disk (libsndfile says only
    "System error."): one line naming the output, no traceback, nothing half-written. A
    small tmpfs is the full disk; where this process may not mount one, the test says so."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        for part in ("src", "stages"):
            shutil.copytree(project / part, disk / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(project / "params.yaml", disk)
        result = stage(disk, "download")
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        [line] = [x for x in result.stderr.splitlines() if "error:" in x]
        assert line.startswith("download: error: no space left on the disk writing data/raw;"), line
        assert not (disk / "data" / "raw").exists() and not list((disk / "data").glob(".raw.tmp-*"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_enospc_from_any_stage_is_one_line(capsys):
    import errno
    import os

    from respiro.core.cli import run_stage

    def full() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "data/resampled/audio.f32")

    with pytest.raises(SystemExit) as code:
        run_stage("resample", full)
    assert code.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("resample: error: no space left on the disk writing data/resampled/audio.f32;")
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_while_a_stage_starts_is_one_line(project):
    """SIGINT during the train stage's imports (before it runs anything): one line, no
    KeyboardInterrupt traceback, no output."""
    import signal
    import time

    started = subprocess.Popen(
        [sys.executable, "-m", "stages.train"], cwd=project, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)  # past the command line, inside the imports (torch takes seconds)
    started.send_signal(signal.SIGINT)
    _, err = started.communicate(timeout=120)
    assert started.returncode != 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "train: interrupted" in err
    assert not (project / "models" / "model.pt").exists()
