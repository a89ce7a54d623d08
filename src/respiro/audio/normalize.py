"""Volume normalization per recording (the paper's step 2), and the gains file that carries it.

The normalize stage stores each recording's gain (data/normalized/gains.csv), not a scaled
copy of its samples: the scaled recording is the resampled one times the gain, which the
segment stage applies to each cycle it cuts (`apply_gain`, bit for bit the same samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, assert_never

import numpy as np

from respiro.core.config import NormalizeMethod
from respiro.core.errors import DamagedArtifactError
from respiro.core.outputs import read_csv, write_csv

GAINS_FILE = "gains.csv"  # one row per recording of the resampled store, in its order: stem, gain_db


def level_dbfs(samples: np.ndarray, method: Literal["rms", "peak"]) -> float:
    """Level of a signal in dB full scale: its RMS (`rms`) or its largest |sample| (`peak`).

    Returns -inf for a silent signal.
    """
    x = np.asarray(samples, dtype=np.float64)
    if method == "rms":
        value = np.sqrt(np.mean(x * x))
    elif method == "peak":
        value = np.max(np.abs(x))
    else:
        assert_never(method)
    return float(20 * np.log10(value)) if value > 0 else float("-inf")


def gain_db_for(samples: np.ndarray, method: NormalizeMethod, target_dbfs: float) -> float:
    """The gain in dB that brings the `method` level of `samples` to `target_dbfs`.

    `method` is `rms`, `peak` or `none`. `none` and a silent signal (no level to scale to,
    never divided by zero; the caller reports it) get 0.
    """
    if method == "none":
        return 0.0
    level = level_dbfs(samples, method)
    return target_dbfs - level if np.isfinite(level) else 0.0


def apply_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """`samples` scaled by `gain_db`, as float32. Elementwise, so scaling a slice gives the
    slice of the scaled recording, bit for bit: the segment stage scales each cycle it cuts
    instead of storing a scaled copy of every recording. RMS normalization can take peaks
    above 0 dBFS; the samples stay float32, so nothing is clipped. A gain of 0 dB multiplies
    by exactly 1: the samples come back unchanged."""
    return (np.asarray(samples, dtype=np.float64) * 10 ** (gain_db / 20)).astype(np.float32)


def normalize(samples: np.ndarray, method: NormalizeMethod, target_dbfs: float) -> tuple[np.ndarray, float]:
    """Scale `samples` (time,) so that their `method` level is `target_dbfs` (`gain_db_for`,
    then `apply_gain`). Returns the scaled float32 signal and the gain in dB applied."""
    gain_db = gain_db_for(samples, method, target_dbfs)
    return apply_gain(samples, gain_db), gain_db


def write_gains(folder: Path, stems: list[str], gains_db: list[float]) -> None:
    """The gains file of `folder`: each recording's stem and gain, written exactly (repr)."""
    write_csv(folder / GAINS_FILE, [{"stem": stem, "gain_db": repr(g)} for stem, g in zip(stems, gains_db)])


def read_gains(folder: Path, stems: list[str]) -> list[float]:
    """The gains (dB) of `folder`'s gains file, checked to be for `stems`, in that order."""
    path = folder / GAINS_FILE
    rows = read_csv(path)
    if [r["stem"] for r in rows] != stems:
        raise DamagedArtifactError(
            f"{path}: its recordings are not the resampled store's ({len(rows)} rows for {len(stems)} recordings): "
            "rerun the normalize stage"
        )
    return [float(r["gain_db"]) for r in rows]
