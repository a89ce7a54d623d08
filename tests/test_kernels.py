"""The CPU kernel settings that decide training's bytes (core/kernels.py, training/device.py).

Strict settings are read when torch and MKL load, so every check of them runs in a fresh
process: this one's torch is loaded already, with the default kernels.
"""

from __future__ import annotations

import subprocess
import sys

from respiro.core.kernels import MODE_VARIABLE, STRICT_ENV, kernel_environment, kernel_mode
from tests.conftest import ROOT


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


def test_the_default_kernels_are_not_capped_up_front_even_on_amx():
    """AMX runs are tested per run instead (training/kernel_check.py, tests/test_kernel_check.py)."""
    assert kernel_environment("default") == {MODE_VARIABLE: "default"}
    assert kernel_environment("strict") == {**STRICT_ENV, MODE_VARIABLE: "strict"}


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


def test_strict_square_roots_are_correctly_rounded():
    """MKL's vector sqrt (what ATen runs on float32 CPU tensors) is not correctly rounded and
    rounds differently by CPU vendor; under CorrectlyRoundedSqrt every float32 sqrt is float64's
    rounded once, the IEEE result, in the optimizer's step (train.precision: strict)."""
    import torch

    from respiro.training.device import CorrectlyRoundedSqrt, round_optimizer_sqrt

    x = torch.rand(4096, generator=torch.Generator().manual_seed(0)) * 1e-3
    exact = torch.sqrt(x.double()).float()
    with CorrectlyRoundedSqrt():
        assert torch.equal(torch.sqrt(x), exact) and torch.equal(x.sqrt(), exact)
        (y,) = torch._foreach_sqrt([x])
        assert torch.equal(y, exact)
        assert torch.equal(x + 1, x.add(1))  # every other op as it is

    seen = []
    original = CorrectlyRoundedSqrt.__torch_dispatch__

    def spy(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return original(self, func, types, args, kwargs)

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    round_optimizer_sqrt(optimizer)
    weight.sum().backward()
    try:
        CorrectlyRoundedSqrt.__torch_dispatch__ = spy  # type: ignore[method-assign]
        optimizer.step()
    finally:
        CorrectlyRoundedSqrt.__torch_dispatch__ = original  # type: ignore[method-assign]
    assert {torch.ops.aten.sqrt.default, torch.ops.aten._foreach_sqrt.default} & set(seen)
    # AdamW's first step: decay by lr x 0.01, then lr x the gradient's sign.
    assert torch.allclose(weight, torch.full((3,), 0.999 - 0.1), atol=1e-6)
