"""The strict fingerprint: a short `train.precision: strict` run on the default data whose bytes
are committed in tests/strict_fingerprint.json, per CPU vendor, and recomputed by the full
test tier on whatever machine CI runs (tests/test_baseline.py).

Strict kernels (src/respiro/core/kernels.py) give the same bytes for any thread count and
instruction set of one CPU; whether two vendors agree is what the file records: each vendor's
entry is added on a machine of that vendor. An entry holds for the training code, data and
params it was made with (its `training_key`); a change to any of them makes it stale, like a
stale dvc.lock, and it is recorded again (entries of other vendors for older code are dropped).

    python -m tests.strict            # in a project after `dvc repro`: run it and compare
    python -m tests.strict --record   # run it and record this vendor's bytes (commit the file)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.machine import SCORES, TRAINING_STAGES, _cpu, lock_outs, training_key

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT = Path("tests/strict_fingerprint.json")
# One epoch of ResNet-18 on 2-second cycles: strict kernels cost several times the default
# ones, and this keeps the run near a minute on 2 cores while covering every part of training
# and evaluation (the data stages' own bytes are checked by the baseline).
OVERRIDES = {"train.precision": "strict", "train.epochs": 1, "model.arch": "resnet18", "segment.duration": 2.0}
# The stage reports that record the machine (its thread count and kernels) beside the run:
# every other output of train and evaluate is compared.
MACHINE_RECORDS = ("data/reports/train.json", "data/reports/evaluation.json")


def vendor() -> str:
    """`GenuineIntel`, `AuthenticAMD`, ... (the machine's architecture where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "vendor_id":
                return value.strip()
    except OSError:
        pass
    import platform

    return platform.machine()


def run_fingerprint(project: Path) -> dict[str, Any]:
    """Run the strict experiment in `project` (its data stages reused from DVC's cache) and
    return what it made: md5s of the train and evaluate outputs, the scores, the key."""
    overrides = [arg for key, value in OVERRIDES.items() for arg in ("-S", f"{key}={value}")]
    subprocess.run(
        ["dvc", "exp", "run", *overrides], cwd=project, check=True, capture_output=True, text=True, timeout=1800
    )
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    report = json.loads((project / "data/reports/train.json").read_text())
    return {
        "cpu": _cpu()[0],
        "threads": report["threads"],
        "training_key": training_key(lock),
        "outs": {k: v for k, v in lock_outs(lock, TRAINING_STAGES).items() if k not in MACHINE_RECORDS},
        "scores": json.loads((project / SCORES).read_text()),
    }


def load(project: Path = ROOT) -> dict[str, Any]:
    return json.loads((project / FINGERPRINT).read_text())


def compare(made: dict[str, Any], known: dict[str, Any], this_vendor: str | None = None) -> str:
    """`same bytes`, or a sentence saying what differs, is stale or is missing."""
    this_vendor = this_vendor or vendor()
    entry = known["vendors"].get(this_vendor)
    if entry is None:
        seen = ", ".join(sorted(known["vendors"])) or "none"
        return f"no fingerprint for {this_vendor} yet (recorded: {seen}): `python -m tests.strict --record` on this machine adds it"
    if entry["training_key"] != made["training_key"]:
        return f"stale: {FINGERPRINT} was made for other training code, data or params; run `python -m tests.strict --record` and commit it"
    moved = [path for path, md5 in entry["outs"].items() if made["outs"].get(path) != md5]
    if made["scores"] != entry["scores"]:
        moved.append(str(SCORES))
    if moved:
        return f"strict run differs from {this_vendor}'s fingerprint ({entry['cpu']}, {entry['threads']} threads) in {', '.join(moved)}"
    return "same bytes"


def record(made: dict[str, Any], project: Path = ROOT, this_vendor: str | None = None) -> None:
    known = load(project)
    current = {v: e for v, e in known["vendors"].items() if e["training_key"] == made["training_key"]}
    known["vendors"] = {**current, this_vendor or vendor(): made}
    (project / FINGERPRINT).write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record this CPU vendor's bytes in " + str(FINGERPRINT))
    args = parser.parse_args(argv)
    made = run_fingerprint(Path.cwd())
    if args.record:
        record(made, Path.cwd())
        print(f"recorded {vendor()} ({made['cpu']}, {made['threads']} threads) in {FINGERPRINT}: commit it")
        return
    verdict = compare(made, load(Path.cwd()))
    print(f"strict fingerprint on {made['cpu']} ({made['threads']} threads): {verdict}")
    sys.exit(0 if verdict == "same bytes" or verdict.startswith("no fingerprint") else 1)


if __name__ == "__main__":
    main()
