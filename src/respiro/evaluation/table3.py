"""The paper's Table 3 over several seeds: mean ± std, the paper beside it, a patient bootstrap.

Pure functions: `respiro table3` runs the eight configurations (and any other rows asked
for: other architectures of model.arch, ImageNet initialisation) as DVC experiments and
hands each one's data/reports/evaluation.json and test_predictions.csv to `run_from_files`; the rest
happens here, testable without DVC.

Statistics, and why:
- Mean ± std over seeds of accuracy, SE, SP, ICBHI score (and the two-class ICBHI score),
  taken from each run's evaluation.json. The std is the sample std (ddof=1): the seeds are a sample
  of the training randomness. With one seed it is None (blank): there is no spread to report,
  and 0 would claim one.
- A 95 % bootstrap interval of the ICBHI score that resamples *test patients*, not cycles: a
  patient's cycles share a chest, a device and a session, so they are not independent, and a
  cycle bootstrap would report intervals far too narrow. Each replicate draws patients with
  replacement and takes all their cycles (a patient drawn twice counts twice).
- The replicate's score comes from the confusion matrix pooled over all seeds' predictions of
  the configuration. The seeds of a grid share the test set (split.seed is not varied), so SE
  and SP of the pooled matrix are exactly the means of the per-seed SE and SP: the interval is
  that of the seed-averaged score, the number in the table. Pooling needs no per-seed loop and
  is also defined when seeds' test sets differ.
- Every configuration's bootstrap starts from the same seed and sees the same patient draws
  (common random numbers): differences between rows are then not bootstrap noise.
- A replicate that happens to draw no abnormal (or no Normal) cycle has no ICBHI score; it is
  left out of the percentiles and counted (`bootstrap_undefined`), never scored as 0 or 1.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from respiro.core.schemes import SCHEMES
from respiro.evaluation.metrics import confusion_matrix, format_score, icbhi_scores, scores_of
from respiro.model.registry import ARCHITECTURES, get_architecture, upgrade_model_group

PAPER_CITATION = (
    'R. Oshima, T. Kamiya, S. Kido, "Automatic Classification of Respiratory Sounds by '
    'Improving the Loss Function of ResNet", Table 3'
)

# Scores of a run or of the paper, in the paper's column order.
SCORE_KEYS: tuple[str, ...] = ("accuracy", "se", "sp", "icbhi_score")
# Table 3 is the paper's: its four classes.
CLASSES = SCHEMES["four"].classes
N_CLASSES = len(CLASSES)


LOSSES: tuple[str, ...] = ("ce", "focal")


@dataclass(frozen=True)
class Config:
    """One row of Table 3: the network (model.arch), CBAM on/off, loss; and, beyond the
    paper, whether training starts from the network's ImageNet weights (model.pretrained:
    imagenet). The paper's rows are those its architectures declare (`paper_table3`)."""

    arch: str
    cbam: bool
    loss: str
    pretrained: bool = False

    @property
    def label(self) -> str:
        """The row's name, e.g. 'ResNet-34 + CBAM + Focal Loss' (the paper's) or '... + ImageNet init'."""
        parts = (
            [get_architecture(self.arch).label(self.cbam)]
            + ["Focal Loss"] * (self.loss == "focal")
            + ["ImageNet init"] * self.pretrained
        )
        return " + ".join(parts)

    @property
    def slug(self) -> str:
        """Short name for experiment names and files, e.g. 'r34-cbam-focal' or 'r34-cbam-focal-imagenet'."""
        short = get_architecture(self.arch).short
        return f"{short}-{'cbam' if self.cbam else 'plain'}-{self.loss}{'-imagenet' if self.pretrained else ''}"

    @property
    def from_scratch(self) -> Config:
        """The paper's row of the same network (the paper trained from scratch only)."""
        return dataclasses.replace(self, pretrained=False)

    @property
    def paper(self) -> tuple[float, float, float, float] | None:
        """The paper's scores of this network trained from scratch, or None: not one of its rows."""
        return get_architecture(self.arch).paper_table3.get((self.cbam, self.loss))

    def experiment_name(self, seed: int) -> str:
        return f"t3-{self.slug}-s{seed}"

    def overrides(self, seed: int) -> dict[str, str]:
        """The params.yaml values (as `dvc exp run -S` writes them) that select this run."""
        return {
            "model.arch": self.arch,
            "model.cbam": str(self.cbam).lower(),
            "loss.name": self.loss,
            # Always set, so a workspace's params.yaml cannot change what a row means.
            "model.pretrained": "imagenet" if self.pretrained else "none",
            "train.seed": str(seed),
        }


# The paper's rows in its order: the network varies fastest (in registry order), then CBAM,
# then the loss.
CONFIGS: tuple[Config, ...] = tuple(
    Config(name, cbam, loss)
    for loss in LOSSES
    for cbam in (False, True)
    for name, arch in ARCHITECTURES.items()
    if (cbam, loss) in arch.paper_table3
)
# `respiro table3 --pretrained` adds these; the table puts each right after its paper row.
PRETRAINED_CONFIGS: tuple[Config, ...] = tuple(dataclasses.replace(c, pretrained=True) for c in CONFIGS)
ALL_CONFIGS: tuple[Config, ...] = tuple(row for pair in zip(CONFIGS, PRETRAINED_CONFIGS) for row in pair)
# The same grid of every other network (`--rows` names them): CBAM only where it has a
# placement, ImageNet rows only where it has ImageNet weights.
OTHER_NETWORKS: tuple[Config, ...] = tuple(
    Config(name, cbam, loss, pretrained)
    for name, arch in ARCHITECTURES.items()
    if not arch.paper_table3
    for loss in LOSSES
    for cbam in (False, True)
    if not cbam or arch.cbam_placement is not None
    for pretrained in (False, True)
    if not pretrained or "imagenet" in arch.weights_choices
)
GRID: tuple[Config, ...] = ALL_CONFIGS + OTHER_NETWORKS  # every row, in the table's order


@dataclass(frozen=True)
class Run:
    """One trained and evaluated model: its configuration, seed, scores and test predictions.

    `patients`, `true` and `pred` have one entry per test cycle; labels are class indices.
    """

    config: Config
    seed: int
    scores: dict[str, float | None]  # SCORE_KEYS and "binary_icbhi_score", from evaluation.json
    provenance: dict[str, Any]  # data_source, synthetic_data, note, split_method
    patients: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    init_weights: dict[str, str] | None = None  # {file, sha256} of the ImageNet weights; None from scratch


def run_from_files(eval_json: Mapping[str, Any], predictions_csv: str) -> Run:
    """A `Run` from the text of one experiment's evaluation.json and test_predictions.csv.

    The configuration is read from evaluation.json's provenance (arch, cbam, loss, pretrained,
    seed), not from an experiment name that could lie (files from before model.pretrained
    existed are from scratch; those from before model.arch name the network by its old keys,
    which the registry reads). The ICBHI score recomputed from the predictions must
    match evaluation.json's: a mismatch means the two files come from different runs.
    """
    index = {name: i for i, name in enumerate(CLASSES)}
    rows = list(csv.DictReader(io.StringIO(predictions_csv)))
    patients = np.array([r["patient"] for r in rows])
    true = np.array([index[r["true_label"]] for r in rows], dtype=np.int64)
    pred = np.array([index[r["predicted_label"]] for r in rows], dtype=np.int64)
    recomputed = scores_of(true, pred, CLASSES)["icbhi_score"]
    stated = eval_json["icbhi_score"]
    if (recomputed is None) != (stated is None) or (stated is not None and abs(recomputed - stated) > 1e-9):
        raise ValueError(
            f"predictions give ICBHI score {recomputed} but evaluation.json says {stated}: files of different runs"
        )
    return Run(
        config=Config(
            str(upgrade_model_group({k: v for k, v in eval_json.items() if k in ("arch", "depth")})["arch"]),
            bool(eval_json["cbam"]),
            str(eval_json["loss"]),
            eval_json.get("pretrained", "none") == "imagenet",
        ),
        seed=int(eval_json["seed"]),
        scores={**{k: eval_json[k] for k in SCORE_KEYS}, "binary_icbhi_score": eval_json["binary"]["icbhi_score"]},
        provenance={k: eval_json.get(k) for k in ("data_source", "synthetic_data", "note", "split_method")},
        patients=patients,
        true=true,
        pred=pred,
        init_weights=eval_json.get("init_weights"),
    )


@dataclass(frozen=True)
class Summary:
    """Mean and sample std (ddof=1) over seeds; std None with one seed, both None if any run lacks the score."""

    mean: float | None
    std: float | None


def summarize(values: Sequence[float | None]) -> Summary:
    known = [v for v in values if v is not None]
    if not values or len(known) < len(values):
        return Summary(None, None)
    return Summary(statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None)


def patient_confusions(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    """Test patients (sorted ids, shape (P,)) and their confusion matrices pooled over `runs`, (P, C, C)."""
    patients = np.unique(np.concatenate([r.patients for r in runs]))
    cms = np.zeros((len(patients), N_CLASSES, N_CLASSES), dtype=np.int64)
    for run in runs:
        for k, patient in enumerate(patients):
            mask = run.patients == patient
            cms[k] += confusion_matrix(run.true[mask], run.pred[mask], N_CLASSES)
    return patients, cms


def bootstrap_icbhi(runs: Sequence[Run], replicates: int, seed: int) -> tuple[float | None, float | None, int]:
    """95 % percentile interval (2.5, 97.5) of the pooled ICBHI score, resampling test patients.

    Replicate b draws row b of `np.random.default_rng(seed).integers(0, P, size=(replicates, P))`
    as indices into the sorted patient ids, sums those patients' confusion matrices (pooled over
    `runs`) and scores the sum. Returns (low, high, replicates without a defined score); the
    bounds are None when no replicate has one.
    """
    _, cms = patient_confusions(runs)
    n_patients = len(cms)
    draws = np.random.default_rng(seed).integers(0, n_patients, size=(replicates, n_patients))
    # times[b, k]: how often replicate b drew patient k; a replicate's matrix is then a
    # weighted sum of the patients' matrices (the same as concatenating the drawn cycles).
    times = np.stack([np.bincount(row, minlength=n_patients) for row in draws])
    pooled = np.einsum("bp,pij->bij", times, cms)
    scores = [icbhi_scores(cm, CLASSES)["icbhi_score"] for cm in pooled]
    defined = np.array([s for s in scores if s is not None], dtype=np.float64)
    if defined.size == 0:
        return None, None, replicates
    low, high = np.percentile(defined, [2.5, 97.5])
    return float(low), float(high), replicates - int(defined.size)


@dataclass(frozen=True)
class Row:
    """One configuration of the table: our seeds' statistics and the paper's numbers."""

    config: Config
    seeds: tuple[int, ...]
    scores: dict[str, Summary]  # SCORE_KEYS and "binary_icbhi_score"
    ci_low: float | None
    ci_high: float | None
    bootstrap_undefined: int
    paper: dict[str, float] | None  # SCORE_KEYS; for an ImageNet row, the paper's from-scratch row; None: no paper row
    init_weights: tuple[str, ...] = ()  # `file sha256:hex` of each ImageNet file its runs used

    @property
    def n(self) -> int:
        return len(self.seeds)

    def difference(self, key: str) -> float | None:
        """Ours (mean over seeds) − paper, for one of SCORE_KEYS (None without a paper row)."""
        mean = self.scores[key].mean
        return None if mean is None or self.paper is None else mean - self.paper[key]


def aggregate(runs: Sequence[Run], replicates: int, seed: int) -> list[Row]:
    """One `Row` per configuration that has runs, in the paper's row order, each "+ ImageNet
    init" row right after the paper's row of the same network; rows of other networks
    (model.arch) after the paper's, without paper columns.

    `replicates` and `seed` are the patient bootstrap's (params table3.bootstrap,
    table3.bootstrap_seed). Two runs of one configuration with the same seed are an error:
    they would count one training twice.
    """
    check_same_data(runs)
    unknown = {r.config for r in runs} - set(GRID)
    if unknown:
        raise ValueError(f"runs of configurations outside Table 3: {sorted(c.slug for c in unknown)}")
    rows = []
    for config in GRID:
        mine = sorted((r for r in runs if r.config == config), key=lambda r: r.seed)
        if not mine:
            continue
        seeds = tuple(r.seed for r in mine)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{config.label}: seed listed twice in {list(seeds)}")
        low, high, undefined = bootstrap_icbhi(mine, replicates, seed)
        rows.append(
            Row(
                config=config,
                seeds=seeds,
                scores={key: summarize([r.scores[key] for r in mine]) for key in (*SCORE_KEYS, "binary_icbhi_score")},
                ci_low=low,
                ci_high=high,
                bootstrap_undefined=undefined,
                paper=None if config.paper is None else dict(zip(SCORE_KEYS, config.paper)),
                init_weights=tuple(
                    sorted(
                        {f"{r.init_weights['file']} sha256:{r.init_weights['sha256']}" for r in mine if r.init_weights}
                    )
                ),
            )
        )
    return rows


def check_same_data(runs: Sequence[Run]) -> dict[str, Any]:
    """The provenance all runs share; an error if they came from different data or splits."""
    if not runs:
        raise ValueError("no runs to tabulate")
    kinds = {json.dumps(r.provenance, sort_keys=True) for r in runs}
    if len(kinds) > 1:
        raise ValueError(f"runs come from different data or splits, one table would mix them: {sorted(kinds)}")
    return runs[0].provenance


# --- rendering -----------------------------------------------------------------------------


def _mean_std(summary: Summary) -> str:
    if summary.mean is None:
        return "n/a"
    return format_score(summary.mean) if summary.std is None else f"{summary.mean:.3f} ± {summary.std:.3f}"


def title(provenance: Mapping[str, Any]) -> str:
    if provenance.get("synthetic_data"):
        return "Table 3 reproduction on the synthetic corpus — not ICBHI results"
    return f"Table 3 reproduction on {provenance.get('data_source')}"


def to_markdown(
    rows: Sequence[Row], provenance: Mapping[str, Any], settings: Mapping[str, str], missing: Sequence[str] = ()
) -> str:
    """The table as markdown: a title that names the data, the settings, then one line per row.

    `settings` are extra header lines (name -> value), e.g. epochs and the bootstrap's size;
    `missing` names expected experiments that were not found.
    """
    lines = [f"# {title(provenance)}", ""]
    lines.append(f"- Data: {provenance.get('data_source')}; split: {provenance.get('split_method')}")
    if provenance.get("note"):
        lines.append(f"- Note: {provenance['note']}")
    lines += [f"- {name}: {value}" for name, value in settings.items()]
    lines.append(f"- Paper: {PAPER_CITATION}")
    weights = sorted({w for row in rows for w in row.init_weights})
    if weights:
        lines.append(f"- ImageNet init: {'; '.join(weights)}")
    if missing:
        lines.append(f"- Not found (not run or failed): {', '.join(missing)}")
    pretrained_note = (
        " '+ ImageNet init' rows start from torchvision's ImageNet weights; the paper trained from "
        "scratch only, so their Paper columns are its row of the same network."
        if any(row.config.pretrained for row in rows)
        else ""
    ) + (
        " Rows of networks the paper did not train have no Paper columns (n/a)."
        if any(row.paper is None for row in rows)
        else ""
    )
    lines += [
        "",
        "Ours: mean ± sample std over seeds (std blank with one seed). 95 % CI: patient bootstrap "
        "of the seed-pooled ICBHI score. Paper and ours − paper: accuracy / SE / SP / ICBHI score." + pretrained_note,
        "",
        "| Model | n | Accuracy | SE | SP | ICBHI score | 95 % CI | Binary ICBHI | Paper | Ours − paper |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ci = "n/a" if row.ci_low is None else f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        paper = "n/a" if row.paper is None else " / ".join(format_score(row.paper[k]) for k in SCORE_KEYS)
        diff = " / ".join(format_score(row.difference(k), signed=True) for k in SCORE_KEYS)
        cells = [
            row.config.label,
            str(row.n),
            *(_mean_std(row.scores[k]) for k in SCORE_KEYS),
            ci,
            format_score(row.scores["binary_icbhi_score"].mean),
            paper,
            diff,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


CSV_FIELDS: tuple[str, ...] = (
    "model", "arch", "cbam", "loss", "pretrained", "n", "seeds",
    *(f"{k}_{stat}" for k in SCORE_KEYS for stat in ("mean", "std")),
    "icbhi_ci_low", "icbhi_ci_high", "bootstrap_undefined", "binary_icbhi_score_mean",
    *(f"paper_{k}" for k in SCORE_KEYS),
    *(f"diff_{k}" for k in SCORE_KEYS),
)  # fmt: skip


def to_csv(rows: Sequence[Row]) -> str:
    """The table as CSV at full precision; None is an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    cell = lambda v: "" if v is None else repr(float(v)) if isinstance(v, float) else str(v)  # noqa: E731
    for row in rows:
        values: dict[str, Any] = {
            "model": row.config.label,
            "arch": row.config.arch,
            "cbam": str(row.config.cbam).lower(),
            "loss": row.config.loss,
            "pretrained": "imagenet" if row.config.pretrained else "none",
            "n": row.n,
            "seeds": " ".join(map(str, row.seeds)),
            "icbhi_ci_low": row.ci_low,
            "icbhi_ci_high": row.ci_high,
            "bootstrap_undefined": row.bootstrap_undefined,
            "binary_icbhi_score_mean": row.scores["binary_icbhi_score"].mean,
        }
        for k in SCORE_KEYS:
            values |= {
                f"{k}_mean": row.scores[k].mean,
                f"{k}_std": row.scores[k].std,
                f"paper_{k}": None if row.paper is None else row.paper[k],
                f"diff_{k}": row.difference(k),
            }
        writer.writerow({k: cell(v) for k, v in values.items()})
    return out.getvalue()
