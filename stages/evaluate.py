"""Stage evaluate: the trained model on the test cycles, scored as the ICBHI challenge does.

models/model.pt + models/split.csv + data/spectrograms -> metrics/eval/ (DVCLive: the scores
a user compares, and the confusion matrix as a plot), data/reports/evaluation.json (every
figure, the confusion counts and what produced them), data/reports/test_predictions.csv (one
row per test cycle with its probabilities).
"""

from pathlib import Path

import numpy as np

from respiro.core.errors import StageError
from respiro.core.cli import run_stage
from respiro.data.dataset import cycle_loader, load_spectrograms
from respiro.evaluation.reports import DETAILS, PREDICTIONS, init_summary, patients_on_both_sides, per_group_scores
from respiro.data.icbhi import CLASS_NAMES
from respiro.training.checkpoint import load_checkpoint
from respiro.evaluation.metrics import confusion_matrix, icbhi_scores
from respiro.core.outputs import StageTimer, read_csv, write_csv, write_json
from respiro.core.config import load_params
from respiro.core.tracking import EVAL_DIR, log_test_results, open_live
from respiro.training.loop import predict
from respiro.training.device import resolve_device

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")


def headline_metrics(scores: dict, per_device: dict, origin: dict, checkpoint: dict) -> dict[str, object]:
    """What `dvc metrics show` and `dvc exp show` list, most important first: the four ICBHI
    figures, the two-class score, the checkpoint's epoch and validation score, per-class
    recall, the score per device, which data and initial weights produced them (every detail is in
    data/reports/evaluation.json)."""
    return {
        **{k: scores[k] for k in ("icbhi_score", "se", "sp", "accuracy")},
        "binary_score": scores["binary"]["icbhi_score"],
        "checkpoint_epoch": int(checkpoint["epoch"]),
        "val_score": checkpoint["val_scores"]["icbhi_score"],
        "recall": scores["recall"],
        "device_score": {device: s["icbhi_score"] for device, s in per_device.items()},
        "data": "synthetic (not ICBHI)" if origin["synthetic_data"] else origin["data_source"],
        "init": init_summary(origin),
    }


def main() -> None:
    timer = StageTimer("evaluate")
    params = load_params()
    device = resolve_device(params.train.device)
    # Checked (keys, class names, params, weight shapes) and loaded with weights_only=True:
    # a checkpoint is data, never code to run; a foreign one stops with one line naming it.
    loaded = load_checkpoint(MODEL, device)
    checkpoint, model = loaded.checkpoint, loaded.model

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
    per_device = per_group_scores(true, pred, devices)
    origin = loaded.provenance
    write_json(
        DETAILS,
        {
            **{k: scores[k] for k in ("accuracy", "se", "sp", "icbhi_score")},
            "binary": scores["binary"],
            "recall": scores["recall"],
            "support": scores["support"],
            "cycles": scores["cycles"],
            "confusion_matrix": {"rows_true_cols_predicted": list(CLASS_NAMES), "counts": cm.tolist()},
            "per_device": per_device,
            "test_patients": int(len(np.unique(patients[test]))),
            "patients_in_train_and_test": patients_on_both_sides(patients, parts),
            "checkpoint_epoch": int(checkpoint["epoch"]),
            **origin,
        },
    )
    live = open_live(EVAL_DIR)
    log_test_results(live, headline_metrics(scores, per_device, origin, checkpoint), [CLASS_NAMES[c] for c in true], [CLASS_NAMES[c] for c in pred])
    live.end()
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
        f"ICBHI score {fmt(scores['icbhi_score'])} ({origin['data_source']})"
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
