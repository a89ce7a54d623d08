"""The challenges' scores, from a C x C confusion matrix (rows true, columns predicted).

Classes in the order of a class scheme (respiro.core.schemes), class 0 the normal one (the
paper's four: Normal, Crackle, Wheeze, Both):
- SE = abnormal cycles (every class but 0) predicted as their own class / abnormal cycles
- SP = normal cycles predicted normal / normal cycles
- ICBHI score = (SE + SP) / 2; accuracy = trace / total
The two-class view the literature quotes beside it counts an abnormal cycle as detected when
it is predicted as any abnormal class (SP is the same).
SPRSound's challenge (BioCAS 2022) defines SE and SP the same way for its event tasks and
scores with their average AS (= the ICBHI score) and harmonic mean HS = 2 SE SP / (SE + SP);
`challenge_scores` adds `as` and `hs` for a scheme scored that way.

A score whose denominator is empty (no abnormal cycle in the test set, say) is None rather
than 0 or 1: neither number would be true. JSON writes it as null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics

from respiro.core.schemes import ScoreKind, scheme_of_classes


def confusion_matrix(true: ArrayLike, pred: ArrayLike, n_classes: int) -> np.ndarray:
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


def _harmonic(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def icbhi_scores(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, SE, SP, ICBHI score, their two-class versions, per-class recall and counts;
    `class_names` names the rows of `cm` (class 0 the normal one)."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"a {cm.shape} confusion matrix for {len(class_names)} classes")
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
        "recall": {name: _ratio(diag[i], cm[i].sum()) for i, name in enumerate(class_names)},
        "support": {name: int(cm[i].sum()) for i, name in enumerate(class_names)},
        "cycles": total,
    }


def challenge_scores(cm: np.ndarray, class_names: Sequence[str], kind: ScoreKind) -> dict[str, Any]:
    """`icbhi_scores`, plus SPRSound's AS and HS where `kind` is `sprsound`."""
    scores = icbhi_scores(cm, class_names)
    if kind == "sprsound":
        scores["as"] = scores["icbhi_score"]
        scores["hs"] = _harmonic(scores["se"], scores["sp"])
    return scores


def scores_of(true: ArrayLike, pred: ArrayLike, class_names: Sequence[str]) -> dict[str, Any]:
    """`challenge_scores` of the scheme whose classes are `class_names`."""
    kind = scheme_of_classes(tuple(class_names)).scores
    return challenge_scores(confusion_matrix(true, pred, len(class_names)), class_names, kind)


def format_score(value: float | None, signed: bool = False) -> str:
    """A score as the project prints it: three decimals (`+` for a difference with `signed`),
    or `n/a` where its denominator was empty."""
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
