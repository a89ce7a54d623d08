"""Where training runs, how it is seeded, and which kernels it runs on.

What repeats byte for byte where (docs/reproducibility-bad-input.md has the table):
- CPU, default kernels: the same CPU type and thread count. Each oneDNN or MKL kernel is
  deterministic on one CPU and thread count, except oneDNN's AMX bf16 kernels for some
  shapes, which a bf16 run tests first (training/kernel_check.py).
- CPU, strict kernels (train.precision: strict): any instruction set of one CPU vendor, on
  one thread whatever the machine has; `set_kernels` checks at run time that they are in
  place. The optimizer's square roots are correctly rounded (`CorrectlyRoundedSqrt`): MKL's
  vector sqrt, which ATen calls, is not, and rounds differently on Intel and AMD (the only
  op of a whole training step whose bytes did, docs/reproducibility-bad-input.md).
- CUDA: the same GPU model, driver and library versions, with deterministic algorithms
  (cuDNN's choice fixed below).
"""

from __future__ import annotations

import ctypes
import os
import random
from pathlib import Path
from typing import Any, TypeVar, assert_never

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from respiro.core.config import Device, Precision
from respiro.core.errors import StageError
from respiro.core.kernels import STRICT_ENV, KernelMode, kernel_mode, use_kernels
from respiro.training.precision import Arithmetic, set_cuda_fp32

# Strict kernels still split their sums by thread: one thread everywhere (measured: a strict
# run on 1 and on 2 threads gave other model bytes).
STRICT_THREADS = 1
# mkl_cbwr_get(MKL_CBWR_BRANCH)'s answers (mkl_service.h); COMPATIBLE is the strict one.
MKL_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE"}


def resolve_device(name: Device, key: str = "train.device") -> torch.device:
    """`auto` -> CUDA when present, else CPU; `cuda` without a GPU is an error naming `key`
    (the params key, or a command's option)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise StageError(f"{key} is cuda but no CUDA device is available; use auto or cpu")
        return torch.device("cuda")
    if name == "cpu":
        return torch.device("cpu")
    assert_never(name)


def training_device(name: Device, precision: Precision) -> torch.device:
    """The device of `train.device` = `name`; strict kernels are CPU kernels, so `auto`
    stays on the CPU with train.precision: strict (the schema refuses strict with cuda)."""
    return resolve_device("cpu" if precision == "strict" else name)


def mkl_branch() -> str | None:
    """The code branch MKL runs (`COMPATIBLE`, `AUTO`, ...), or None where torch has no MKL."""
    try:
        get = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    branch = get(1)  # MKL_CBWR_BRANCH
    return MKL_BRANCHES.get(branch, f"branch {branch}")


def strict_problems() -> list[str]:
    """Why this process would not run the strict kernels (empty: it does)."""
    problems = []
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        problems.append(
            f"ATen runs its {capability} kernels, not AVX2 (a CPU without AVX2, or ATEN_CPU_CAPABILITY set after torch loaded)"
        )
    branch = mkl_branch()
    if branch != "COMPATIBLE":
        problems.append(
            f"MKL runs {'no branch (torch without MKL: not x86-64?)' if branch is None else branch}, not COMPATIBLE"
        )
    unset = [f"{k}={v}" for k, v in STRICT_ENV.items() if os.environ.get(k) != v]
    if unset:
        problems.append(f"the environment lacks {', '.join(unset)}")
    if torch.backends.mkldnn.enabled or torch._C._get_nnpack_enabled():
        problems.append("oneDNN or NNPACK is on")
    if not torch.are_deterministic_algorithms_enabled():
        problems.append("deterministic algorithms are off")
    return problems


def set_kernels(mode: KernelMode) -> dict[str, Any]:
    """torch's half of kernel `mode` (core/kernels.py put the environment in place before
    torch loaded), checked: strict that cannot hold stops with one line naming
    train.precision. Returns what ran, for the run's record beside its outputs."""
    if mode == "strict":
        torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
        # set_flags, not `.enabled = False`: torch.backends.nnpack has no such property, and
        # NNPACK's blocking follows the CPU's cache sizes (other bytes on another CPU model).
        torch.backends.nnpack.set_flags(False)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(STRICT_THREADS)
        problems = strict_problems()
        if problems:
            raise StageError(f"train.precision is strict but this process cannot be: {'; '.join(problems)}")
    return {
        "kernels": mode,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


class CorrectlyRoundedSqrt(TorchDispatchMode):
    """float32 square roots computed in float64 and rounded once to float32: the correctly
    rounded result IEEE 754 defines, the same bytes on every CPU (a float64 square root is
    correctly rounded, and rounding it to float32 is exact for sqrt: float64 carries more than
    2 x 24 + 2 bits). Every other op runs as it is."""

    SQRT = frozenset({torch.ops.aten.sqrt.default, torch.ops.aten._foreach_sqrt.default})

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in self.SQRT and not kwargs:
            (x,) = args
            if func is torch.ops.aten.sqrt.default:
                return torch.sqrt(x.double()).float() if x.dtype == torch.float32 else func(x)
            return [torch.sqrt(t.double()).float() if t.dtype == torch.float32 else t.sqrt() for t in x]
        return func(*args, **(kwargs or {}))


def round_optimizer_sqrt(optimizer: torch.optim.Optimizer) -> None:
    """Run `optimizer.step` under CorrectlyRoundedSqrt from now on (train.precision: strict)."""
    step = optimizer.step

    def correctly_rounded_step(*args: Any, **kwargs: Any) -> Any:
        with CorrectlyRoundedSqrt():
            return step(*args, **kwargs)

    optimizer.step = correctly_rounded_step  # type: ignore[method-assign]


def use_model_kernels(mode: KernelMode, device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    """Evaluate and predict a model on `device` on the kernels it needs: on the CPU, its own
    (TrainedModel.kernels; a strict model on strict kernels too: where torch loaded with
    others, the command starts again with them, core/kernels.use_kernels), then
    `set_kernels`; on CUDA, IEEE float32 (inference is float32 on every device)."""
    if device.type == "cuda":
        return {"kernels": "cuda", "fp32": set_cuda_fp32("fp32")}
    use_kernels(mode)
    return set_kernels(mode)


def set_training_kernels(precision: Precision, arithmetic: Arithmetic, device: torch.device) -> dict[str, Any]:
    """`set_kernels` for the kernel mode of a `train.precision` value on the CPU; on CUDA,
    float32 as `arithmetic` says (precision.set_cuda_fp32)."""
    if device.type == "cuda":
        return {"kernels": "cuda", "fp32": set_cuda_fp32(arithmetic)}
    return set_kernels(kernel_mode(precision))


M = TypeVar("M", bound=torch.nn.Module)


def to_device(model: M, device: torch.device) -> M:
    """`model` on `device` in channels_last layout, as training and inference run it (faster
    convolutions on CPU and tensor-core GPUs). torch's type stubs lack Module.to's
    memory_format argument, hence the one ignore."""
    return model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Reproducible cuDNN choices at a small speed cost (CPU kernels: see the module's docstring).
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
