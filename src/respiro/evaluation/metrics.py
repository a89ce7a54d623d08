"""The ICBHI challenge's scores, from a 4x4 confusion matrix (rows true, columns predicted).

Classes in order Normal, Crackle, Wheeze, Both (src.icbhi.CLASS_NAMES):
- SE = abnormal cycles (Crackle, Wheeze, Both) predicted as their own class / abnormal cycles
- SP = Normal cycles predicted Normal / Normal cycles
- ICBHI score = (SE + SP) / 2; accuracy = trace / total
The two-class view the literature quotes beside it counts an abnormal cycle as detected when
it is predicted as any abnormal class (SP is the same).

A score whose denominator is empty (no abnormal cycle in the test set, say) is None rather
than 0 or 1: neither number would be true. JSON writes it as null.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics

from respiro.core.config import CLASS_NAMES


def confusion_matrix(true: ArrayLike, pred: ArrayLike, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts (n_classes, n_classes) int64, rows true, columns predicted (scikit-learn's).

    Labels outside 0..n_classes-1 raise ValueError (scikit-learn would drop them silently);
    no cycles give a matrix of zeros (scikit-learn would raise).
    """
    t, p = np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"true and pred differ in shape: {t.shape} vs {p.shape}")
    if not t.size:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return metrics.confusion_matrix(t, p, labels=np.arange(n_classes)).astype(np.int64)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _mean(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2


def icbhi_scores(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, SE, SP, ICBHI score, their two-class versions, per-class recall and counts."""
    cm = np.asarray(cm, dtype=np.int64)
    total = int(cm.sum())
    diag = np.diag(cm)
    abnormal = int(cm[1:].sum())
    se = _ratio(diag[1:].sum(), abnormal)
    sp = _ratio(cm[0, 0], cm[0].sum())
    se_binary = _ratio(cm[1:, 1:].sum(), abnormal)
    return {
        "accuracy": _ratio(diag.sum(), total),
        "se": se,
        "sp": sp,
        "icbhi_score": _mean(se, sp),
        "binary": {"se": se_binary, "sp": sp, "icbhi_score": _mean(se_binary, sp)},
        "recall": {name: _ratio(diag[i], cm[i].sum()) for i, name in enumerate(CLASS_NAMES)},
        "support": {name: int(cm[i].sum()) for i, name in enumerate(CLASS_NAMES)},
        "cycles": total,
    }


def scores_of(true: ArrayLike, pred: ArrayLike) -> dict[str, Any]:
    return icbhi_scores(confusion_matrix(true, pred))
