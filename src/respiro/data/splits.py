"""Which cycles train the model, which choose its epoch, and which score it.

Computed from the cycle manifest and `split:` params alone, so changing the split redoes no
audio work. Every function is deterministic given its seed.

Parts: `train`, `val` (held out of the training portion to choose the checkpoint), `test`
(never used for training or choosing), and `excluded` (a cycle the method cannot place, e.g.
a recording the official split file does not name; counted in the train metrics).

Patients are id strings (a database's own: ICBHI's `101`, KAUH's `BP1`): compared, never
counted on. Labels are class indices of any class scheme (0..C-1); a database's official parts are
`train` and `test` or `test_<part>` (SPRSound: test_inter, test_intra), all tested on.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_never

import numpy as np
from sklearn.model_selection import train_test_split

from respiro.core.config import SplitParams
from respiro.core.errors import StageError
from respiro.data.icbhi import read_patient_folds

PARTS = ("train", "val", "test", "excluded")


def _n_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if len(labels) else 1


def _class_counts(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.bincount(labels[mask], minlength=_n_classes(labels)).astype(float)


def group_split(patients: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of cycles whose patients form the held-out side, about `fraction` of the
    cycles of every class.

    Greedy: patients in a seeded random order; each joins the held-out side if that brings
    its per-class counts closer to `fraction` of the totals (L1). Whole patients move, so
    no patient is on both sides.
    """
    rng = np.random.default_rng(seed)
    target = fraction * _class_counts(labels, np.ones(len(labels), bool))
    held = np.zeros(len(labels), dtype=bool)
    counts = np.zeros(_n_classes(labels))
    for patient in rng.permutation(np.unique(patients)):
        mask = patients == patient
        extra = _class_counts(labels, mask)
        if np.abs(counts + extra - target).sum() < np.abs(counts - target).sum():
            held |= mask
            counts += extra
    return held


def assign_folds(patients: np.ndarray, labels: np.ndarray, n_folds: int, seed: int) -> dict[str, int]:
    """Seeded patient folds of about equal size per class: {patient id: fold}."""
    rng = np.random.default_rng(seed)
    fold_counts = np.zeros((n_folds, _n_classes(labels)))
    folds: dict[str, int] = {}
    unique = np.unique(patients)
    # Largest patients first, each to the fold that is currently smallest in its classes.
    sizes = {p: _class_counts(labels, patients == p) for p in unique}
    order = sorted(rng.permutation(unique), key=lambda p: -sizes[p].sum())
    for patient in order:
        weighted = (fold_counts * (sizes[patient] > 0)).sum(axis=1) + fold_counts.sum(axis=1) * 1e-3
        fold = int(np.argmin(weighted))
        folds[str(patient)] = fold
        fold_counts[fold] += sizes[patient]
    return folds


def held_out_masks(
    patients: np.ndarray, labels: np.ndarray, official: np.ndarray, split: SplitParams
) -> tuple[np.ndarray, np.ndarray]:
    """(test, excluded) boolean masks over cycles for `split.method`: `official` (the
    official part of each cycle's recording: `train`, `test` or `test_<part>`; anything else,
    e.g. "" for a recording the split file does not name, is excluded), `patient` and
    `random` (`split.test_fraction` of the cycles), `folds` (fold `split.fold` of
    `split.n_folds`, or of `split.folds_file`)."""
    n = len(labels)
    excluded = np.zeros(n, dtype=bool)
    method = split.method
    if method == "official":
        test = np.array([side == "test" or side.startswith("test_") for side in official.tolist()], dtype=bool)
        return test, ~test & (official != "train")
    if method == "patient":
        return group_split(patients, labels, split.test_fraction, split.seed), excluded
    if method == "folds":
        folds = (
            read_patient_folds(Path(split.folds_file))
            if split.folds_file
            else assign_folds(patients, labels, split.n_folds, split.seed)
        )
        fold_of = np.array([folds.get(str(p), -1) for p in patients])
        return fold_of == split.fold, fold_of < 0
    if method != "random":
        assert_never(method)
    _, test_index = train_test_split(
        np.arange(n), test_size=split.test_fraction, random_state=split.seed, stratify=_stratify(labels)
    )
    mask = np.zeros(n, dtype=bool)
    mask[test_index] = True
    return mask, excluded


def _stratify(labels: np.ndarray) -> np.ndarray | None:
    """Labels to stratify by, or None where a class has a single cycle (sklearn cannot)."""
    counts = np.bincount(labels)
    return labels if counts[counts > 0].min() >= 2 else None


def assign_parts(
    patients: np.ndarray, labels: np.ndarray, test: np.ndarray, excluded: np.ndarray, val_fraction: float, seed: int
) -> np.ndarray:
    """The part of every cycle: an array of `train`, `val`, `test` or `excluded`, from
    `held_out_masks`'s (test, excluded) masks. Validation is carved out of the training portion,
    patient-disjoint when it holds at least 4 patients (the greedy group split), else
    stratified by cycle.
    """
    parts = np.full(len(labels), "train", dtype=object)
    parts[test] = "test"
    parts[excluded] = "excluded"
    pool = np.flatnonzero(parts == "train")
    if len(pool) < 2:
        return parts
    val = np.array([], dtype=np.int64)
    if len(np.unique(patients[pool])) >= 4:
        val = pool[group_split(patients[pool], labels[pool], val_fraction, seed)]
    if len(val) == 0 or len(val) == len(pool):
        _, val = train_test_split(pool, test_size=val_fraction, random_state=seed, stratify=_stratify(labels[pool]))
    parts[val] = "val"
    return parts


def split_cycles(cycles: list[dict[str, str]], split: SplitParams, val_fraction: float) -> np.ndarray:
    """The part of every cycle of the manifest `cycles`, as the train stage assigns them:
    held_out_masks, then assign_parts (`val_fraction`: train.val_fraction). Raises
    StageError where the train, val or test part is left empty."""
    labels = np.array([int(c["label"]) for c in cycles])
    patients = np.array([c["patient"] for c in cycles])
    official = np.array([c["official_split"] for c in cycles])
    test, excluded = held_out_masks(patients, labels, official, split)
    parts = assign_parts(patients, labels, test, excluded, val_fraction, split.seed)
    for part in ("train", "val", "test"):
        if not (parts == part).any():
            raise StageError(f"split.method={split.method} leaves no {part} cycles ({len(cycles)} cycles in all)")
    return parts


def part_sizes(cycles: list[dict[str, str]], parts: np.ndarray) -> dict[str, dict[str, int]]:
    """Cycles and patients in every part (PARTS) of the manifest `cycles`: {"cycles": {part:
    count}, "patients": {part: count}}."""
    patients = np.array([c["patient"] for c in cycles])
    return {
        "cycles": {part: int((parts == part).sum()) for part in PARTS},
        "patients": {part: len(np.unique(patients[parts == part])) for part in PARTS},
    }


def split_rows(cycles: list[dict[str, str]], parts: np.ndarray) -> list[dict[str, str]]:
    """models/split.csv: every cycle of the manifest `cycles` with its part."""
    return [
        {"index": str(i), "recording": c["recording"], "patient": c["patient"], "label": c["label"], "part": parts[i]}
        for i, c in enumerate(cycles)
    ]
