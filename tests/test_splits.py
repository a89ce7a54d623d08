"""Train/val/test assignment: patient-disjointness, stratification, determinism."""

import numpy as np
import pytest

from respiro.core.config import SplitParams
from respiro.data.splits import assign_folds, assign_parts, group_split, held_out_masks


def corpus(n_patients=30, seed=0):
    rng = np.random.default_rng(seed)
    patients, labels = [], []
    for p in range(n_patients):
        n = rng.integers(5, 40)
        tendency = rng.dirichlet([4, 2, 1, 0.5])
        patients += [100 + p] * n
        labels += list(rng.choice(4, size=n, p=tendency))
    official = np.where(np.array(patients) % 5 < 2, "test", "train")
    # Patient ids are strings, as the manifest holds them (a database's own: 101, BP1).
    return np.array([str(p) for p in patients]), np.array(labels), official


def split(method, **kw):
    """The split params: `method` and defaults, overridden by `kw`."""
    base = dict(method=method, test_fraction=0.3, folds_file=None, n_folds=5, fold=0, seed=0)
    return SplitParams(**{**base, **kw})


def parts_of(patients, labels, official, settings, val_fraction=0.2):
    """Every cycle's part as the train stage assigns it: held_out_masks, then assign_parts."""
    test, excluded = held_out_masks(patients, labels, official, settings)
    return assign_parts(patients, labels, test, excluded, val_fraction, settings.seed)


def test_official_split_follows_the_split_file_and_excludes_unnamed_recordings():
    patients, labels, official = corpus()
    official[:3] = ""
    parts = parts_of(patients, labels, official, split("official"))
    assert (parts[:3] == "excluded").all()
    assert ((parts == "test") == (official == "test")).all()
    assert set(parts[official == "train"]) == {"train", "val"}


@pytest.mark.parametrize("method", ["patient", "folds"])
def test_patient_methods_keep_patients_on_one_side(method):
    patients, labels, official = corpus()
    parts = parts_of(patients, labels, official, split(method))
    for part_a, part_b in [("train", "test"), ("train", "val"), ("val", "test")]:
        assert not set(patients[parts == part_a]) & set(patients[parts == part_b])


def test_group_split_is_stratified_and_seeded():
    patients, labels, _ = corpus(60)
    held = group_split(patients, labels, 0.3, seed=1)
    for c in range(4):
        share = (held & (labels == c)).sum() / (labels == c).sum()
        assert 0.2 < share < 0.4
    assert np.array_equal(held, group_split(patients, labels, 0.3, seed=1))
    assert not np.array_equal(held, group_split(patients, labels, 0.3, seed=2))


def test_random_split_is_cycle_level_and_stratified():
    patients, labels, official = corpus()
    parts = parts_of(patients, labels, official, split("random"))
    test = parts == "test"
    assert abs(test.mean() - 0.3) < 0.01
    for c in range(4):
        assert abs(test[labels == c].mean() - 0.3) < 0.05


def test_folds_cover_every_patient_once(tmp_path):
    patients, labels, official = corpus()
    folds = assign_folds(patients, labels, 5, seed=0)
    assert set(folds) == set(np.unique(patients)) and set(folds.values()) == set(range(5))
    tested = set()
    for fold in range(5):
        parts = parts_of(patients, labels, official, split("folds", fold=fold))
        tested |= set(patients[parts == "test"])
    assert tested == set(np.unique(patients))
    # A user's fold file: patients it does not list are excluded, not silently trained on.
    fold_file = tmp_path / "folds.txt"
    fold_file.write_text("".join(f"{p} {i % 2}\n" for i, p in enumerate(np.unique(patients)[:-1])))
    parts = parts_of(patients, labels, official, split("folds", folds_file=str(fold_file), n_folds=2, fold=1))
    assert (parts[patients == np.unique(patients)[-1]] == "excluded").all()
    assert set(patients[parts == "test"]) == set(np.unique(patients)[1:-1:2])


def test_patient_ids_need_not_be_numbers():
    """KAUH's BP1 or a lab's own ids split as ICBHI's numbers do: by the patients, whole."""
    patients, labels, official = corpus()
    named = np.array([f"BP{p}" for p in patients])
    for method in ("patient", "folds"):
        parts = parts_of(named, labels, official, split(method))
        assert (parts == parts_of(patients, labels, official, split(method))).all()
        assert not set(named[parts == "test"]) & set(named[np.isin(parts, ("train", "val"))])


def test_real_patient_folds_file(icbhi_metadata):
    from respiro.data.icbhi import read_patient_folds

    folds = read_patient_folds(icbhi_metadata / "patient_list_foldwise.txt")
    assert len(folds) == 126 and set(folds.values()) == {0, 1, 2, 3, 4}
