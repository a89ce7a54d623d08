"""Benchmark: what `train.precision: auto` picks on this CPU, and the step times behind it (not
a test).

Three rows for the default network (ResNet-34 + CBAM, batch 32, 8 s cycles of the default
front-end, 1 x 129 x 126), the train stage's own step (`make_step`, AdamW, focal loss), each
in a process of its own (oneDNN reads its ISA cap when torch loads):
- fp32;
- bf16 on the safe ISA: oneDNN capped at AVX512_CORE_BF16 (what a failed AMX self-test runs);
- bf16 on the fast kernels: no cap (AMX where the CPU has it; on a CPU without AMX the same
  kernels as the row above);
then the choice of `auto` here: its arithmetic, and on an AMX CPU the kernel self-test's
verdict for the default shape (training/kernel_check.py) and for a 2 s cycle (1 x 129 x 32).

The rows run one after the other, so their ratios are fair on a quiet machine. Run from the
repository root and paste the table into benchmarks/RESULTS_train.md with the machine:

    PYTHONPATH=src python -m benchmarks.bench_precision --steps 4 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from respiro.core.kernels import AMX_CAP, AMX_FLAGS, cpu_flags

ROWS = {
    "fp32": ("fp32", {}),
    "bf16, safe ISA": ("bf16", {AMX_CAP[0]: AMX_CAP[1]}),
    "bf16, fast kernels": ("bf16", {}),
}


def time_row(arithmetic: str, steps: int, warmup: int) -> float:
    """ms per training step of the default network in `arithmetic`, in this process."""
    import torch

    from benchmarks.bench_train import SHAPE, WARMUP_STEPS, new_step, random_batches, time_epoch

    assert SHAPE == (129, 126)
    device = torch.device("cpu")
    timed = random_batches(32 * steps, 32, device)
    warm = random_batches(32 * (WARMUP_STEPS + warmup), 32, device, seed=1)
    _, seconds, _ = time_epoch(new_step(34, True, arithmetic, "eager", timed), timed, warm)  # type: ignore[arg-type]
    return 1000 * seconds / steps


def auto_choice() -> dict[str, str]:
    """What auto picks here, and the self-test's verdicts (default shape, 2 s cycle)."""
    import torch

    from respiro.core.config import ModelParams
    from respiro.model.registry import create_model
    from respiro.training.kernel_check import ensure_bf16_kernels
    from respiro.training.precision import resolve_arithmetic

    cpu = torch.device("cpu")
    arithmetic = resolve_arithmetic("auto", cpu)
    torch.manual_seed(0)
    params = ModelParams(arch="resnet34", cbam=True, cbam_reduction=16, pretrained="none")
    model = create_model(params, 4).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    verdicts = {}
    for frames in (126, 32):
        x = torch.randn(32, 1, 129, frames).contiguous(memory_format=torch.channels_last)
        verdict = ensure_bf16_kernels(model, x, arithmetic, restart=None, say=lambda _line: None)
        verdicts[frames] = verdict
    picked = "fp32" if verdicts[126].kernels == "fp32" else arithmetic
    return {
        "auto": picked,
        "self-test, 8 s cycle": verdicts[126].kernels + (f" ({verdicts[126].failed})" if verdicts[126].failed else ""),
        "self-test, 2 s cycle": verdicts[32].kernels + (f" ({verdicts[32].failed})" if verdicts[32].failed else ""),
    }


def child(args: list[str], env: dict[str, str]) -> str:
    """The last line a child run of this module prints, with oneDNN's cap as `env` says only."""
    clean = {k: v for k, v in os.environ.items() if k != AMX_CAP[0]}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_precision", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--row", choices=["fp32", "bf16", "auto"], help=argparse.SUPPRESS)  # a child's work
    args = parser.parse_args()
    if args.row == "auto":
        print(json.dumps(auto_choice()))
        return
    if args.row is not None:
        print(time_row(args.row, args.steps, args.warmup))
        return

    from benchmarks.bench_architectures import cpu_model

    amx = bool(AMX_FLAGS & cpu_flags())
    print(f"{cpu_model()} ({'AMX' if amx else 'no AMX'}); ResNet-34 + CBAM, batch 32, 1 x 129 x 126; "
          f"{args.warmup} warm-up + {args.steps} timed steps per row, each row in its own process")  # fmt: skip
    print("\n| arithmetic | ms / step | speed vs fp32 |\n|---|---:|---:|")
    times = {}
    for name, (arithmetic, env) in ROWS.items():
        timing = ["--row", arithmetic, "--steps", str(args.steps), "--warmup", str(args.warmup)]
        times[name] = float(child(timing, env))
        print(f"| {name} | {times[name]:,.0f} | {times['fp32'] / times[name]:.2f}x |", flush=True)
    choice = json.loads(child(["--row", "auto"], {}))
    print()
    for key, value in choice.items():
        print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
