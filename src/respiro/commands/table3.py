"""The paper's Table 3 in one command: eight configurations x seeds as DVC experiments, one table.

    respiro table3 --run --report              # seeds from params.yaml table3.seeds
    respiro table3 --run --report --seeds 0 1  # other seeds
    respiro table3 --report                    # tabulate experiments already run
    respiro table3 --run --report --pretrained # and a "+ ImageNet init" row beside each
    respiro table3 --run --dry-run             # list the experiments --run would queue
    respiro table3 --run --report --rows r18-plain-ce r34-cbam-focal   # some rows only
    respiro table3 --run --report --rows r34-cbam-focal effb0-cbam-focal  # another network beside

--run   runs the audio stages (download .. stft) once with `dvc repro stft`, which also
        records them in DVC's run cache; queues one experiment per
        configuration and seed (`dvc exp run --queue -n t3-r34-cbam-focal-s0 -S
        model.arch=resnet34 ...`) on top of the workspace's params.yaml; and runs the queue with
        `dvc exp run --run-all`, which starts the queue's workers and follows every
        experiment's log until the queue is empty (with --cluster ADDRESS: on a Ray cluster,
        as `respiro queue start --cluster ADDRESS` runs a queue; docs/cluster.md). In each
        experiment the audio stages are restored from the run cache ("Stage 'stft' is cached -
        skipping run"): only train and evaluate run. An experiment of that name that already
        exists for the current commit is kept, so an interrupted grid resumes.
--pretrained  adds one "+ ImageNet init" configuration per paper row (model.pretrained:
        imagenet, experiments t3-<config>-imagenet-s<seed>), to --run and --report alike.
        Before queueing, --run finds (or downloads) every network's ImageNet file into
        $TORCH_HOME/hub/checkpoints, where every experiment's pretrained stage then reads them.
--rows  only these rows: the paper's (r18-plain-ce .. r34-cbam-focal, -imagenet with
        --pretrained) or the same grid of another network of model.arch (e.g.
        effb0-cbam-focal, effb0-plain-ce-imagenet), tabulated after the paper's without
        paper columns.
--report  reads each experiment's evaluation details and test predictions
        (data/reports/evaluation.json and test_predictions.csv, outputs of its evaluate stage)
        from DVC's cache at its experiment commit, and writes reports/table3.md and
        reports/table3.csv (see respiro/evaluation/table3.py for the statistics).

Queued experiments see committed files and changes to tracked files only (DVC copies the
workspace through git): --run refuses to start while pipeline files are untracked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from respiro.core.cli import run_stage
from respiro.core.config import PretrainedParams, load_params
from respiro.core.errors import StageError
from respiro.core.outputs import atomic_file
from respiro.data.acquire.hub import find_hub_file
from respiro.evaluation.reports import DETAILS, PREDICTIONS
from respiro.evaluation.table3 import (
    ALL_CONFIGS,
    CONFIGS,
    OTHER_NETWORKS,
    Config,
    Run,
    aggregate,
    check_same_data,
    run_from_files,
    to_csv,
    to_markdown,
)
from respiro.model.registry import get_architecture

# Run from the project root, as dvc is.
ROOT = Path.cwd()
REPORT_MD, REPORT_CSV = ROOT / "reports" / "table3.md", ROOT / "reports" / "table3.csv"
# What a queued experiment must find in git (it is built from a git commit of the workspace).
PIPELINE_PATHS = ("dvc.yaml", "params.yaml", "pyproject.toml", "stages", "src", "data/local")
# The stages no grid parameter reaches: `dvc repro stft` runs them (stft and its upstream).
AUDIO_STAGES = ("download", "resample", "normalize", "segment", "stft")
# Params shown in the report's header: the settings every run shares besides the grid's own.
HEADER_PARAMS = (
    "split.method", "segment.duration", "stft.n_fft", "stft.hop_length",
    "train.epochs", "train.batch_size", "train.lr", "loss.gamma", "loss.alpha",
)  # fmt: skip


def command(cmd: Sequence[str], capture: bool = False) -> str:
    """Run `cmd` in the repository root; its output goes to ours unless captured. Exit on failure."""
    result = subprocess.run(list(cmd), cwd=ROOT, text=True, stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        raise StageError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}")
    return result.stdout or ""


def experiments() -> dict[str, str]:
    """The finished experiments of the current commit: {name: experiment commit (short)}."""
    import dvc.api

    head = command(["git", "rev-parse", "HEAD"], capture=True).strip()
    found, under_head = {}, False
    # A row per baseline (the workspace, then HEAD: its rev column may hold its branch's
    # name), each followed by the rows of its experiments.
    for row in dvc.api.exp_show(repo=str(ROOT), revs=head):
        if row["typ"] == "baseline":
            under_head = row["rev"] != "workspace"
        # Queued, running and failed experiments are listed too; only finished ones have results.
        elif under_head and row["Experiment"] and row["State"] in (None, "Success"):
            found[row["Experiment"]] = row["rev"]
    return found


def fetch_imagenet_weights(configs: Sequence[Config], pretrained: PretrainedParams) -> None:
    """Put the ImageNet files the grid's "+ ImageNet init" rows need in $TORCH_HOME/hub/checkpoints
    once, before any experiment: queued experiments then find them there instead of each
    downloading, perhaps two at once into the same file; and a missing file stops the grid
    now, with one line, not after hours of other experiments."""
    archs = [get_architecture(name) for name in dict.fromkeys(c.arch for c in configs if c.pretrained)]
    if not archs:
        return
    if pretrained.path is not None and len(archs) > 1:
        raise StageError(
            f"--pretrained trains {' and '.join(a.label(False) for a in archs)}, and pretrained.path={pretrained.path} names one file: "
            f"set pretrained.path to null and put {' and '.join(a.weights_file('imagenet') for a in archs)} in $TORCH_HOME/hub/checkpoints"
        )
    for arch in archs:
        found = find_hub_file(
            arch.weights_file("imagenet"),
            f"ImageNet {arch.label(False)}, for table3 --pretrained",
            pretrained.path,
            pretrained.url,
        )
        print(f"table3: {found.name} (SHA-256 {found.sha256}) at {found.path}", flush=True)


def run_grid(
    seeds: Sequence[int],
    jobs: int,
    configs: Sequence[Config] = CONFIGS,
    pretrained: PretrainedParams | None = None,
    dry_run: bool = False,
    cluster: str | None = None,
) -> None:
    """Run every configuration x seed not yet run for this commit as a queued DVC experiment;
    with `dry_run`, print what would be queued and run nothing."""
    untracked = command(
        ["git", "ls-files", "--others", "--exclude-standard", "--", *PIPELINE_PATHS], capture=True
    ).split()
    if untracked:
        raise StageError(
            "queued experiments only see files git knows, and these are untracked: "
            f"{', '.join(untracked)}. `git add` them (committing is not needed) and run again."
        )
    if pretrained is not None and not dry_run:
        fetch_imagenet_weights(configs, pretrained)
    print(
        f"table3: {'would run ' if dry_run else ''}audio stages (download .. stft), once for the whole grid", flush=True
    )
    if not dry_run:
        command(["dvc", "repro", AUDIO_STAGES[-1]])
    existing = experiments()
    queued = []
    for config in configs:
        for seed in seeds:
            name = config.experiment_name(seed)
            if name in existing:
                print(f"table3: keeping experiment {name} of this commit (`dvc exp remove {name}` to rerun it)")
                continue
            overrides = [arg for key, value in config.overrides(seed).items() for arg in ("-S", f"{key}={value}")]
            if dry_run:
                print(f"table3: would queue {name}: {' '.join(overrides)}")
            else:
                command(["dvc", "exp", "run", "--queue", "--quiet", "-n", name, *overrides])
            queued.append(name)
    if dry_run:
        print(f"table3: dry run: {len(queued)} experiments would run, {jobs} at a time; nothing was queued")
        return
    if not queued:
        return
    if cluster is not None:
        from respiro.commands.cluster_run import Cluster, run_queue

        print(f"table3: running {len(queued)} experiments on the Ray cluster {cluster}", flush=True)
        run_queue(ROOT, Cluster(cluster), names=queued)
    else:
        print(f"table3: running {len(queued)} experiments, {jobs} at a time", flush=True)
        command(["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)])
    # `--run-all` exits 0 even when an experiment failed: check that each one left a result.
    failed = [name for name in queued if name not in experiments()]
    if failed:
        raise StageError(f"experiments failed: {', '.join(failed)} (see `dvc queue logs <name>`)")


def read_output(path: Path, rev: str) -> str:
    """A cached pipeline output as it was at experiment commit `rev`, from DVC's cache."""
    import dvc.api

    try:
        return dvc.api.read(str(path), repo=str(ROOT), rev=rev)
    except Exception as err:  # DVC raises several types for a missing cache object
        raise StageError(
            f"cannot read {path} of experiment commit {rev[:7]} from the DVC cache ({err}); rerun it or `dvc pull` it"
        ) from err


def _nested(params: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        params = params.get(key, {}) if isinstance(params, dict) else {}
    return params


def collect(seeds: Sequence[int], configs: Sequence[Config] = CONFIGS) -> tuple[list[Run], list[str], dict[str, str]]:
    """The grid's runs read back from their experiment commits, the names not found, header settings."""
    found = experiments()
    runs, missing, used = [], [], []
    for config in configs:
        for seed in seeds:
            name = config.experiment_name(seed)
            if name not in found:
                missing.append(name)
                continue
            rev = found[name]
            eval_json = json.loads(read_output(DETAILS, rev))
            run = run_from_files(eval_json, read_output(PREDICTIONS, rev))
            if (run.config, run.seed) != (config, seed):
                raise StageError(f"experiment {name} holds {run.config.experiment_name(run.seed)}'s results")
            runs.append(run)
            used.append(yaml.safe_load(read_output(Path("params.yaml"), rev)))
    settings = {}
    for key in HEADER_PARAMS:
        # JSON text makes values hashable; strings are shown without its quotes.
        values = [json.loads(v) for v in sorted({json.dumps(_nested(p, key)) for p in used})]
        shown = [v if isinstance(v, str) else json.dumps(v) for v in values]
        settings[key] = shown[0] if len(shown) == 1 else f"varies: {', '.join(shown)}"
    return runs, missing, settings


def report(seeds: Sequence[int], replicates: int, bootstrap_seed: int, configs: Sequence[Config] = CONFIGS) -> None:
    runs, missing, settings = collect(seeds, configs)
    if not runs:
        raise StageError(
            f"no experiments found for this commit (expected e.g. {CONFIGS[-1].experiment_name(seeds[0])}); run with --run"
        )
    provenance = check_same_data(runs)
    rows = aggregate(runs, replicates, bootstrap_seed)
    head = command(["git", "rev-parse", "--short", "HEAD"], capture=True).strip()
    header = {
        "Experiments": f"t3-<config>-s<seed> of commit {head}, seeds {' '.join(map(str, seeds))}",
        **settings,
        "Bootstrap": f"{replicates} resamples of the test patients, seed {bootstrap_seed}",
    }
    markdown = to_markdown(rows, provenance, header, missing)
    for path, text in ((REPORT_MD, markdown), (REPORT_CSV, to_csv(rows))):
        with atomic_file(path) as tmp:
            tmp.write_text(text)
    print(markdown)
    print(f"table3: wrote {REPORT_MD.relative_to(ROOT)} and {REPORT_CSV.relative_to(ROOT)}")
    if missing:
        print(f"table3: {len(missing)} experiments not found: {', '.join(missing)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="respiro table3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="store_true", help="run the grid as DVC experiments")
    parser.add_argument("--report", action="store_true", help="write reports/table3.md and .csv")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: params.yaml table3.seeds)")
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help="only these rows, by name: the paper's "
        + ", ".join(c.slug for c in ALL_CONFIGS)
        + "; or another network's, e.g. "
        + ", ".join(c.slug for c in OTHER_NETWORKS[:2])
        + " (default: the paper's rows)",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help='add a "+ ImageNet init" row beside each of the paper\'s (model.pretrained: imagenet)',
    )
    # One at a time by default: training already uses both cores of a small machine, and
    # parallel workers would only compete for them (and each holds its own copy of the data).
    parser.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (default 1)")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --run: list the experiments it would queue, run nothing"
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="with --run: run the grid on a Ray cluster instead of here, as `respiro queue start --cluster "
        "ADDRESS` does (HOST:PORT, ray://HOST:10001, auto or local; docs/cluster.md)",
    )
    args = parser.parse_args(argv)
    if not (args.run or args.report):
        parser.error("nothing to do: give --run, --report or both")
    if args.dry_run and (args.report or not args.run):
        parser.error("--dry-run goes with --run alone (it lists what --run would queue)")
    if args.cluster is not None and not args.run:
        parser.error("--cluster goes with --run (it says where the grid runs)")
    params = load_params(ROOT / "params.yaml")
    table3 = params.table3
    configs = ALL_CONFIGS if args.pretrained else CONFIGS
    if args.rows is not None:
        # The paper's rows as --pretrained chose them, and any row of another network.
        known = {c.slug: c for c in (*configs, *OTHER_NETWORKS)}
        unknown = [r for r in args.rows if r not in known]
        if unknown:
            parser.error(f"--rows: unknown {', '.join(unknown)}; the rows are {', '.join(known)}")
        configs = tuple(c for c in known.values() if c.slug in args.rows)
    seeds = args.seeds if args.seeds is not None else list(table3.seeds)
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        parser.error(f"--seeds must be distinct integers >= 0; got {seeds}")
    if args.run:
        run_grid(seeds, args.jobs, configs, params.pretrained, dry_run=args.dry_run, cluster=args.cluster)
    if args.report:
        report(seeds, table3.bootstrap, table3.bootstrap_seed, configs)


def run(argv: list[str] | None = None) -> None:
    """`respiro table3 ...`: expected errors and Ctrl-C end with one line."""
    run_stage("table3", lambda: main(argv), resume="respiro table3 --run (finished experiments are kept)")
