"""Training arithmetic: float32, TF32 tensor cores, or bfloat16 autocast, chosen per device.

`train.precision` names it; `auto` picks, per device, what trained fastest where measured
(docs/training-speed.md has the rows):
- CPU: bfloat16 autocast on a CPU with AVX512-BF16 or AMX (x86) or the BF16 extension
  (ARM), float32 elsewhere, where bfloat16 would be emulated and slower.
- CUDA: TF32 on a GPU that has it (NVIDIA Ampere and later), float32 before. On an H200
  bf16 autocast trained an epoch slower than TF32 (5.47 s against 4.31 s, eager): a step of
  this network is many small kernels, and autocast adds casts to each.
Only the forward pass runs under autocast; the loss, the gradients' accumulation in the
optimizer and the weights stay float32, and inference (`predict`) is always float32 (IEEE,
also on a GPU), so a checkpoint's probabilities do not depend on how it was trained.
"""

from __future__ import annotations

import contextlib
from typing import Literal, assert_never

import torch

from respiro.core.config import Precision
from respiro.core.errors import ParamsError
from respiro.core.kernels import cpu_flags

# What the forward pass computes in: IEEE float32, float32 on TF32 tensor cores (convolutions
# and matmuls with a 10-bit mantissa, CUDA only), or bfloat16 autocast.
Arithmetic = Literal["fp32", "tf32", "bf16"]

# /proc/cpuinfo flags of native bfloat16 arithmetic: x86 AVX512-BF16 and AMX-BF16; ARMv8.6
# BF16 ("bf16" in the Features line).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
AMPERE = (8, 0)  # the first CUDA capability with TF32 and native bfloat16


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware.

    torch's own probe (the cpuinfo library, also used on Windows and macOS) decides where it
    exists and says yes; the kernel's flags are the fallback, so a torch build without the
    private probe still finds the feature. `flags` replaces /proc/cpuinfo (for tests).
    """
    if flags is None:
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        if any(probe is not None and probe() for probe in probes):
            return True
        flags = cpu_flags()
    return bool(BF16_CPU_FLAGS & flags)


def has_native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        # including_emulation=False: pre-Ampere GPUs "support" bf16 only by emulation.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return cpu_has_native_bf16()


def has_tf32(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= AMPERE


def choose_arithmetic(setting: Precision, device_type: str, native_bf16: bool, tf32: bool) -> Arithmetic:
    """The arithmetic of `train.precision` = `setting` on a device of `device_type` (the
    module's docstring). strict is float32 (core/kernels.py). What the device cannot do is
    an error naming the key, except bf16 on a CPU without it (honoured: emulated, slower)."""
    if setting == "auto":
        if device_type == "cuda":
            return "tf32" if tf32 else "fp32"
        return "bf16" if native_bf16 else "fp32"
    if setting == "fp32" or setting == "strict":
        return "fp32"
    if setting == "tf32":
        if device_type != "cuda":
            raise ParamsError(
                "train.precision is tf32, a GPU arithmetic, but training runs on the CPU; use auto or fp32"
            )
        if not tf32:
            raise ParamsError("train.precision is tf32 but this GPU has no TF32 (Ampere or later); use auto or fp32")
        return "tf32"
    if setting == "bf16":
        if device_type == "cuda" and not native_bf16:
            raise ParamsError(
                "train.precision is bf16 but this GPU has no native bfloat16 (Ampere or later); use auto or fp32"
            )
        return "bf16"
    assert_never(setting)


def resolve_arithmetic(setting: Precision, device: torch.device) -> Arithmetic:
    return choose_arithmetic(setting, device.type, has_native_bf16(device), has_tf32(device))


def autocast_dtype(arithmetic: Arithmetic) -> torch.dtype | None:
    """The autocast dtype of `arithmetic` (None: no autocast)."""
    return torch.bfloat16 if arithmetic == "bf16" else None


def set_cuda_fp32(arithmetic: Arithmetic) -> str:
    """How CUDA runs float32 convolutions and matmuls from now on: on TF32 tensor cores for
    tf32, in IEEE float32 otherwise (cuDNN's default is TF32 for convolutions, so fp32 would
    not be float32 without this). Returns the setting, for the run's record."""
    mode = "tf32" if arithmetic == "tf32" else "ieee"
    torch.backends.cudnn.conv.fp32_precision = mode  # type: ignore[attr-defined]
    torch.backends.cuda.matmul.fp32_precision = mode
    return mode


def autocast(
    device: torch.device, dtype: torch.dtype | None, *, cache: bool = True
) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type, or nothing for float32. `cache=False` recasts
    a weight at each use (what a CUDA graph's recording needs; the values are the same)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)
