"""Which test cycles the model got wrong, bounded: the most confident errors per confusion cell.

A page of every error would grow with the test set; the errors a reader learns most from
are the confident ones (the model was sure and wrong), so each off-diagonal cell of the
confusion matrix keeps its `per_cell` errors of highest predicted probability.
"""

from __future__ import annotations

import numpy as np


def most_confident_errors(
    true: np.ndarray, pred: np.ndarray, probs: np.ndarray, per_cell: int
) -> dict[tuple[int, int], list[int]]:
    """`{(true class, predicted class): positions}` for every cell with an error: at most
    `per_cell` positions into `true`/`pred`/`probs (n, C)`, highest `probs[i, pred[i]]`
    first (ties in input order)."""
    if not (true.shape == pred.shape == probs.shape[:1]):
        raise ValueError(f"true {true.shape}, pred {pred.shape} and probs {probs.shape} differ in length")
    if per_cell < 0:
        raise ValueError(f"per_cell must be >= 0; got {per_cell}")
    wrong = np.flatnonzero(true != pred)
    confidence = probs[wrong, pred[wrong]]
    ordered = wrong[np.argsort(-confidence, kind="stable")]
    cells: dict[tuple[int, int], list[int]] = {}
    for i in ordered.tolist():
        kept = cells.setdefault((int(true[i]), int(pred[i])), [])
        if len(kept) < per_cell:
            kept.append(i)
    return {cell: kept for cell, kept in sorted(cells.items()) if kept}
