"""Stage errors: the page of the test cycles the model got wrong, to look at and listen to.

data/reports/test_predictions.csv + data/reports/evaluation.json (the evaluate stage's) +
models/model.pt + data/spectrograms + data/resampled + data/cycles -> data/reports/errors.html:
per confusion cell, its errors.per_cell most confident wrong test cycles, each with its
spectrogram, attention view, Grad-CAM and audio; then the scores per device and per patient
as pictures. A page to read, not a result: the scores are evaluate's, and a change to how the
page looks reruns this stage alone (no training, no scoring).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("errors", __doc__, kernels=True)  # --help answers, the kernels are set, before torch loads

import json
from pathlib import Path

import numpy as np

from respiro.audio.segment import CycleTable
from respiro.audio.store import AudioStore
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import StageTimer, atomic_file, read_csv
from respiro.data.dataset import load_spectrograms
from respiro.evaluation.errors import most_confident_errors
from respiro.evaluation.reports import DETAILS, PREDICTIONS
from respiro.evaluation.test_set import SplitCorpus, predictions_from_rows
from respiro.inference.errors_page import WrongCycles, error_page
from respiro.training.checkpoint import load_checkpoint
from respiro.training.device import resolve_device, use_model_kernels

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")
# The audio of the wrong cycles: the resampled recordings and where each cycle lies in them.
RESAMPLED, CYCLES = Path("data/resampled"), Path("data/cycles")
PAGE = Path("data/reports/errors.html")


def main() -> None:
    timer = StageTimer("errors")
    params = load_params()
    device = resolve_device(params.train.device)
    loaded = load_checkpoint(MODEL, device)
    use_model_kernels(loaded.kernels, device)
    specs, rows = load_spectrograms(SPECS)
    try:
        corpus = SplitCorpus.from_split(rows, read_csv(SPLIT))
        predictions = predictions_from_rows(read_csv(PREDICTIONS), corpus, loaded.class_names)
    except ValueError as err:
        raise StageError(f"{PREDICTIONS} is not of {SPLIT} and {MODEL}: {err}; rerun the evaluate stage") from None
    details = json.loads(DETAILS.read_text(encoding="utf-8"))

    test = predictions.test
    cells = most_confident_errors(predictions.true, predictions.pred, predictions.probs, params.errors.per_cell)
    shown = [n for positions in cells.values() for n in positions]  # positions among the test cycles
    store = AudioStore(RESAMPLED)
    table = CycleTable.open(CYCLES, store)
    audio = {n: table.cut(store, int(test[n]), 1)[0] for n in shown}
    spectrograms = {n: np.asarray(specs[test[n]]) for n in shown}
    errors = WrongCycles(predictions, [rows[i] for i in test], cells, spectrograms, audio)
    page = error_page(loaded, errors, details)
    with atomic_file(PAGE) as tmp:
        tmp.write_text(page, encoding="utf-8")
    timer.done(f"{len(shown)} wrong test cycles in {len(cells)} confusion cells, with maps and audio -> {PAGE}")


if __name__ == "__main__":
    run_stage("errors", main, __doc__)
