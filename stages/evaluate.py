"""Stage evaluate: the trained model on the test cycles, scored as the ICBHI challenge does.

models/model.pt + models/split.csv + data/spectrograms -> metrics/eval.json,
metrics/predictions.csv (one row per test cycle; also the confusion-matrix plot).
"""

from pathlib import Path

import numpy as np
import torch

from src.cli import StageError, run_stage
from src.dataset import cycle_loader, load_spectrograms
from src.evaluation import patients_on_both_sides, per_group_scores, provenance
from src.icbhi import CLASS_NAMES
from src.metrics import confusion_matrix, icbhi_scores
from src.model import build_model
from src.outputs import StageTimer, read_csv, write_csv, write_json
from src.params import load_params
from src.training import predict, resolve_device

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")
METRICS, PREDICTIONS = Path("metrics/eval.json"), Path("metrics/predictions.csv")


def main() -> None:
    timer = StageTimer("evaluate")
    params = load_params()
    device = resolve_device(params.train.device)
    # weights_only: a checkpoint is data, never code to run.
    checkpoint = torch.load(MODEL, map_location="cpu", weights_only=True)
    trained = checkpoint["params"]
    model = build_model(trained["model"]["depth"], trained["model"]["cbam"], trained["model"]["cbam_reduction"], len(checkpoint["class_names"]))
    model.load_state_dict(checkpoint["state_dict"])
    model = model.to(device).to(memory_format=torch.channels_last)

    specs, rows = load_spectrograms(SPECS)
    split = read_csv(SPLIT)
    if len(split) != len(rows):
        raise StageError(f"{SPLIT} has {len(split)} rows but {SPECS} {len(rows)} cycles: rerun the train stage")
    parts = np.array([r["part"] for r in split])
    labels = np.array([int(r["label"]) for r in rows])
    test = np.flatnonzero(parts == "test")
    mean, std = checkpoint["input_mean"].numpy(), checkpoint["input_std"].numpy()
    loader = cycle_loader(specs, labels, test, mean, std, params.evaluate.batch_size, device=device)
    probs, true = predict(model, loader, device)
    pred = probs.argmax(1)
    cm = confusion_matrix(true, pred)
    devices = np.array([rows[i]["device_corrected"] for i in test])
    patients = np.array([int(r["patient"]) for r in rows])
    scores = icbhi_scores(cm)
    write_json(
        METRICS,
        {
            **{k: scores[k] for k in ("accuracy", "se", "sp", "icbhi_score")},
            "binary": scores["binary"],
            "recall": scores["recall"],
            "support": scores["support"],
            "cycles": scores["cycles"],
            "confusion_matrix": {"rows_true_cols_predicted": list(CLASS_NAMES), "counts": cm.tolist()},
            "per_device": per_group_scores(true, pred, devices),
            "test_patients": int(len(np.unique(patients[test]))),
            "patients_in_train_and_test": patients_on_both_sides(patients, parts),
            "checkpoint_epoch": int(checkpoint["epoch"]),
            **provenance(trained),
        },
    )
    write_csv(
        PREDICTIONS,
        [
            {
                "recording": rows[i]["recording"],
                "patient": rows[i]["patient"],
                "start": rows[i]["start"],
                "end": rows[i]["end"],
                "device": rows[i]["device_corrected"],
                "true_label": CLASS_NAMES[true[n]],
                "predicted_label": CLASS_NAMES[pred[n]],
                **{f"p_{name}": f"{probs[n, c]:.6f}" for c, name in enumerate(CLASS_NAMES)},
            }
            for n, i in enumerate(test)
        ],
    )
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    timer.done(
        f"{len(test)} test cycles: accuracy {fmt(scores['accuracy'])}, SE {fmt(scores['se'])}, SP {fmt(scores['sp'])}, "
        f"ICBHI score {fmt(scores['icbhi_score'])} ({provenance(trained)['data_source']})"
    )


if __name__ == "__main__":
    run_stage("evaluate", main)
