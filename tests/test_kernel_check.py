"""The bf16 kernel self-test (training/kernel_check.py), on any CPU: the AMX flags are given,
and the wrong kernel is injected, as measured on an Intel Xeon with AMX (issue 36): a bf16
convolution whose input is 1 or 2 frames wide gives NaN or large errors, different per call.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from respiro.core.config import ModelParams
from respiro.core.errors import StageError
from respiro.core.kernels import AMX_CAP
from respiro.model.registry import create_model
from respiro.training import kernel_check
from respiro.training.kernel_check import (
    FALLBACK_VARIABLE,
    check_case,
    ensure_bf16_kernels,
    kernel_cases,
    refuse_restart,
    self_test,
)

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})
EPYC = frozenset({"avx2", "avx512f", "avx512_bf16"})


def resnet() -> nn.Module:
    torch.manual_seed(0)
    params = ModelParams(arch="resnet18", cbam=True, cbam_reduction=16, pretrained="none")
    return create_model(params, 4).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def cycles(frames: int, batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 1, 129, frames).contiguous(memory_format=torch.channels_last)


@pytest.fixture
def amx_narrow_conv_is_wrong(monkeypatch):
    """oneDNN's AMX bug, injected: under bf16 autocast a 3x3 stride-2 convolution whose input
    is at most 2 wide returns noise (a different draw per call), as the broken kernel did."""
    original = nn.Conv2d._conv_forward
    draws = itertools.count()

    def conv(self, x, weight, bias):
        out = original(self, x, weight, bias)
        if (
            torch.is_autocast_enabled("cpu")
            and self.kernel_size == (3, 3)
            and self.stride == (2, 2)
            and x.shape[-1] <= 2
        ):
            noise = torch.Generator().manual_seed(next(draws))
            return out + 4 * torch.randn(out.shape, generator=noise).to(out.dtype)
        return out

    monkeypatch.setattr(nn.Conv2d, "_conv_forward", conv)
    monkeypatch.delenv(AMX_CAP[0], raising=False)
    monkeypatch.delenv(FALLBACK_VARIABLE, raising=False)


def test_every_distinct_layer_is_one_case_with_its_real_input():
    model = resnet()
    cases = kernel_cases(model, cycles(126))
    names = [c.name for c in cases]
    assert len(names) == len(set(names)) and "conv1" in names and "fc" in names
    # layer1's two blocks have the same convolutions on the same input: one case for them.
    assert "layer1.1.conv1" not in names and "layer1.0.conv1" in names
    assert next(c for c in cases if c.name == "conv1").input.shape == (4, 1, 129, 126)
    assert model.training  # the forward pass left the mode as it was


def test_the_real_kernels_pass_on_this_machine():
    verdict = self_test(resnet(), cycles(32))
    assert verdict.kernels == "fast" and verdict.failed is None and verdict.cases > 10


def test_an_injected_wrong_kernel_is_caught_and_named(amx_narrow_conv_is_wrong):
    verdict = self_test(resnet(), cycles(32))  # 2 s cycles: layer4 sees inputs 1 frame wide
    assert verdict.kernels == "capped"
    assert verdict.failed is not None and verdict.failed.startswith("layer")
    assert "stride" in verdict.failed and "on input (" in verdict.failed


def test_the_fallback_says_one_line_and_starts_again_capped(amx_narrow_conv_is_wrong):
    said, restarted = [], []
    verdict = ensure_bf16_kernels(
        resnet(), cycles(32), "bf16", flags=SAPPHIRE_RAPIDS, restart=restarted.append, say=said.append
    )
    assert verdict.kernels == "capped" and restarted == [verdict.failed]
    assert len(said) == 1 and "\n" not in said[0]
    assert said[0].startswith("bf16 kernel self-test: layer") and f"{AMX_CAP[0]}={AMX_CAP[1]}" in said[0]


def test_a_safe_model_shape_keeps_the_fast_kernels(amx_narrow_conv_is_wrong):
    """The default 8 s cycle (126 frames) never reaches a 1- or 2-wide input: the same
    injected bug leaves it on the fast kernels."""
    restarted = []
    verdict = ensure_bf16_kernels(resnet(), cycles(126), "bf16", flags=SAPPHIRE_RAPIDS, restart=restarted.append)
    assert verdict.kernels == "fast" and restarted == []
    assert verdict.record() == {"bf16_kernels": {"kernels": "fast", "cases": verdict.cases, "failed": None}}
    assert verdict.summary() == f"; bf16 kernels: AMX, {verdict.cases} layers checked"


@pytest.mark.parametrize(
    "arithmetic, flags, environ",
    [("fp32", SAPPHIRE_RAPIDS, {}), ("bf16", EPYC, {}), ("bf16", SAPPHIRE_RAPIDS, {AMX_CAP[0]: "AVX512_CORE_BF16"})],
)
def test_nothing_is_checked_where_nothing_is_suspect(amx_narrow_conv_is_wrong, monkeypatch, arithmetic, flags, environ):
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    restarted = []
    verdict = ensure_bf16_kernels(resnet(), cycles(32), arithmetic, flags=flags, restart=restarted.append)
    assert verdict.kernels == "not checked" and restarted == [] and verdict.summary() == ""


def test_the_restarted_run_reports_why_it_is_capped(monkeypatch):
    monkeypatch.setenv(AMX_CAP[0], AMX_CAP[1])
    monkeypatch.setenv(FALLBACK_VARIABLE, "layer4.0.conv1: conv2d ...: NaN or infinite outputs")
    verdict = ensure_bf16_kernels(resnet(), cycles(32), "bf16", flags=SAPPHIRE_RAPIDS, restart=pytest.fail)
    assert verdict.kernels == "capped" and verdict.failed.startswith("layer4.0.conv1")
    assert verdict.summary().startswith(f"; bf16 kernels capped ({AMX_CAP[0]}={AMX_CAP[1]}): layer4.0.conv1")


def test_restart_capped_runs_the_same_command_with_the_cap(monkeypatch):
    calls = []
    monkeypatch.setattr(kernel_check.os, "execve", lambda *args: calls.append(args))
    kernel_check.restart_capped("why")
    ((executable, argv, environ),) = calls
    assert environ[AMX_CAP[0]] == AMX_CAP[1] and environ[FALLBACK_VARIABLE] == "why"


def test_a_wrong_linear_or_an_unrepeatable_kernel_is_caught(monkeypatch):
    linear = nn.Linear(8, 4)
    case = kernel_check.KernelCase("fc", linear, torch.randn(3, 8))
    assert check_case(case) is None
    monkeypatch.setattr(nn.Linear, "forward", lambda self, x: torch.full((x.shape[0], 4), float("nan")))
    assert check_case(case) == "NaN or infinite outputs"
    draws = itertools.count()
    monkeypatch.setattr(nn.Linear, "forward", lambda self, x: torch.zeros(x.shape[0], 4) + next(draws) * 1e-3)
    assert check_case(case) == "two calls gave different numbers"
    monkeypatch.setattr(nn.Linear, "forward", lambda self, x: 2 * nn.functional.linear(x, self.weight, self.bias))
    assert check_case(case).startswith("off by ")


def test_a_run_of_several_processes_stops_with_one_line_instead(amx_narrow_conv_is_wrong):
    with pytest.raises(
        StageError, match=rf"^bf16 kernel self-test: layer.*set {AMX_CAP[0]}={AMX_CAP[1]} in the environment"
    ):
        ensure_bf16_kernels(resnet(), cycles(32), "bf16", flags=SAPPHIRE_RAPIDS, restart=refuse_restart, say=print)


def test_auto_trains_in_fp32_instead_of_capped_bf16(amx_narrow_conv_is_wrong):
    """train.precision auto: a failing layer makes the run fp32 (no AMX kernel; capped bf16
    was slower than fp32 on the Xeon measured), with one line and no restart."""
    said = []
    verdict = ensure_bf16_kernels(resnet(), cycles(32), "bf16", flags=SAPPHIRE_RAPIDS, restart=None, say=said.append)
    assert verdict.kernels == "fp32" and verdict.failed is not None
    assert len(said) == 1 and "train.precision auto trains in fp32 instead" in said[0]
    assert verdict.summary() == f"; fp32, not bf16: {verdict.failed}"
    safe = ensure_bf16_kernels(resnet(), cycles(126), "bf16", flags=SAPPHIRE_RAPIDS, restart=None)
    assert safe.kernels == "fast"  # the default shape keeps bf16 on AMX
