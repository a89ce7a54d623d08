"""Stage evaluate: the trained model on the test cycles, scored as its class scheme's challenge
does (ICBHI score; SPRSound's SE, SP, AS, HS), each official test part also on its own.

models/model.pt + models/split.csv + data/spectrograms -> metrics/eval/ (DVCLive: the scores
a user compares, and the confusion matrix as a plot), data/reports/evaluation.json (every
figure, the confusion counts and what produced them), data/reports/test_predictions.csv (one
row per test cycle with its probabilities), data/reports/errors.html (the most confident
wrong test cycles per confusion cell, evaluate.errors_per_cell of each, with their maps and
audio, and the scores per device and patient as pictures).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("evaluate", __doc__, kernels=True)  # --help answers, the kernels are set, before torch loads

from pathlib import Path

import numpy as np

from respiro.audio.segment import CycleTable
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import StageTimer, atomic_file, read_csv, write_csv, write_json
from respiro.core.tracking import EVAL_DIR, log_test_results, open_live
from respiro.data.dataset import CycleSet, cycle_loader, load_spectrograms
from respiro.evaluation.errors import most_confident_errors
from respiro.evaluation.metrics import format_score
from respiro.evaluation.reports import DETAILS, PREDICTIONS, evaluation_details, headline_metrics, prediction_rows
from respiro.inference.errors_page import error_page
from respiro.training.checkpoint import load_checkpoint
from respiro.training.device import resolve_device, use_model_kernels
from respiro.training.prediction import predict

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")
# The audio of the wrong cycles: the resampled recordings and where each cycle lies in them.
RESAMPLED, CYCLES = Path("data/resampled"), Path("data/cycles")
ERRORS = Path("data/reports/errors.html")


def main() -> None:
    timer = StageTimer("evaluate")
    params = load_params()
    device = resolve_device(params.train.device)
    # Checked (keys, class names, params, weight shapes) and loaded with weights_only=True:
    # a checkpoint is data, never code to run; a foreign one stops with one line naming it.
    loaded = load_checkpoint(MODEL, device)
    checkpoint = loaded.checkpoint
    kernels = use_model_kernels(loaded.kernels, device)
    scheme = params.classes.class_scheme()
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
    loader = cycle_loader(
        CycleSet(specs, labels, test, loaded.mean, loaded.std), params.evaluate.batch_size, device=device
    )
    probs, true = predict(loaded.model, loader, device)
    pred = probs.argmax(1)
    devices = np.array([rows[i]["device_corrected"] for i in test])
    patients = np.array([r["patient"] for r in rows])
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
    cells = most_confident_errors(true, pred, probs, params.evaluate.errors_per_cell)
    shown = [n for positions in cells.values() for n in positions]  # positions among the test cycles
    store = AudioStore(RESAMPLED)
    table = CycleTable.open(CYCLES, store)
    audio = {n: table.cut(store, int(test[n]), 1)[0] for n in shown}
    spectrograms = {n: np.asarray(specs[test[n]]) for n in shown}
    page = error_page(loaded, cells, spectrograms, audio, [rows[i] for i in test], true, pred, probs, details)
    with atomic_file(ERRORS) as tmp:
        tmp.write_text(page, encoding="utf-8")
    # The scheme's challenge names the mean of SE and SP: the ICBHI score, or SPRSound's AS (with HS).
    score = "AS" if scheme.scores == "sprsound" else "ICBHI score"

    def scores(s: dict) -> str:
        return f"{score} {format_score(s['icbhi_score'])}" + (f", HS {format_score(s['hs'])}" if "hs" in s else "")

    timer.done(
        f"{len(test)} test cycles: accuracy {format_score(details['accuracy'])}, SE {format_score(details['se'])}, SP {format_score(details['sp'])}, "
        + scores(details)
        + "".join(f"; {part}: {scores(s)}" for part, s in details.get("per_official_part", {}).items())
        + f" ({details['database']}, {scheme.name} classes, {details['data_source']}); {len(shown)} wrong cycles -> {ERRORS}"
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
