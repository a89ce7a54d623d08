"""What the train and evaluate stages log through DVCLive, DVC's own experiment logger.

Two DVCLive folders, both git-tracked and declared in dvc.yaml:

    metrics/train/   metrics.json  the epoch reached (`step`)
                     plots/metrics/{train,val}/*.tsv, lr.tsv   one row per epoch
    metrics/eval/    metrics.json  the test scores a user compares
                     plots/sklearn/confusion_matrix.json   one row per test cycle

Settings chosen so that a rerun writes the same bytes and dvc.yaml stays the one place that
declares metrics and plots: no HTML report (it embeds nothing we need and would change on
every render), DVCLive never edits dvc.yaml (`dvcyaml=None`) and never creates experiments of
its own (`save_dvc_exp=False`: the stage already runs inside `dvc repro` / `dvc exp run`),
and no timestamps in the .tsv files (DVCLive's default).

`metrics.json` is rewritten after every epoch, so `dvc exp show` shows the step of a running
experiment; a killed run leaves the epochs it reached, and DVC reruns the stage anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dvclive import Live

TRAIN_DIR, EVAL_DIR = Path("metrics/train"), Path("metrics/eval")
# The sklearn plot's file, relative to the evaluate stage's DVCLive folder (see dvc.yaml).
CONFUSION_PLOT = "confusion_matrix.json"


def open_live(folder: Path | str) -> Live:
    """A DVCLive logger writing into `folder`, emptied first (a rerun starts clean)."""
    return Live(str(folder), report=None, save_dvc_exp=False, dvcyaml=None)


def log_epoch(live: Live, epoch: int, values: Mapping[str, float | None]) -> None:
    """One epoch's curves (`train/loss`, `val/icbhi_score`, ...) and the summary that `dvc exp
    show` reads while the experiment runs: only the epoch reached (`step`). The scores a user
    compares, the checkpoint's epoch and validation score among them, are the evaluate
    stage's: in one file they come first in `dvc exp show`, ahead of training's columns.

    Undefined values (None) are left out of the curves rather than drawn as zero.
    """
    live.step = epoch
    for name, value in values.items():
        if value is not None:
            live.log_metric(name, value)
    live.summary = {}
    live.make_summary()


def log_test_results(live: Live, summary: Mapping[str, Any], true: Sequence[str], pred: Sequence[str]) -> None:
    """The evaluate stage's summary (ordered as `dvc metrics show` should list it) and the
    confusion matrix of the test cycles through DVCLive's sklearn plot (rows true)."""
    live.summary = dict(summary)
    live.log_sklearn_plot("confusion_matrix", list(true), list(pred), name=CONFUSION_PLOT)
    live.make_summary()
