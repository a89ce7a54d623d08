"""Which CPU kernels torch runs: the process settings that decide a training run's bytes.

Several are read only when torch, MKL and oneDNN load (environment variables), so they are
set before `import torch`: the train and evaluate stages call `use_kernels` first thing, and
a process that has already loaded torch (`respiro predict` meeting a strict checkpoint)
re-executes itself with them. This module imports no torch for that reason.

What repeats byte for byte where (docs/reproducibility-bad-input.md has the table):
- `default` (train.precision auto, fp32, bf16): the same CPU type and thread count. oneDNN's
  AMX bf16 kernels (Intel Sapphire Rapids and later) compute wrong, unrepeatable numbers for
  some narrow input shapes, and are right (and 2.5x faster) for the rest: a bf16 run on an
  AMX CPU tests its own layers first (training/kernel_check.py) and starts again capped at
  AMX_CAP, the kernels of an AVX512-BF16 CPU without AMX, only when one fails. A user's own
  ONEDNN_MAX_CPU_ISA is kept (and nothing is tested).
- `strict` (train.precision strict): oneDNN and NNPACK off, ATen's AVX2 kernels, MKL's
  COMPATIBLE branch (SSE2 code on any x86-64 vendor), deterministic algorithms, one thread.
  The bytes do not move with the machine's core count or the instruction sets of one CPU;
  `training.device` applies the torch-side half and checks all of it at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

KernelMode = Literal["default", "strict"]

# Read by MKL (branch, no dynamic thread counts), OpenMP and ATen when they load.
STRICT_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
}
AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})
# The oneDNN cap a bf16 run falls back to when its AMX kernels fail the self-test.
AMX_CAP = ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
# Set in the environment this module prepared, so a re-executed process does not loop.
MODE_VARIABLE = "RESPIRO_KERNELS"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def kernel_mode(precision: str) -> KernelMode:
    """The kernel mode of a `train.precision` value."""
    return "strict" if precision == "strict" else "default"


def kernel_environment(mode: KernelMode) -> dict[str, str]:
    """The variables to set for `mode`."""
    if mode == "strict":
        return {**STRICT_ENV, MODE_VARIABLE: mode}
    return {MODE_VARIABLE: mode}  # AMX: tested per run, training/kernel_check.py


def use_kernels(mode: KernelMode) -> None:
    """Prepare this process's environment for `mode`: set it before torch loads; where torch
    is loaded already and strict settings must come or go, run this same command again with
    them (os.execve: the process is replaced, its output so far flushed)."""
    environ = dict(os.environ)
    leaked = mode == "default" and environ.get(MODE_VARIABLE) == "strict"
    if leaked:  # a default-mode command started from a strict one
        environ = {k: v for k, v in environ.items() if k not in STRICT_ENV}
    environ.update(kernel_environment(mode))
    if environ == dict(os.environ):
        return
    if "torch" in sys.modules and (mode == "strict" or leaked):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
    os.environ.clear()
    os.environ.update(environ)
