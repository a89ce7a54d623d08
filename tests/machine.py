"""The machine type the committed baseline was produced on, and the check after `dvc repro`.

`dvc repro` gives the same bytes (dvc.lock, metrics/) only on the same machine type: the
same CPU model and instruction sets (they pick torch's kernels), the same precision (bf16
where the CPU has it natively), the same torch thread count, the same device (no GPU), the
same pinned torch. tests/reference_machine.json records that type. On another machine a
rerun is correct but rounds differently, and training amplifies the difference: the scores
are then compared within TOLERANCE instead of byte for byte.

    python -m tests.machine                 # this machine, and whether it is the reference
    python -m tests.machine --is-reference  # exit 0 on the reference machine type, 1 otherwise
    python -m tests.machine --check         # after `dvc repro`: byte for byte on the reference
                                            # type, the scores within TOLERANCE elsewhere
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference_machine.json"
SCORES = Path("metrics/eval/metrics.json")
# Absolute differences accepted on another machine type. A judgment, not a measured bound:
# one seed's test score moves by a few hundredths (docs/training-speed.md), SE and SP,
# which trade against each other, by more.
TOLERANCE = {"icbhi_score": 0.05, "accuracy": 0.05, "se": 0.10, "sp": 0.10}
# Instruction sets that select different torch CPU kernels (and so different rounding).
ISA = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def _cpu() -> tuple[str, list[str]]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = set(fields.get("flags\t\t", fields.get("flags", "")).split())
    model = next((v.strip() for k, v in fields.items() if k.strip() == "model name"), platform.machine())
    return model, [f for f in ISA if f in flags]


def fingerprint() -> dict[str, Any]:
    """What decides the baseline's bytes on this machine."""
    import torch

    from respiro.training.precision import has_native_bf16

    model, isa = _cpu()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    device = torch.device("cuda" if gpu else "cpu")  # train.device: auto
    return {
        "cpu": model,
        "isa": isa,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "precision": "bf16" if has_native_bf16(device) else "fp32",  # train.precision: auto
        "torch": torch.__version__,
    }


def reference() -> dict[str, Any]:
    return {k: v for k, v in json.loads(REFERENCE.read_text()).items() if not k.startswith("_")}


def differences(this: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """`key: this != reference` for each way this machine is not the reference type."""
    return [f"{k}: {this.get(k)!r} != {v!r}" for k, v in ref.items() if this.get(k) != v]


def score_differences(reproduced: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """The scores that moved by more than TOLERANCE (an empty list: within tolerance)."""
    out = []
    for key, tolerance in TOLERANCE.items():
        a, b = reproduced.get(key), committed.get(key)
        if a is None or b is None or abs(a - b) > tolerance:
            out.append(f"{key}: {a} vs committed {b} (tolerance {tolerance})")
    return out


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def check(project: Path) -> list[str]:
    """After `dvc repro` in `project`: what differs from its last commit (empty: reproduced).

    On the reference machine type, any change to dvc.lock or metrics/ (a new file included);
    elsewhere, scores beyond TOLERANCE. Compared with HEAD, not the index: with
    core.autostage, `dvc repro` stages what it changed."""
    ref = reference()
    if not differences(fingerprint(), ref):
        diff = _git("diff", "--stat", "HEAD", "--", "dvc.lock", "metrics", cwd=project).stdout
        new = _git("ls-files", "--others", "--exclude-standard", "metrics", cwd=project).stdout
        return [line for line in (diff + new).splitlines() if line.strip()]
    committed = json.loads(_git("show", f"HEAD:{SCORES}", cwd=project).stdout)
    reproduced = json.loads((project / SCORES).read_text())
    return score_differences(reproduced, committed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--is-reference", action="store_true", help="exit 0 on the reference machine type, else 1")
    mode.add_argument("--check", action="store_true", help="after dvc repro: compare with the committed baseline")
    args = parser.parse_args(argv)
    this, ref = fingerprint(), reference()
    other = differences(this, ref)
    if args.check:
        problems = check(Path.cwd())
        how = "byte for byte" if not other else f"within {TOLERANCE} (another machine type: {'; '.join(other)})"
        print(f"baseline {how}: {'reproduced' if not problems else 'NOT reproduced'}")
        print("\n".join(problems))
        sys.exit(1 if problems else 0)
    print(json.dumps(this, indent=2))
    print("the reference machine type" if not other else "not the reference machine type: " + "; ".join(other))
    if args.is_reference:
        sys.exit(1 if other else 0)


if __name__ == "__main__":
    main()
