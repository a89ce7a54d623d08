"""Cross-database evaluation: a model trained on one database, scored on another's test parts.

    respiro crossdb --model OTHER/models/model.pt [--spectrograms data/spectrograms]
        [--out data/reports/crossdb.json]

The spectrograms are this workspace's (the stft stage's output for its `data.database`, e.g.
SPRSound after `dvc repro stft`), the model another run's checkpoint (e.g. ICBHI's). Both
must be in one class scheme (`classes.scheme: four` is the one ICBHI and SPRSound share) and
made by the same audio chain (resample, normalize, segment, stft params): a difference
stops the command with one line saying which. The cycles scored are those of the official
test parts (ICBHI: test; SPRSound: test_inter and test_intra, each also alone); every line
printed says which data trained the model and which data each number comes from.
docs/sprsound.md walks through it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from respiro.commands.options import add_model_option, add_output_option
from respiro.core.cli import run_stage
from respiro.core.config import load_params
from respiro.core.errors import MissingInputError, StageError
from respiro.core.outputs import StageTimer, atomic_file, check_output_file
from respiro.core.schemes import scheme_of_classes
from respiro.data.dataset import load_spectrograms
from respiro.evaluation.metrics import challenge_scores, confusion_matrix, format_score
from respiro.evaluation.reports import provenance
from respiro.inference.recording import classify_spectrograms
from respiro.training.checkpoint import load_checkpoint

AUDIO_GROUPS = ("resample", "normalize", "segment", "stft")
SHOWN = ("accuracy", "se", "sp", "icbhi_score", "as", "hs", "cycles")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="respiro crossdb",
        description=(
            "Score a checkpoint trained on one database on this workspace's official test parts of "
            "another (data/spectrograms, made for params.yaml's data.database), in the class scheme "
            "both share; prints and writes the scores with the data each comes from."
        ),
    )
    add_model_option(parser)
    parser.add_argument(
        "--spectrograms",
        type=Path,
        default=Path("data/spectrograms"),
        help="the stft stage's output folder of the test database (default: %(default)s)",
    )
    add_output_option(parser, "data/reports/crossdb.json", "JSON file of the scores written")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="spectrograms per forward pass (default: %(default)s)"
    )
    return parser.parse_args(argv)


def is_test_part(side: str) -> bool:
    return side == "test" or side.startswith("test_")


def cross_scores(
    true: np.ndarray, pred: np.ndarray, parts: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Scores of all test cycles (`all`) and of each official part in `parts` alone."""
    kind = scheme_of_classes(class_names).scores
    groups = {"all": np.ones(len(true), bool)}
    if len(set(parts.tolist())) > 1:
        groups |= {str(part): parts == part for part in sorted(set(parts.tolist()))}
    out = {}
    for name, mask in groups.items():
        s = challenge_scores(confusion_matrix(true[mask], pred[mask], len(class_names)), class_names, kind)
        out[name] = {k: s[k] for k in SHOWN if k in s}
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    timer = StageTimer("crossdb")
    check_output_file(args.out, (".json",), [args.model])
    params = load_params()
    trained = load_checkpoint(args.model)
    names = trained.class_names
    for group in AUDIO_GROUPS:
        mine, theirs = params.as_dict()[group], trained.chain.as_dict()[group]
        if mine != theirs:
            raise StageError(
                f"{args.model} was trained on spectrograms of other {group} params ({theirs}) than "
                f"{args.spectrograms} ({mine}): set params.yaml's {group} to the model's and rerun `dvc repro stft`"
            )
    if not (args.spectrograms / "spectrograms.npy").is_file():
        raise MissingInputError(f"{args.spectrograms}: no spectrograms.npy; run `dvc repro stft` for the test database")
    specs, rows = load_spectrograms(args.spectrograms)
    unknown = sorted({r["label_name"] for r in rows} - set(names))
    if unknown:
        raise StageError(
            f"{args.spectrograms} is labelled in another class scheme (classes {', '.join(unknown)}) than {args.model} "
            f"({', '.join(names)}): run the data stages with the model's classes.scheme (four: the one ICBHI and SPRSound share)"
        )
    test = np.array([i for i, r in enumerate(rows) if is_test_part(r["official_split"])], dtype=np.int64)
    if not len(test):
        raise StageError(f"{args.spectrograms} has no cycles in an official test part")
    probs = classify_spectrograms(trained, np.asarray(specs[test], dtype=np.float32), args.batch_size)
    index = {name: i for i, name in enumerate(names)}
    true = np.array([index[rows[i]["label_name"]] for i in test])
    pred = probs.argmax(1)
    parts = np.array([rows[i]["official_split"] for i in test])
    scores = cross_scores(true, pred, parts, names)
    trained_on = f"{trained.provenance['database']} {trained.provenance['data_source']}"
    test_database = rows[test[0]].get("database", params.data.database)
    tested_on = f"{test_database} {provenance(params.as_dict())['data_source']}"
    report: dict[str, Any] = {
        "model": str(args.model),
        "trained_on": trained_on,
        "tested_on": tested_on,
        "classes": list(names),
        "scores": scores,
    }
    with atomic_file(args.out, (".json",), [args.model]) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    for part, s in scores.items():
        print(
            f"crossdb: trained on {trained_on}; tested on {tested_on}, {'every test part' if part == 'all' else part} "
            f"({s['cycles']} cycles): SE {format_score(s['se'])}, SP {format_score(s['sp'])}, score {format_score(s['icbhi_score'])}"
            + (f", HS {format_score(s['hs'])}" if "hs" in s else "")
        )
    timer.done(f"{len(test)} test cycles -> {args.out}")


def run(argv: list[str] | None = None) -> None:
    """`respiro crossdb ...`: expected errors and Ctrl-C end with one line."""
    run_stage("crossdb", lambda: main(argv), resume="respiro crossdb ... (the same command)")
