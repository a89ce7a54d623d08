"""Stage evaluate: the trained model on the test cycles, scored as its class scheme's challenge
does (ICBHI score; SPRSound's SE, SP, AS, HS), each official test part also on its own.

models/model.pt + models/split.csv + data/spectrograms -> metrics/eval/ (DVCLive: the scores
a user compares, and the confusion matrix as a plot), data/reports/evaluation.json (every
figure, the confusion counts and what produced them), data/reports/test_predictions.csv (one
row per test cycle with its probabilities).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("evaluate", __doc__, kernels=True)  # --help answers, the kernels are set, before torch loads

from pathlib import Path

import numpy as np

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import StageTimer, read_csv, write_csv, write_json
from respiro.core.schemes import get_scheme
from respiro.core.tracking import EVAL_DIR, log_test_results, open_live
from respiro.data.dataset import cycle_loader, load_spectrograms
from respiro.evaluation.reports import DETAILS, PREDICTIONS, evaluation_details, headline_metrics, prediction_rows
from respiro.training.checkpoint import load_checkpoint
from respiro.training.device import resolve_device, use_model_kernels
from respiro.training.loop import predict

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")


def main() -> None:
    timer = StageTimer("evaluate")
    params = load_params()
    device = resolve_device(params.train.device)
    # Checked (keys, class names, params, weight shapes) and loaded with weights_only=True:
    # a checkpoint is data, never code to run; a foreign one stops with one line naming it.
    loaded = load_checkpoint(MODEL, device)
    checkpoint = loaded.checkpoint
    kernels = use_model_kernels(loaded.kernels) if device.type == "cpu" else {"kernels": "cuda"}
    scheme = get_scheme(params.classes.scheme)
    if loaded.class_names != scheme.classes:
        raise StageError(
            f"{MODEL} predicts {', '.join(loaded.class_names)}, not classes.scheme {scheme.name} "
            f"({', '.join(scheme.classes)}): rerun the train stage"
        )

    specs, rows = load_spectrograms(SPECS)
    split = read_csv(SPLIT)
    if len(split) != len(rows):
        raise StageError(f"{SPLIT} has {len(split)} rows but {SPECS} {len(rows)} cycles: rerun the train stage")
    parts = np.array([r["part"] for r in split])
    labels = np.array([int(r["label"]) for r in rows])
    test = np.flatnonzero(parts == "test")
    loader = cycle_loader(specs, labels, test, loaded.mean, loaded.std, params.evaluate.batch_size, device=device)
    probs, true = predict(loaded.model, loader, device)
    pred = probs.argmax(1)
    devices = np.array([rows[i]["device_corrected"] for i in test])
    patients = np.array([int(r["patient"]) for r in rows])
    # Each official test part scored alone (SPRSound: test_inter, test_intra), where the split is the official one.
    official = np.array([rows[i]["official_split"] for i in test]) if params.split.method == "official" else None
    details = evaluation_details(
        true, pred, devices, patients, parts, checkpoint["epoch"], loaded.provenance, scheme, official
    )
    write_json(DETAILS, {**details, **kernels})
    live = open_live(EVAL_DIR)
    log_test_results(
        live,
        headline_metrics(details, checkpoint["val_scores"]["icbhi_score"]),
        [scheme.classes[c] for c in true],
        [scheme.classes[c] for c in pred],
    )
    live.end()
    write_csv(PREDICTIONS, prediction_rows(rows, test, true, pred, probs, scheme.classes))
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    # The scheme's challenge names the mean of SE and SP: the ICBHI score, or SPRSound's AS (with HS).
    score = "AS" if scheme.scores == "sprsound" else "ICBHI score"

    def scores(s: dict) -> str:
        return f"{score} {fmt(s['icbhi_score'])}" + (f", HS {fmt(s['hs'])}" if "hs" in s else "")

    timer.done(
        f"{len(test)} test cycles: accuracy {fmt(details['accuracy'])}, SE {fmt(details['se'])}, SP {fmt(details['sp'])}, "
        + scores(details)
        + "".join(f"; {part}: {scores(s)}" for part, s in details.get("per_official_part", {}).items())
        + f" ({details['database']}, {scheme.name} classes, {details['data_source']})"
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
