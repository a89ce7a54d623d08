"""Stage evaluate: the trained model on the test cycles, scored as its class scheme's challenge
does (ICBHI score; SPRSound's SE, SP, AS, HS), each official test part also on its own.

models/model.pt + models/split.csv + data/spectrograms -> metrics/eval/ (DVCLive: the scores
a user compares, and the confusion matrix as a plot), data/reports/evaluation.json (every
figure, the confusion counts and what produced them), data/reports/test_predictions.csv (one
row per test cycle with its probabilities: what the errors stage draws its page from).
"""

from respiro.core.cli import parse_stage_args

if __name__ == "__main__":
    parse_stage_args("evaluate", __doc__, kernels=True)  # --help answers, the kernels are set, before torch loads

from pathlib import Path

from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import StageError
from respiro.core.outputs import StageTimer, read_csv, write_csv, write_json
from respiro.core.tracking import EVAL_DIR, log_test_results, open_live
from respiro.data.dataset import CycleSet, cycle_loader, load_spectrograms
from respiro.evaluation.metrics import format_score
from respiro.evaluation.reports import DETAILS, PREDICTIONS, evaluation_details, headline_metrics
from respiro.evaluation.test_set import CyclePredictions, SplitCorpus, prediction_rows
from respiro.training.checkpoint import load_checkpoint
from respiro.training.device import resolve_device, use_model_kernels
from respiro.training.prediction import predict

SPECS, MODEL, SPLIT = Path("data/spectrograms"), Path("models/model.pt"), Path("models/split.csv")


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
    try:
        corpus = SplitCorpus.from_split(rows, read_csv(SPLIT))
    except ValueError as err:
        raise StageError(f"{SPLIT} and {SPECS}: {err}; rerun the train stage") from None
    test = corpus.test
    labels = corpus.column("label").astype(int)
    loader = cycle_loader(
        CycleSet(specs, labels, test, loaded.mean, loaded.std), params.evaluate.batch_size, device=device
    )
    probs, true = predict(loaded.model, loader, device)
    predictions = CyclePredictions(test, true, probs.argmax(1), probs)
    # Each official test part scored alone (SPRSound: test_inter, test_intra), where the split is the official one.
    details = evaluation_details(
        predictions, corpus, scheme, loaded.provenance, checkpoint["epoch"], params.split.method == "official"
    )
    write_json(DETAILS, {**details, **kernels})
    live = open_live(EVAL_DIR)
    log_test_results(
        live,
        headline_metrics(details, checkpoint["val_scores"]["icbhi_score"]),
        [scheme.classes[c] for c in predictions.true],
        [scheme.classes[c] for c in predictions.pred],
    )
    live.end()
    write_csv(PREDICTIONS, prediction_rows(predictions, corpus, scheme.classes))
    # The scheme's challenge names the mean of SE and SP: the ICBHI score, or SPRSound's AS (with HS).
    score = "AS" if scheme.scores == "sprsound" else "ICBHI score"

    def scores(s: dict) -> str:
        return f"{score} {format_score(s['icbhi_score'])}" + (f", HS {format_score(s['hs'])}" if "hs" in s else "")

    timer.done(
        f"{len(test)} test cycles: accuracy {format_score(details['accuracy'])}, SE {format_score(details['se'])}, SP {format_score(details['sp'])}, "
        + scores(details)
        + "".join(f"; {part}: {scores(s)}" for part, s in details.get("per_official_part", {}).items())
        + f" ({details['database']}, {scheme.name} classes, {details['data_source']})"
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
