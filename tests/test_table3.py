"""Table 3 over seeds: the statistics on fabricated predictions, and the whole grid in miniature."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES  # the paper's four classes
from respiro.evaluation.metrics import scores_of
from respiro.evaluation.table3 import (
    CONFIGS,
    GRID,
    OTHER_NETWORKS,
    Config,
    Run,
    aggregate,
    bootstrap_icbhi,
    run_from_files,
    to_csv,
    to_markdown,
)
from tests.conftest import TINY_PARAMS, make_project_copy, run

N, C, W, B = range(4)  # class indices: Normal, Crackle, Wheeze, Both
SYNTHETIC = {
    "data_source": "synthetic(seed=1)",
    "synthetic_data": True,
    "note": "synthetic: NOT ICBHI",
    "split_method": "official",
}
R34 = Config("resnet34", True, "focal")


def cycles(*groups: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test cycles from (patient, true, predicted, how many) groups -> patients, true, pred."""
    rows = [(p, t, q) for p, t, q, count in groups for _ in range(count)]
    patients, true, pred = (np.array(col, dtype=np.int64) for col in zip(*rows))
    return patients, true, pred


def make_run(
    config: Config, seed: int, data: tuple[np.ndarray, np.ndarray, np.ndarray], provenance: dict = SYNTHETIC
) -> Run:
    """A run whose eval.json scores are what the stage would compute from its predictions."""
    patients, true, pred = data
    s = scores_of(true, pred, CLASS_NAMES)
    scores = {k: s[k] for k in ("accuracy", "se", "sp", "icbhi_score")} | {
        "binary_icbhi_score": s["binary"]["icbhi_score"]
    }
    return Run(config, seed, scores, dict(provenance), patients, true, pred)


def naive_patient_bootstrap(runs: list[Run], replicates: int, seed: int) -> tuple[float, float, int]:
    """Independent re-implementation: concatenate every drawn patient's cycles, score, percentiles."""
    patients = np.unique(np.concatenate([r.patients for r in runs]))
    draws = np.random.default_rng(seed).integers(0, len(patients), size=(replicates, len(patients)))
    scores = []
    for row in draws:
        true, pred = [], []
        for k in row:  # a patient drawn twice contributes its cycles twice
            for r in runs:
                mask = r.patients == patients[k]
                true.append(r.true[mask])
                pred.append(r.pred[mask])
        score = scores_of(np.concatenate(true), np.concatenate(pred), CLASS_NAMES)["icbhi_score"]
        if score is not None:
            scores.append(score)
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high), replicates - len(scores)


# Three seeds on 3 test patients, 10 Normal and 10 abnormal cycles each seed:
#   seed 0: Normal 8/10 right, abnormal 5/10 right (one Crackle called Wheeze) -> SE .5 SP .8
#   seed 1: Normal 9/10, abnormal 6/10 -> SE .6 SP .9;  seed 2: Normal 10/10, abnormal 4/10 -> SE .4 SP 1
THREE_SEEDS = {
    0: cycles((1, N, N, 5), (1, N, C, 2), (2, N, N, 3), (2, C, C, 3), (2, C, W, 1), (3, W, W, 2), (3, W, N, 4)),
    1: cycles((1, N, N, 6), (1, N, C, 1), (2, N, N, 3), (2, C, C, 4), (3, W, W, 2), (3, W, N, 4)),
    2: cycles((1, N, N, 7), (2, N, N, 3), (2, C, C, 2), (2, C, N, 2), (3, W, W, 2), (3, W, N, 4)),
}


def test_configs_are_the_papers_eight_rows_in_its_order() -> None:
    assert [c.label for c in CONFIGS] == [
        "ResNet-18", "ResNet-34", "ResNet-18 + CBAM", "ResNet-34 + CBAM",
        "ResNet-18 + Focal Loss", "ResNet-34 + Focal Loss",
        "ResNet-18 + CBAM + Focal Loss", "ResNet-34 + CBAM + Focal Loss",
    ]  # fmt: skip
    assert all(c.paper is not None for c in CONFIGS)
    assert R34.experiment_name(2) == "t3-r34-cbam-focal-s2"
    assert Config("resnet18", False, "ce").overrides(0) == {
        "model.arch": "resnet18",
        "model.cbam": "false",
        "loss.name": "ce",
        "model.pretrained": "none",
        "train.seed": "0",
    }
    for config in CONFIGS:  # the constants are the paper's as printed
        assert config.paper is not None
        _accuracy, se, sp, score = config.paper
        assert abs((se + sp) / 2 - score) <= 0.0011


def test_other_networks_are_rows_after_the_papers_without_its_columns() -> None:
    effb0 = Config("efficientnet_b0", True, "focal")
    assert effb0 in OTHER_NETWORKS and effb0.paper is None and effb0.slug == "effb0-cbam-focal"
    assert effb0.label == "EfficientNet-B0 + CBAM + Focal Loss"
    assert effb0.overrides(1)["model.arch"] == "efficientnet_b0"
    assert len({c.slug for c in GRID}) == len(GRID)  # every row has its own name
    assert not set(CONFIGS) & set(OTHER_NETWORKS)
    runs = [make_run(R34, 0, THREE_SEEDS[0]), make_run(effb0, 0, THREE_SEEDS[1])]
    rows = aggregate(runs, 200, 0)
    assert [r.config for r in rows] == [R34, effb0]  # the paper's rows first
    assert rows[1].paper is None and rows[1].difference("se") is None
    text = to_markdown(rows, SYNTHETIC, {})
    assert "| EfficientNet-B0 + CBAM + Focal Loss | 1 |" in text and "no Paper columns (n/a)" in text
    [line] = [line for line in text.splitlines() if line.startswith("| EfficientNet-B0")]
    assert line.endswith("| n/a | n/a / n/a / n/a / n/a |")
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert table[1]["arch"] == "efficientnet_b0" and table[1]["paper_se"] == "" and table[0]["paper_se"] == "0.607"


def test_mean_and_sample_std_over_seeds() -> None:
    runs = [make_run(R34, seed, data) for seed, data in THREE_SEEDS.items()]
    [row] = aggregate(runs, replicates=200, seed=0)
    assert row.seeds == (0, 1, 2) and row.n == 3
    # By hand: scores .65, .75, .70; accuracies .65, .75, .70; SE .5, .6, .4; SP .8, .9, 1.
    assert row.scores["icbhi_score"].mean == pytest.approx(0.70)
    assert row.scores["icbhi_score"].std == pytest.approx(0.05)  # sqrt((.05² + .05² + 0) / 2)
    assert row.scores["accuracy"].mean == pytest.approx(0.70)
    assert row.scores["se"].mean == pytest.approx(0.5) and row.scores["se"].std == pytest.approx(0.1)
    assert row.scores["sp"].mean == pytest.approx(0.9) and row.scores["sp"].std == pytest.approx(0.1)
    # Two-class SE: seed 0's Crackle called Wheeze counts as detected -> .6, .6, .4.
    assert row.scores["binary_icbhi_score"].mean == pytest.approx(((0.6 + 0.8) + (0.6 + 0.9) + (0.4 + 1.0)) / 6)
    assert row.paper == {"accuracy": 0.732, "se": 0.607, "sp": 0.843, "icbhi_score": 0.725}
    assert row.difference("icbhi_score") == pytest.approx(0.70 - 0.725)


def test_one_seed_has_no_std() -> None:
    [row] = aggregate([make_run(R34, 0, THREE_SEEDS[0])], replicates=200, seed=0)
    assert row.n == 1 and row.scores["icbhi_score"].mean == pytest.approx(0.65)
    assert row.scores["icbhi_score"].std is None
    table = list(csv.DictReader(io.StringIO(to_csv([row]))))
    assert table[0]["icbhi_score_std"] == "" and float(table[0]["icbhi_score_mean"]) == pytest.approx(0.65)


def test_bootstrap_matches_an_independent_implementation() -> None:
    runs = [make_run(R34, seed, data) for seed, data in THREE_SEEDS.items()]
    low, high, undefined = bootstrap_icbhi(runs, replicates=500, seed=7)
    naive_low, naive_high, naive_undefined = naive_patient_bootstrap(runs, 500, 7)
    assert (low, high) == pytest.approx((naive_low, naive_high))
    # Patient 1 has Normal cycles only, patient 3 abnormal only: a replicate drawing one of
    # them three times has no score (2/27 of them, about 37 of 500), and is left out.
    assert undefined == naive_undefined and 15 < undefined < 70
    [row] = aggregate(runs, replicates=500, seed=7)
    assert (row.ci_low, row.ci_high) == (low, high)
    # The pooled matrix of identical test sets scores the mean of the seeds: the interval is
    # around the number in the table.
    assert low <= row.scores["icbhi_score"].mean <= high


def test_identical_patients_collapse_the_interval_to_the_point() -> None:
    # Ten patients alike (8/10 Normal right, 5/10 abnormal right): every resample scores .65.
    data = cycles(*(g for p in range(10) for g in ((p, N, N, 8), (p, N, W, 2), (p, B, B, 5), (p, B, N, 5))))
    [row] = aggregate([make_run(R34, 0, data)], replicates=300, seed=3)
    assert row.ci_low == pytest.approx(0.65) and row.ci_high == pytest.approx(0.65)


def test_resampling_is_by_patient() -> None:
    # Same pooled counts as above, but patient 0 holds every correctly classified abnormal
    # cycle and patient 1 every missed one. Cycles are not independent here: the score rests
    # on two patients, and the patient bootstrap must show it. A cycle bootstrap does not.
    data = cycles((0, C, C, 50), (1, C, N, 50), *(g for p in range(10) for g in ((p, N, N, 8), (p, N, W, 2))))
    runs = [make_run(R34, 0, data)]
    low, high, undefined = bootstrap_icbhi(runs, replicates=1000, seed=0)
    rng = np.random.default_rng(0)
    _, true, pred = data
    by_cycle = [
        scores_of(true[i], pred[i], CLASS_NAMES)["icbhi_score"]
        for i in rng.integers(0, len(true), size=(1000, len(true)))
    ]
    cycle_low, cycle_high = np.percentile(by_cycle, [2.5, 97.5])
    assert high - low > 0.3
    assert high - low > 3 * (cycle_high - cycle_low)
    # Replicates that draw neither patient 0 nor 1 have no abnormal cycle: counted, not scored.
    assert 0 < undefined < 1000 * 0.2  # expected (8/10)^10, about 11 %


def test_run_from_files_reads_the_stage_outputs_and_rejects_a_mismatch() -> None:
    patients, true, pred = THREE_SEEDS[1]
    s = scores_of(true, pred, CLASS_NAMES)
    eval_json = {
        **{k: s[k] for k in ("accuracy", "se", "sp", "icbhi_score")},
        "binary": s["binary"],
        **SYNTHETIC,
        "arch": "resnet18", "cbam": False, "loss": "ce", "gamma": 1.0, "alpha": None, "seed": 1,
    }  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "recording",
            "patient",
            "start",
            "end",
            "device",
            "true_label",
            "predicted_label",
            *(f"p_{c}" for c in CLASS_NAMES),
        ]
    )
    for p, t, q in zip(patients, true, pred):
        writer.writerow(
            [
                f"{p}_1b1_Tc_sc_Meditron",
                p,
                "0.0",
                "1.0",
                "Meditron",
                CLASS_NAMES[t],
                CLASS_NAMES[q],
                "0.25",
                "0.25",
                "0.25",
                "0.25",
            ]
        )
    got = run_from_files(eval_json, out.getvalue())
    assert (got.config, got.seed) == (Config("resnet18", False, "ce"), 1)
    # An evaluation.json from before model.arch names the network by its depth.
    old = {k: v for k, v in eval_json.items() if k != "arch"} | {"depth": 18}
    assert run_from_files(old, out.getvalue()).config == Config("resnet18", False, "ce")
    assert got.scores["icbhi_score"] == pytest.approx(0.75) and got.provenance == SYNTHETIC
    assert (
        np.array_equal(got.patients, patients.astype(str))
        and np.array_equal(got.true, true)
        and np.array_equal(got.pred, pred)
    )
    with pytest.raises(ValueError, match="different runs"):
        run_from_files({**eval_json, "icbhi_score": 0.9}, out.getvalue())


def test_runs_of_different_data_are_not_mixed_and_a_seed_counts_once() -> None:
    real = {"data_source": "icbhi(official archive)", "synthetic_data": False, "note": None, "split_method": "official"}
    with pytest.raises(ValueError, match="different data"):
        aggregate([make_run(R34, 0, THREE_SEEDS[0]), make_run(R34, 1, THREE_SEEDS[1], real)], 200, 0)
    with pytest.raises(ValueError, match="seed listed twice"):
        aggregate([make_run(R34, 0, THREE_SEEDS[0]), make_run(R34, 0, THREE_SEEDS[1])], 200, 0)


def test_markdown_names_the_data() -> None:
    rows = aggregate([make_run(R34, s, d) for s, d in THREE_SEEDS.items()], 200, 0)
    text = to_markdown(rows, SYNTHETIC, {"train.epochs": "1"}, missing=["t3-r18-plain-ce-s0"])
    assert text.startswith("# Table 3 reproduction on the synthetic corpus — not ICBHI results\n")
    assert "NOT ICBHI" in text and "train.epochs: 1" in text and "t3-r18-plain-ce-s0" in text
    assert "| ResNet-34 + CBAM + Focal Loss | 3 | 0.700 ± 0.050 |" in text
    real = {"data_source": "icbhi(official archive)", "synthetic_data": False, "split_method": "official"}
    assert to_markdown(rows, real, {}).startswith("# Table 3 reproduction on icbhi(official archive)\n")


# --- the whole grid, in miniature --------------------------------------------------------------

# TINY_PARAMS with shorter, coarser spectrograms (33 x 32): 16 trainings of ResNet-18/34 fit in
# a few minutes on 2 cores. Fewer bootstrap resamples: the check is exact whatever the number.
GRID_PARAMS = {
    **TINY_PARAMS,
    "resample": {"rate": 2000},
    "segment": {"duration": 1.0},
    "stft": {"n_fft": 64, "hop_length": 64},
    "table3": {"bootstrap": 200, "bootstrap_seed": 5},
}


# Two rows: the paper's first, which differs from params.yaml (ResNet-34 + CBAM, focal loss)
# in network, attention and loss, so an override that does not reach its experiment shows;
# and another network's (model.arch), which the table puts after the paper's. Rows are
# queued alike (the dry run lists all eight); how rows and seeds combine into the table is
# tested above on fabricated runs.
ROWS = ("r18-plain-ce", "effb0-plain-ce")


@pytest.mark.slow
def test_table3_grid_end_to_end(tmp_path: Path) -> None:
    """The grid's wiring end to end on one of its rows: the audio stages run once in the
    workspace, the row's experiment trains and evaluates on them with its own settings, the
    report reads it back; and the dry run lists all eight."""
    project = make_project_copy(tmp_path / "project", GRID_PARAMS)
    # A dry run lists what --run would queue and runs nothing.
    dry = run([sys.executable, "-m", "respiro", "table3", "--run", "--dry-run", "--seeds", "0"], project).stdout
    assert sorted(re.findall(r"would queue (t3-\S+):", dry)) == sorted(c.experiment_name(0) for c in CONFIGS)
    assert "8 experiments would run" in dry and not (project / "data" / "spectrograms").exists()
    assert "t3-" not in run(["dvc", "queue", "status"], project).stdout
    # One queue worker: with two, DVC 3.67's `exp run --run-all` once kept waiting after the
    # queue had finished; the timeout turns any such hang into a failure rather than a stuck CI.
    result = run(
        [
            sys.executable,
            "-m",
            "respiro",
            "table3",
            "--run",
            "--report",
            "--seeds",
            "0",
            "--jobs",
            "1",
            "--rows",
            *ROWS,
        ],
        project,
        timeout=900,
    )
    output = result.stdout + result.stderr

    # The audio stages ran once, in the workspace; every experiment ran train and evaluate.
    for stage in ("download", "resample", "normalize", "segment", "stft"):
        assert output.count(f"Running stage '{stage}'") == 1, stage
    assert output.count("Running stage 'train'") == len(ROWS)
    assert output.count("Running stage 'evaluate'") == len(ROWS)

    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    [baseline] = [b for b in json.loads(run(["dvc", "exp", "show", "--json"], project).stdout) if b["rev"] == head]
    revs = {r["name"]: r["rev"] for exp in baseline["experiments"] for r in exp["revs"]}
    configs = [c for c in GRID if c.slug in ROWS]
    names = {c.experiment_name(0): (c, 0) for c in configs}
    assert set(names) <= set(revs)

    def show(rev: str, path: str) -> str:
        return run(["git", "show", f"{rev}:{path}"], project).stdout

    def cached(rev: str, path: str) -> str:
        """An evaluate output as the experiment left it, from the copy's DVC cache."""
        code = "import sys, dvc.api; sys.stdout.write(dvc.api.read(sys.argv[1], rev=sys.argv[2]))"
        return run([sys.executable, "-c", code, path, rev], project).stdout

    # Every experiment trained on the spectrograms the workspace made: one audio pipeline for the grid.
    def spectrograms(lock: dict) -> str:
        [md5] = [o["md5"] for o in lock["stages"]["stft"]["outs"] if o["path"] == "data/spectrograms"]
        return md5

    made = spectrograms(yaml.safe_load((project / "dvc.lock").read_text()))
    for name in names:
        assert spectrograms(yaml.safe_load(show(revs[name], "dvc.lock"))) == made, name

    table = {row["model"]: row for row in csv.DictReader((project / "reports" / "table3.csv").open())}
    assert list(table) == [c.label for c in configs]
    markdown = (project / "reports" / "table3.md").read_text()
    assert markdown.startswith("# Table 3 reproduction on the synthetic corpus — not ICBHI results")
    for config in configs:
        row = table[config.label]
        assert row["n"] == "1" and row["seeds"] == "0"
        # One seed per configuration here (the statistics over seeds have their own tests above):
        # the mean is the run's score, the std undefined (an empty cell).
        evaluation = json.loads(cached(revs[config.experiment_name(0)], "data/reports/evaluation.json"))
        assert (evaluation["arch"], evaluation["cbam"], evaluation["loss"], evaluation["seed"]) == (
            config.arch,
            config.cbam,
            config.loss,
            0,
        )
        for key in ("accuracy", "se", "sp", "icbhi_score"):
            assert float(row[f"{key}_mean"]) == pytest.approx(evaluation[key])
            assert row[f"{key}_std"] == ""
        assert float(row["binary_icbhi_score_mean"]) == pytest.approx(evaluation["binary"]["icbhi_score"])
        predictions = list(
            csv.DictReader(io.StringIO(cached(revs[config.experiment_name(0)], "data/reports/test_predictions.csv")))
        )
        patients = np.array([p["patient"] for p in predictions])
        true = np.array([CLASS_NAMES.index(p["true_label"]) for p in predictions])
        pred = np.array([CLASS_NAMES.index(p["predicted_label"]) for p in predictions])
        low, high, _ = naive_patient_bootstrap([make_run(config, 0, (patients, true, pred))], 200, 5)
        assert (float(row["icbhi_ci_low"]), float(row["icbhi_ci_high"])) == pytest.approx((low, high))

    # A second --run finds every experiment of this commit and reruns nothing.
    again = run([sys.executable, "-m", "respiro", "table3", "--run", "--seeds", "0", "--rows", *ROWS], project)
    assert len(re.findall(r"keeping experiment t3-", again.stdout)) == len(ROWS)
    assert "Running stage 'train'" not in again.stdout + again.stderr
