"""The audio stages on every core: results in input order, bounded work in flight, and the
same bytes from the stages whatever `audio.workers` says."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
import yaml

from respiro.audio.arrays import create_npy, write_npy_rows
from respiro.core.pool import IN_FLIGHT_PER_WORKER, ordered_map, worker_count
from tests.conftest import ROOT


def late_for_small(x: int) -> int:
    """Finishes the early items last, so a pool returns them out of order."""
    time.sleep(0.002 * ((20 - x) % 7))
    return x * x


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("item three is bad")
    return x


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_in_input_order(workers):
    assert list(ordered_map(late_for_small, range(20), workers)) == [x * x for x in range(20)]


def test_an_error_is_raised_for_its_item_after_the_items_before_it():
    got = []
    with pytest.raises(ValueError, match="item three is bad"):
        for result in ordered_map(fails_on_three, range(10), 2):
            got.append(result)
    assert got == [0, 1, 2]


def dies_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return x


def test_a_worker_that_dies_stops_the_map_instead_of_hanging():
    with pytest.raises(BrokenProcessPool):
        list(ordered_map(dies_on_three, range(10), 2))


def test_only_a_few_items_per_worker_are_in_flight():
    taken = []

    def items():
        for x in range(200):
            taken.append(x)
            yield x

    results = ordered_map(late_for_small, items(), 2)
    assert next(results) == 0
    # Not the whole input: a pool that took every item up front would hold every result.
    assert len(taken) <= IN_FLIGHT_PER_WORKER * 2 + 1
    assert list(results) == [x * x for x in range(1, 200)]


def test_worker_count_zero_means_every_core_this_process_may_use():
    assert worker_count(0) == len(os.sched_getaffinity(0))
    assert worker_count(3) == 3


def test_rows_written_in_any_order_give_the_file_a_writer_in_order_gives(tmp_path):
    rows = np.arange(7 * 3 * 4, dtype=np.float32).reshape(7, 3, 4)
    np.save(tmp_path / "ordered.npy", rows)
    create_npy(tmp_path / "scattered.npy", rows.shape)
    for start, stop in [(5, 7), (0, 2), (2, 5)]:
        write_npy_rows(tmp_path / "scattered.npy", start, rows[start:stop])
    assert (tmp_path / "scattered.npy").read_bytes() == (tmp_path / "ordered.npy").read_bytes()


def test_row_ranges_outside_the_file_are_refused(tmp_path):
    create_npy(tmp_path / "a.npy", (4, 2))
    with pytest.raises(ValueError, match=r"a.npy: rows 3..5 outside its 4 rows"):
        write_npy_rows(tmp_path / "a.npy", 3, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"rows of shape \(3,\), expected \(2,\)"):
        write_npy_rows(tmp_path / "a.npy", 0, np.zeros((1, 3), np.float32))


def run_stage(project: Path, stage: str) -> str:
    result = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def outputs_md5(project: Path) -> dict[str, str]:
    folders = ("resampled", "normalized", "cycles", "spectrograms")
    return {
        str(p.relative_to(project)): hashlib.md5(p.read_bytes()).hexdigest()
        for f in folders
        for p in sorted((project / "data" / f).iterdir())
    }


def test_the_stages_write_the_same_bytes_on_one_worker_and_on_several(tmp_path, icbhi_sample):
    for part in ("src", "stages"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="local", local_path=str(icbhi_sample))
    run_stage_with = {}
    for workers in (1, 3):
        params["audio"]["workers"] = workers
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        if workers == 1:
            run_stage(tmp_path, "download")
        lines = [run_stage(tmp_path, stage) for stage in ("resample", "normalize", "segment", "stft")]
        assert all(f"{workers} workers" in lines[i] for i in (0, 3))
        run_stage_with[workers] = outputs_md5(tmp_path)
    assert len(run_stage_with[1]) == 7  # two in resampled, the gains, two in cycles, two in spectrograms
    assert run_stage_with[3] == run_stage_with[1]


def test_spectrogram_batches_from_several_workers_match_one_call_in_this_process(tmp_path):
    from respiro.audio.normalize import apply_gain
    from respiro.audio.segment import CycleTable, fit_cycles
    from respiro.audio.spectrogram import Spectrogram, SpectrogramBatch, write_spectrogram_batch
    from respiro.audio.store import AudioStore, AudioStoreWriter
    from respiro.core.config import StftParams

    # 300 cycles of many lengths, shorter and longer than the fixed 2048 samples, from three
    # recordings with their own gains.
    rng = np.random.default_rng(0)
    recordings = [rng.standard_normal(n).astype(np.float32) for n in (40_000, 25_000, 60_000)]
    with AudioStoreWriter(tmp_path, 1024) as writer:
        for i, samples in enumerate(recordings):
            writer.append({"stem": f"r{i}"}, samples)
    which = rng.integers(0, 3, 300)
    lengths = rng.integers(100, 4000, 300)
    starts = np.array([rng.integers(0, len(recordings[r]) - n) for r, n in zip(which, lengths)])
    gains = np.array([-3.5, 0.0, 12.25])[which]
    CycleTable(1024, which, starts, starts + lengths, gains).write(tmp_path)
    cycles = [apply_gain(recordings[r][a : a + n], g) for r, a, n, g in zip(which, starts, lengths, gains)]
    assert [c.tobytes() for c in CycleTable.open(tmp_path, AudioStore(tmp_path)).cut(AudioStore(tmp_path), 0, 300)] == [
        c.tobytes() for c in cycles
    ]
    settings = StftParams(
        frontend="stft", n_fft=256, hop_length=128, window="hann", scale="log", top_db=80.0, n_mels=128
    )
    create_npy(tmp_path / "specs.npy", (300, 129, 17))
    batches = [
        SpectrogramBatch(
            tmp_path, tmp_path, tmp_path / "specs.npy", first, min(64, 300 - first), 2048, "repeat", settings
        )
        for first in range(0, 300, 64)
    ]
    assert sum(ordered_map(write_spectrogram_batch, batches, 3)) == 300
    expected = Spectrogram(256, 128, "hann", "log", 80.0)(fit_cycles(cycles, 2048, "repeat"))  # one call, all 300 rows
    assert np.load(tmp_path / "specs.npy").tobytes() == expected.tobytes()
