"""The test set and what the model said of it, as two records: the corpus with its split
(`SplitCorpus`) and the predictions on its test cycles (`CyclePredictions`).

The evaluate stage makes the predictions and writes them as data/reports/test_predictions.csv
(`prediction_rows`); the errors stage reads them back (`predictions_from_rows`) instead of
running the network over the test set a second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SplitCorpus:
    """Every cycle of the corpus (the stft stage's manifest rows) and the part of the split
    each is in (`train`, `val` or `test`, from the train stage's split.csv)."""

    cycles: Sequence[Mapping[str, str]]
    parts: np.ndarray

    @classmethod
    def from_split(cls, cycles: Sequence[Mapping[str, str]], split: Sequence[Mapping[str, str]]) -> SplitCorpus:
        """Pair the manifest with split.csv's rows, which are in the manifest's order;
        ValueError when they cannot be the same cycles."""
        if len(split) != len(cycles):
            raise ValueError(f"the split has {len(split)} rows but the corpus {len(cycles)} cycles")
        return cls(cycles, np.array([row["part"] for row in split]))

    @property
    def test(self) -> np.ndarray:
        """Positions of the test cycles, in the manifest's order."""
        return np.flatnonzero(self.parts == "test")

    def column(self, key: str, positions: np.ndarray | None = None) -> np.ndarray:
        """A manifest column (e.g. `patient`) for `positions`, or for every cycle."""
        chosen = range(len(self.cycles)) if positions is None else positions.tolist()
        return np.array([self.cycles[i][key] for i in chosen])


@dataclass(frozen=True)
class CyclePredictions:
    """The model's answers on the test cycles, in the manifest's order: `test` their positions
    in the corpus, `true` and `pred` class indices, `probs` (n, C) the class probabilities."""

    test: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.test) == len(self.true) == len(self.pred) == len(self.probs)):
            raise ValueError(
                f"test {len(self.test)}, true {len(self.true)}, pred {len(self.pred)} and probs "
                f"{len(self.probs)} differ in length"
            )


def prediction_rows(
    predictions: CyclePredictions, corpus: SplitCorpus, class_names: Sequence[str]
) -> list[dict[str, str]]:
    """One row per test cycle: where it lies, its annotated and predicted class, and the
    probability of each of `class_names` (6 decimals)."""
    rows = []
    for n, i in enumerate(predictions.test.tolist()):
        cycle = corpus.cycles[i]
        rows.append(
            {
                "recording": cycle["recording"],
                "patient": cycle["patient"],
                "start": cycle["start"],
                "end": cycle["end"],
                "device": cycle["device_corrected"],
                "true_label": class_names[predictions.true[n]],
                "predicted_label": class_names[predictions.pred[n]],
                **{f"p_{name}": f"{predictions.probs[n, c]:.6f}" for c, name in enumerate(class_names)},
            }
        )
    return rows


def predictions_from_rows(
    rows: Sequence[Mapping[str, str]], corpus: SplitCorpus, class_names: Sequence[str]
) -> CyclePredictions:
    """`prediction_rows` read back: ValueError naming the first row that is not the corpus's
    next test cycle or names a class outside `class_names` (the rows come from another run)."""
    test = corpus.test
    if len(rows) != len(test):
        raise ValueError(f"{len(rows)} predictions but the split has {len(test)} test cycles")
    missing = [f"p_{name}" for name in class_names if rows and f"p_{name}" not in rows[0]]
    if missing:
        raise ValueError(f"no column {', '.join(missing)}: the predictions are of other classes")
    index = {name: c for c, name in enumerate(class_names)}
    true, pred = [], []
    for n, (row, i) in enumerate(zip(rows, test.tolist()), 1):
        cycle = corpus.cycles[i]
        if any(row[key] != cycle[key] for key in ("recording", "start", "end")):
            raise ValueError(
                f"row {n} is {row['recording']} {row['start']}-{row['end']} s, but the split's test cycle "
                f"{n} is {cycle['recording']} {cycle['start']}-{cycle['end']} s"
            )
        for key in ("true_label", "predicted_label"):
            if row[key] not in index:
                raise ValueError(f"row {n}: {key} {row[key]!r} is not one of {', '.join(class_names)}")
        true.append(index[row["true_label"]])
        pred.append(index[row["predicted_label"]])
    probs = np.array([[float(row[f"p_{name}"]) for name in class_names] for row in rows], np.float64)
    return CyclePredictions(test, np.array(true, np.int64), np.array(pred, np.int64), probs.reshape(len(rows), -1))
