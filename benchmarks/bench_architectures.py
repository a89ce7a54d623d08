"""Every network of the registry (model.arch) side by side, measured in one run (not a test).

Per architecture, with and without CBAM where it has a placement: parameters, multiply-adds
of one 8 s cycle (every Conv2d and Linear: output elements x input channels per group x
kernel area; the elementwise work of activations, norms, gates and attention's softmax is
not counted, nor attention's two token-by-token products), the CPU training step (forward,
loss, backward, AdamW step; train mode) in fp32 and under bf16 autocast, per cycle, and
inference per cycle (eval mode, fp32, as evaluate and predict run it). Each network gets one
8 s cycle of its own front-end: the default spectrogram (1, 129, 126) at 4 kHz for the CNNs,
the AST's fbank (1, 128, 798) at 16 kHz for the AST, at AST-Base size (params.yaml's
model.ast). The AST is timed on smaller batches (--ast-batch): AST-Base's step on 32 cycles
takes minutes on 2 cores; the times are per cycle so that the rows compare.

Run from the repository root and paste the printed table into benchmarks/RESULTS_model.md:

    PYTHONPATH=src python -m benchmarks.bench_architectures --warmup 1 --steps 3
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from respiro.core.config import ModelParams
from respiro.model.registry import ARCHITECTURES, create_model

# One 8 s cycle of each network's front-end, where it is not the default spectrogram's.
OWN_INPUT = {"ast": (128, 798)}


def macs(model: nn.Module, shape: tuple[int, int]) -> int:
    """Multiply-adds of one `(1, 1, F, T)` forward pass in Conv2d and Linear layers."""
    total = 0

    def count(module: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += out.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, *shape))
    for hook in hooks:
        hook.remove()
    return total


def seconds_per_step(
    model: nn.Module, shape: tuple[int, int], batch: int, bf16: bool, warmup: int, steps: int
) -> float:
    """One training step, channels_last as training runs it."""
    model = model.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


@torch.inference_mode()
def seconds_per_cycle(model: nn.Module, shape: tuple[int, int], batch: int, warmup: int, steps: int) -> float:
    model = model.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    x = torch.randn(batch, 1, *shape).contiguous(memory_format=torch.channels_last)
    for _ in range(warmup):
        model(x)
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    return (time.perf_counter() - start) / (steps * batch)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return " ".join(fields.get("Model name", "?").split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freq", type=int, default=129, help="frequency bins F (default: the default front-end's)")
    parser.add_argument("--frames", type=int, default=126, help="time frames T of one 8 s cycle")
    parser.add_argument("--batch", type=int, default=32, help="training batch (train.batch_size)")
    parser.add_argument("--infer-batch", type=int, default=64, help="inference batch (evaluate.batch_size)")
    parser.add_argument("--ast-batch", type=int, default=4, help="the AST's training and inference batch")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    model_params = yaml.safe_load(open("params.yaml"))["model"]

    print(
        f"{cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; one 8 s cycle of each "
        f"network's front-end; training batch {args.batch} (AST {args.ast_batch}), inference batch "
        f"{args.infer_batch} (AST {args.ast_batch}); {args.warmup} warm-up + {args.steps} timed repeats"
    )
    print(
        "\n| model.arch | network | input | parameters | MMACs / cycle | train fp32 (ms / cycle) "
        "| train bf16 (ms / cycle) | inference fp32 (ms / cycle) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, arch in ARCHITECTURES.items():
        shape = OWN_INPUT.get(name, (args.freq, args.frames))
        batch, infer_batch = (args.ast_batch, args.ast_batch) if name in OWN_INPUT else (args.batch, args.infer_batch)
        for cbam in (False, True) if arch.cbam_placement is not None else (False,):
            params = ModelParams(**{**model_params, "arch": name, "cbam": cbam})
            build = lambda params=params: create_model(params, 4)  # noqa: E731
            torch.manual_seed(0)
            model = build()
            count = sum(p.numel() for p in model.parameters())
            mmacs = macs(model, shape) / 1e6
            fp32 = seconds_per_step(build(), shape, batch, False, args.warmup, args.steps) / batch
            bf16 = seconds_per_step(build(), shape, batch, True, args.warmup, args.steps) / batch
            infer = seconds_per_cycle(build(), shape, infer_batch, args.warmup, args.steps)
            print(
                f"| {name} | {arch.label(cbam)} | {shape[0]} x {shape[1]} | {count:,} | {mmacs:,.0f} "
                f"| {1000 * fp32:.0f} | {1000 * bf16:.0f} | {1000 * infer:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
