"""What the train and evaluate stages learn from and score on, checked in process.

- Under the default `split.method: official`, validation patients are disjoint from the
  training patients.
- The input standardization (per frequency bin, streamed in chunks) equals numpy's on the
  training rows, and only on them.
- The train stage keeps the epoch with the best *validation* score: it validates on the
  validation cycles only, never touches the test cycles, and stores that epoch.
- Per-device scores are each device's own cycles scored alone.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from respiro.core.config import SplitParams
from respiro.core.schemes import SCHEMES
from respiro.data.dataset import MANIFEST, SPECTROGRAMS, frequency_stats
from respiro.data.splits import assign_parts, held_out_masks
from respiro.evaluation.metrics import scores_of
from respiro.evaluation.reports import per_group_scores
from tests.conftest import ROOT

FOUR = SCHEMES["four"].classes


def official_corpus(n_patients: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cycles of patients 100.., each on one official side, with a mix of classes."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(100 + np.arange(n_patients), rng.integers(4, 12, n_patients))
    labels = rng.integers(0, 4, len(patients))
    official = np.where(patients % 3 == 0, "test", "train")
    return patients, labels, official


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_official_split_validation_is_patient_disjoint_from_training(seed: int) -> None:
    patients, labels, official = official_corpus(seed=seed)
    split = SplitParams(method="official", test_fraction=0.3, folds_file=None, n_folds=5, fold=0, seed=seed)
    test, excluded = held_out_masks(patients, labels, official, split)
    parts = assign_parts(patients, labels, test, excluded, 0.2, seed)
    train, val, test = (set(patients[parts == p].tolist()) for p in ("train", "val", "test"))
    assert val and train
    assert not train & val
    assert not (train | val) & test
    assert set(np.flatnonzero(parts == "val")) <= set(np.flatnonzero(official == "train"))


def test_streamed_frequency_stats_are_numpys_on_the_given_rows_only() -> None:
    rng = np.random.default_rng(0)
    specs = rng.normal(3.0, 2.0, (11, 5, 7)).astype(np.float32)  # (N, F, T)
    rows = np.array([9, 0, 4, 7, 2, 5, 1])  # unsorted, as a shuffled split gives them
    specs[[3, 6, 8, 10]] = 1e6  # rows outside the index must not count
    mean, std = frequency_stats(specs, rows, chunk=3)  # 3 chunks, the last one short
    chosen = specs[rows].astype(np.float64)
    np.testing.assert_allclose(mean, chosen.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, chosen.std(axis=(0, 2)), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (5,)


def test_per_device_scores_are_each_devices_cycles_alone() -> None:
    true = np.array([0, 0, 1, 2, 0, 3, 3, 0, 1])
    pred = np.array([0, 1, 1, 0, 0, 3, 0, 0, 1])
    devices = np.array(["A", "A", "A", "A", "B", "B", "B", "C", "C"])
    per_device = per_group_scores(true, pred, devices, FOUR)
    assert list(per_device) == ["A", "B", "C"]
    for device, scores in per_device.items():
        alone = scores_of(true[devices == device], pred[devices == device], FOUR)
        assert scores["cycles"] == int((devices == device).sum())
        for key in ("accuracy", "se", "sp", "icbhi_score"):
            assert scores[key] == alone[key], (device, key)
    # A: Normal 1/2 right, abnormal 1/2 right -> SE .5, SP .5; B: SP 1, SE 1/2; C: all right.
    assert (per_device["A"]["se"], per_device["A"]["sp"]) == (0.5, 0.5)
    assert (per_device["B"]["se"], per_device["B"]["sp"]) == (0.5, 1.0)
    assert per_device["C"]["icbhi_score"] == 1.0


def write_spectrograms(folder, patients, labels, official) -> None:
    """The stft stage's output format: spectrograms.npy (N, F, T) of 16 bins and 12 frames,
    and the cycle manifest."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    specs = rng.normal(0, 1, (len(labels), 16, 12)).astype(np.float32)
    specs += labels[:, None, None].astype(np.float32)  # learnable, barely
    np.save(folder / SPECTROGRAMS, specs)
    with (folder / MANIFEST).open("w", newline="") as f:
        writer = csv.DictWriter(f, ["recording", "patient", "label", "official_split", "seconds"])
        writer.writeheader()
        for i, (p, y, o) in enumerate(zip(patients, labels, official, strict=True)):
            writer.writerow(
                {"recording": f"{p}_rec{i % 3}", "patient": p, "label": y, "official_split": o, "seconds": 2.0}
            )


def test_train_stage_keeps_the_best_validation_epoch_and_never_sees_test(tmp_path, monkeypatch) -> None:
    import stages.pretrained as pretrained_stage
    import stages.train as train_stage

    patients, labels, official = official_corpus()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(arch="resnet18")
    params["train"].update(epochs=3, batch_size=8, device="cpu", precision="fp32", processes=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_spectrograms(tmp_path / "data" / "spectrograms", patients, labels, official)
    monkeypatch.chdir(tmp_path)

    loaded, stats_rows, scored = [], [], []
    real_held, real_stats = train_stage.HeldCycles.load, train_stage.input_stats
    monkeypatch.setattr(  # on the class: a plain function there is called unbound, as HeldCycles.load is
        train_stage.HeldCycles,
        "load",
        lambda cycles, *a, **k: (loaded.append(np.array(cycles.index)), real_held(cycles, *a, **k))[1],
    )
    monkeypatch.setattr(
        train_stage,
        "input_stats",
        lambda specs, index, how: (stats_rows.append(np.array(index)), real_stats(specs, index, how))[1],
    )
    # Validation scores scripted per epoch: epoch 2 is the best, and the last is not.
    scripted = iter([0.55, 0.80, 0.70])

    def fake_scores(true, pred, class_names):
        scored.append(np.array(true))
        score = next(scripted)
        return {"accuracy": score, "se": score, "sp": score, "icbhi_score": score}

    import respiro.training.fit as fit_module

    monkeypatch.setattr(fit_module, "scores_of", fake_scores)
    pretrained_stage.main()  # model.pretrained: none, the record train reads
    train_stage.main()

    with open("models/split.csv") as f:
        parts = np.array([row["part"] for row in csv.DictReader(f)])
    val, test, train = (np.flatnonzero(parts == p) for p in ("val", "test", "train"))
    assert len(test) and len(val)
    # The cycles held on the device: the training split (TrainBatches.load), then the
    # validation split, never a test cycle; each epoch is scored against the validation
    # labels; the standardization comes from the training cycles.
    assert len(loaded) == 2 and np.array_equal(np.sort(loaded[0]), train) and np.array_equal(np.sort(loaded[1]), val)
    assert len(scored) == 3 and all(np.array_equal(np.sort(t), np.sort(labels[val])) for t in scored)
    assert len(stats_rows) == 1 and np.array_equal(np.sort(stats_rows[0]), train)
    report = json.loads(open("data/reports/train.json").read())
    assert report["checkpoint_epoch"] == 2 and report["val_icbhi_score"] == 0.80
    import torch

    checkpoint = torch.load("models/model.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and checkpoint["val_scores"]["icbhi_score"] == 0.80
