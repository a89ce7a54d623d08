"""A bfloat16 kernel self-test, run before a process trains in bf16 on a CPU whose fast
kernels are suspect: oneDNN's AMX kernels today.

Measured on an Intel Xeon with AMX (issue 36): a bf16 3x3 stride-2 convolution whose input is
1 or 2 wide gives NaN or errors as large as its values, different on every call; capped at
AVX512_CORE_BF16 the same call is right. Five of ResNet-34's input shapes do that, all from
cycles of 32 frames or fewer; the default 8 s cycle (126 frames) never meets one, and AMX
trains it 2.5 times faster than the capped kernels. So, instead of capping every AMX run:

1. `kernel_cases` runs the network once, forward, at the run's real input size, and keeps
   one input per distinct convolution and linear layer (by its weights' shape, stride,
   padding, dilation, groups and input shape);
2. `check_case` computes each under bf16 autocast twice, and in float64 from the same
   bf16-rounded input and weights: the two calls must give the same bytes, and the result
   must be finite and within `TOLERANCE` of the float64 one (relative to its largest value;
   bf16's own rounding is 2^-8, the broken kernels' errors are 100 % and more);
3. if every case passes the run keeps the fast kernels; if one fails, `ensure_bf16_kernels`
   says so in one line naming the shape, and with train.precision bf16 starts the same
   command again with oneDNN capped (core/kernels.py's AMX_CAP, the environment torch must
   load with), with auto trains in fp32 instead (no AMX kernel; on the Xeon measured, fp32
   took 1,175 to 1,299 ms a step and capped bf16 1,627 ms). The verdict goes into the stage's
   report (train.json) either way.

It runs once per process, before the first epoch (seconds: one call per distinct layer). It
runs only where it matters: bf16 arithmetic on the CPU, an AMX CPU, oneDNN on, and no cap
set by the user or by an earlier fallback. Inference is float32 everywhere (precision.py), so
evaluate, predict and export never run these kernels.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from respiro.core.errors import StageError
from respiro.core.kernels import AMX_CAP, AMX_FLAGS, cpu_flags

TOLERANCE = 2.0**-5  # of the reference's largest magnitude: 8x bf16's rounding, far below a broken kernel's error
# Set by the fallback in the environment of the restarted command: why it was capped.
FALLBACK_VARIABLE = "RESPIRO_BF16_FALLBACK"


@dataclass(frozen=True)
class KernelCase:
    """One distinct layer of the network and an input it gets in the run."""

    name: str  # the module's name in the network, e.g. layer4.0.conv1
    module: nn.Conv2d | nn.Linear
    input: Tensor

    def describe(self) -> str:
        if isinstance(self.module, nn.Conv2d):
            m = self.module
            return (
                f"{self.name}: conv2d {m.in_channels}->{m.out_channels} {m.kernel_size[0]}x{m.kernel_size[1]} "
                f"stride {m.stride[0]} on input {tuple(self.input.shape[1:])}"
            )
        return f"{self.name}: linear {self.module.in_features}->{self.module.out_features} on input {tuple(self.input.shape[1:])}"


def _signature(module: nn.Conv2d | nn.Linear, x: Tensor) -> tuple[Any, ...]:
    conv = (module.stride, module.padding, module.dilation, module.groups) if isinstance(module, nn.Conv2d) else ()
    return (type(module).__name__, tuple(module.weight.shape), conv, tuple(x.shape[1:]))


def kernel_cases(model: nn.Module, x: Tensor) -> list[KernelCase]:
    """Every distinct convolution and linear layer `model` runs on inputs like `x` (its real
    batch and size), with the input it gets: one forward pass, in eval mode, no gradients."""
    cases: dict[tuple[Any, ...], KernelCase] = {}
    names = {module: name for name, module in model.named_modules()}

    def keep(module: nn.Module, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
        assert isinstance(module, (nn.Conv2d, nn.Linear))
        cases.setdefault(_signature(module, inputs[0]), KernelCase(names[module], module, inputs[0].detach().float()))

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return list(cases.values())


def check_case(case: KernelCase) -> str | None:
    """Why the bf16 kernel of `case` cannot be trusted (not repeatable, not finite, or off
    the float64 result by more than TOLERANCE), or None when it is right."""
    module, x = case.module, case.input
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        first, second = module(x).float(), module(x).float()
    if not (torch.isfinite(first).all() and torch.isfinite(second).all()):
        return "NaN or infinite outputs"
    if not torch.equal(first, second):
        return "two calls gave different numbers"
    return _off_the_reference(module, x, first)


@torch.no_grad()
def _off_the_reference(module: nn.Conv2d | nn.Linear, x: Tensor, result: Tensor) -> str | None:
    """How far `result` is from float64 on what the bf16 kernel reads (the input and weights
    rounded to bf16), if further than TOLERANCE."""
    x64 = x.to(torch.bfloat16).double()
    weight = module.weight.to(torch.bfloat16).double()
    bias = module.bias.to(torch.bfloat16).double() if module.bias is not None else None
    if isinstance(module, nn.Conv2d):
        reference = torch.nn.functional.conv2d(
            x64, weight, bias, module.stride, module.padding, module.dilation, module.groups
        )
    else:
        reference = torch.nn.functional.linear(x64, weight, bias)
    scale = float(reference.abs().max()) or 1.0
    error = float((result.double() - reference).abs().max())
    if error > TOLERANCE * scale:
        return f"off by {error:.3g} where the largest value is {scale:.3g}"
    return None


@dataclass(frozen=True)
class Verdict:
    """What the self-test found: `kernels` is `fast` (every case right), `capped` (a case
    failed, or the cap was set before the run), `fp32` (a case failed and train.precision
    auto trains in float32 instead) or `not checked` (nothing suspect)."""

    kernels: str
    cases: int = 0
    failed: str | None = None  # the failing case and why

    def summary(self) -> str:
        """For the stage's line: empty where nothing was checked."""
        if self.kernels == "not checked":
            return ""
        if self.kernels == "fp32":
            return f"; fp32, not bf16: {self.failed}"
        if self.failed is not None:
            return f"; bf16 kernels capped ({AMX_CAP[0]}={AMX_CAP[1]}): {self.failed}"
        return f"; bf16 kernels: AMX, {self.cases} layers checked"

    def record(self) -> dict[str, Any]:
        """The run report's entry (train.json)."""
        return {"bf16_kernels": {"kernels": self.kernels, "cases": self.cases, "failed": self.failed}}


def self_test(model: nn.Module, x: Tensor) -> Verdict:
    """Check every distinct layer of `model` on inputs like `x` (see the module's docstring)."""
    cases = kernel_cases(model, x)
    for case in cases:
        why = check_case(case)
        if why is not None:
            return Verdict("capped", len(cases), f"{case.describe()}: {why}")
    return Verdict("fast", len(cases))


def kernels_suspect(arithmetic: str, device: torch.device, environ: Mapping[str, str], flags: frozenset[str]) -> bool:
    """Whether a run must test its bf16 kernels first: bf16 on the CPU of an AMX machine,
    oneDNN on, no ISA cap in place."""
    return (
        arithmetic == "bf16"
        and device.type == "cpu"
        and bool(AMX_FLAGS & flags)
        and AMX_CAP[0] not in environ
        and bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    )


def restart_capped(reason: str) -> None:
    """Run this same command again with oneDNN capped at AMX_CAP (it must be set before
    torch loads), the reason in FALLBACK_VARIABLE for the new process's report."""
    environ = {**os.environ, AMX_CAP[0]: AMX_CAP[1], FALLBACK_VARIABLE: reason}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)


def refuse_restart(reason: str) -> None:
    """For a run of several processes (train.processes > 1): one cannot start again alone."""
    raise StageError(
        f"bf16 kernel self-test: {reason}; a run of several processes cannot start itself again: "
        f"set {AMX_CAP[0]}={AMX_CAP[1]} in the environment and rerun"
    )


def ensure_bf16_kernels(
    model: nn.Module,
    x: Tensor,
    arithmetic: str,
    *,
    flags: frozenset[str] | None = None,
    restart: Callable[[str], None] | None = restart_capped,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Verdict:
    """The kernels this run may keep for `model` on inputs like `x`, on x's device (see the
    module's docstring); on a failing case, one
    line and `restart` (which does not return in a real run), or, with `restart` None
    (train.precision auto), the verdict `fp32`: train in float32, which uses no AMX kernel and
    was faster than capped bf16 where measured."""
    fallback = os.environ.get(FALLBACK_VARIABLE)
    if fallback is not None and os.environ.get(AMX_CAP[0]) == AMX_CAP[1]:
        return Verdict("capped", failed=fallback)
    if not kernels_suspect(arithmetic, x.device, os.environ, cpu_flags() if flags is None else flags):
        return Verdict("not checked")
    verdict = self_test(model, x)
    if verdict.failed is None:
        return verdict
    if restart is None:
        say(
            f"bf16 kernel self-test: {verdict.failed}; train.precision auto trains in fp32 instead "
            "(oneDNN's AMX kernels are wrong for this shape, and capped bf16 is slower than fp32)"
        )
        return Verdict("fp32", verdict.cases, verdict.failed)
    say(
        f"bf16 kernel self-test: {verdict.failed}; running again with {AMX_CAP[0]}={AMX_CAP[1]} "
        "(oneDNN's AMX kernels are wrong for this shape)"
    )
    restart(verdict.failed)
    return verdict
