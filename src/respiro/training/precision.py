"""Training precision: float32, or bfloat16 autocast where the hardware computes it natively.

`train.precision: auto` picks bfloat16 on a CPU with AVX512-BF16 or AMX (x86) or the BF16
extension (ARM), and on a GPU that supports it (NVIDIA Ampere and later); float32 elsewhere,
where bfloat16 would be emulated and slower. Only the forward pass runs under autocast; the
loss, the gradients' accumulation in the optimizer and the weights stay float32, and
inference (`predict`) is always float32, so a checkpoint's probabilities do not depend on
the precision it was trained in.
"""

from __future__ import annotations

import contextlib

import torch

from respiro.core.config import Precision
from respiro.core.errors import ParamsError
from respiro.core.kernels import cpu_flags

# /proc/cpuinfo flags of native bfloat16 arithmetic: x86 AVX512-BF16 and AMX-BF16; ARMv8.6
# BF16 ("bf16" in the Features line).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


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


def choose_precision(setting: Precision, device_type: str, native_bf16: bool) -> torch.dtype | None:
    """The autocast dtype for `train.precision` = `setting` (None: plain float32).

    auto -> bfloat16 where native, else float32; strict -> float32 (core/kernels.py); bf16 on
    a GPU without it is an error naming the key (it would be emulated or fail); bf16 on such a
    CPU is honoured (emulated, slower).
    """
    if setting in ("fp32", "strict") or (setting == "auto" and not native_bf16):
        return None
    if setting == "bf16" and device_type == "cuda" and not native_bf16:
        raise ParamsError(
            "train.precision is bf16 but this GPU has no native bfloat16 (Ampere or later); use auto or fp32"
        )
    return torch.bfloat16


def resolve_precision(setting: Precision, device: torch.device) -> torch.dtype | None:
    return choose_precision(setting, device.type, has_native_bf16(device))


def precision_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else "bf16"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type, or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
