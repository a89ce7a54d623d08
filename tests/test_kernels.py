"""The CPU kernel settings that decide training's bytes (core/kernels.py, training/device.py).

Strict settings are read when torch and MKL load, so every check of them runs in a fresh
process: this one's torch is loaded already, with the default kernels.
"""

from __future__ import annotations

import subprocess
import sys

from respiro.core.kernels import AMX_CAP, MODE_VARIABLE, STRICT_ENV, kernel_environment, kernel_mode
from tests.conftest import ROOT

EPYC = frozenset({"avx2", "avx512f", "avx512_bf16"})
SAPPHIRE_RAPIDS = EPYC | {"amx_tile", "amx_bf16", "avx512_fp16"}


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in __import__("os").environ.items() if k not in STRICT_ENV and k != MODE_VARIABLE}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_each_precision_has_its_kernels():
    assert [kernel_mode(p) for p in ("auto", "fp32", "bf16", "strict")] == ["default"] * 3 + ["strict"]


def test_amx_is_capped_for_the_default_kernels_unless_the_user_chose_a_cap():
    assert kernel_environment("default", EPYC, {}) == {MODE_VARIABLE: "default"}
    assert kernel_environment("default", SAPPHIRE_RAPIDS, {})[AMX_CAP[0]] == AMX_CAP[1]
    assert AMX_CAP[0] not in kernel_environment("default", SAPPHIRE_RAPIDS, {AMX_CAP[0]: "AVX2"})
    strict = kernel_environment("strict", SAPPHIRE_RAPIDS, {})
    assert strict == {**STRICT_ENV, MODE_VARIABLE: "strict"}


def test_strict_set_before_torch_loads_holds_and_is_checked():
    code = (
        "from respiro.core.kernels import use_kernels\n"
        "use_kernels('strict')\n"
        "import torch\n"
        "from respiro.training.device import set_kernels\n"
        "ran = set_kernels('strict')\n"
        "print(ran['cpu_capability'], torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled(), ran['threads'] >= 1)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["AVX2", "False", "False", "True"]


def test_a_process_with_torch_loaded_starts_again_with_the_strict_settings():
    code = (
        "import os, torch\n"
        "print('start', os.environ.get('RESPIRO_KERNELS'), torch.backends.cpu.get_cpu_capability(), flush=True)\n"
        "from respiro.training.device import use_model_kernels\n"
        "print('strict', use_model_kernels('strict')['cpu_capability'])\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("start None") and lines[1] == "start strict AVX2" and lines[2] == "strict AVX2"


def test_strict_that_cannot_hold_stops_with_one_line_naming_the_key():
    code = (
        "from respiro.core.errors import StageError\n"
        "from respiro.training.device import set_kernels\n"
        "try:\n    set_kernels('strict')\n"
        "except StageError as err:\n    print(err)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert message.startswith("train.precision is strict but this process cannot be:")
    assert "MKL runs OFF, not COMPATIBLE" in message and "MKL_CBWR=COMPATIBLE" in message
