"""Volume normalization per recording (the paper's step 2)."""

from __future__ import annotations

import numpy as np


def level_dbfs(samples: np.ndarray, method: str) -> float:
    """Level of a signal in dB full scale: its RMS (`rms`) or its largest |sample| (`peak`).

    Returns -inf for a silent signal.
    """
    x = np.asarray(samples, dtype=np.float64)
    value = np.sqrt(np.mean(x * x)) if method == "rms" else np.max(np.abs(x))
    return float(20 * np.log10(value)) if value > 0 else float("-inf")


def normalize(samples: np.ndarray, method: str, target_dbfs: float) -> tuple[np.ndarray, float]:
    """Scale `samples` (time,) so that their `method` level is `target_dbfs`.

    `method` is `rms`, `peak` or `none`. Returns the scaled float32 signal and the gain in
    dB that was applied. A silent signal has no level to scale to: it is returned as it is
    with gain 0 (the caller reports it), never divided by zero. RMS normalization can take
    peaks above 0 dBFS; the samples stay float32, so nothing is clipped.
    """
    if method == "none":
        return np.asarray(samples, dtype=np.float32), 0.0
    level = level_dbfs(samples, method)
    if not np.isfinite(level):
        return np.asarray(samples, dtype=np.float32), 0.0
    gain_db = target_dbfs - level
    return (np.asarray(samples, dtype=np.float64) * 10 ** (gain_db / 20)).astype(np.float32), gain_db
