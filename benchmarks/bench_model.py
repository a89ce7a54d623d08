"""Micro-benchmark: forward + backward throughput of the classifier (not a test).

Times `model(x)`, cross-entropy and `backward()` (no optimizer step) in train mode for
ResNet-18/34 with and without CBAM, on CPU (contiguous and channels_last) and on CUDA when
present (optionally under bf16 autocast). If torchvision is importable (it is never a
project requirement) each row also gets its ratio to torchvision's resnet34 with a
one-channel conv1 and 4 outputs, timed in the same setting.

Run from the repository root and paste the printed table into benchmarks/RESULTS_model.md:

    python -m benchmarks.bench_model --batch 32 --freq 129 --frames 251 --warmup 2 --steps 5
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from respiro.model.resnet import build_model


@dataclass(frozen=True)
class Setting:
    """Where and how a model is timed."""

    device: str
    channels_last: bool
    amp: bool

    def label(self) -> str:
        fmt = "channels_last" if self.channels_last else "contiguous"
        return f"{self.device} | {fmt} | {'bf16 autocast' if self.amp else 'fp32'}"


def torchvision_resnet34() -> nn.Module:
    """torchvision resnet34 with a one-channel conv1 and 4 outputs (needs torchvision)."""
    from torchvision.models import resnet34

    model = resnet34(num_classes=4)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def samples_per_second(
    model: nn.Module, setting: Setting, batch: int, shape: tuple[int, int], warmup: int, steps: int
) -> float:
    """Forward + backward samples/s on a random `(batch, 1, F, T)` input with random labels."""
    device = torch.device(setting.device)
    memory_format = torch.channels_last if setting.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format).train()
    x = torch.randn(batch, 1, *shape, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 4, (batch,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setting.amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--freq", type=int, default=129, help="frequency bins F")
    parser.add_argument("--frames", type=int, default=251, help="time frames T")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--amp", action="store_true", help="also time bf16 autocast on CUDA")
    args = parser.parse_args()
    shape = (args.freq, args.frames)

    settings = [Setting("cpu", False, False), Setting("cpu", True, False)]
    if torch.cuda.is_available():
        settings.append(Setting("cuda", False, False))
        if args.amp:
            settings.append(Setting("cuda", False, True))

    models: dict[str, Callable[[], nn.Module]] = {
        f"ResNet-{depth}{' + CBAM' if cbam else ''}": (lambda d=depth, c=cbam: build_model(d, cbam=c))
        for depth in (18, 34)
        for cbam in (False, True)
    }
    has_torchvision = importlib.util.find_spec("torchvision") is not None

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, input ({args.batch}, 1, {args.freq}, {args.frames}), "
        f"{args.warmup} warmup + {args.steps} timed steps, forward + backward"
    )
    print(
        "\n| model | device | memory format | precision | samples/s | ms/step |"
        + (" vs torchvision resnet34 |" if has_torchvision else "")
    )
    print("|---|---|---|---|---:|---:|" + ("---:|" if has_torchvision else ""))
    for setting in settings:
        torch.manual_seed(0)
        reference = None
        if has_torchvision:
            reference = samples_per_second(torchvision_resnet34(), setting, args.batch, shape, args.warmup, args.steps)
        rows = [
            (name, samples_per_second(make(), setting, args.batch, shape, args.warmup, args.steps))
            for name, make in models.items()
        ]
        if reference is not None:
            rows.append(("torchvision resnet34 (1-ch, 4 out)", reference))
        for name, rate in rows:
            ratio = f" {rate / reference:.2f} |" if reference is not None else ""
            print(f"| {name} | {setting.label()} | {rate:.1f} | {1000 * args.batch / rate:.0f} |{ratio}", flush=True)


if __name__ == "__main__":
    main()
