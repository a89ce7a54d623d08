"""Behaviour of the classifier: sizes, parameter counts, CBAM maths and placement, training."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from respiro.model.cbam import CBAM
from respiro.model.resnet import DEPTHS, ResNet, build_model

WIDTHS = (64, 128, 256, 512)


@functools.cache
def shared_model(depth: int, cbam: bool) -> ResNet:
    """One model in eval mode per (depth, cbam), shared by the tests of this module that only
    run it forward (building a ResNet-34 takes longer than running it on a small batch)."""
    torch.manual_seed(0)
    return build_model(depth, cbam=cbam).eval()


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cbam_params_from_definition(blocks: tuple[int, ...], reduction: int) -> int:
    """Parameters one CBAM per block adds, from its definition rather than from the model.

    Shared MLP C -> h -> C (1x1 convs with bias), h = max(C // r, 1); 7x7 conv 2 -> 1 with bias.
    """
    total = 0
    for width, n_blocks in zip(WIDTHS, blocks):
        hidden = max(width // reduction, 1)
        mlp = width * hidden + hidden + hidden * width + width
        spatial = 2 * 7 * 7 + 1
        total += n_blocks * (mlp + spatial)
    return total


@pytest.mark.parametrize(("depth", "expected"), [(18, 11_172_292), (34, 21_280_452)])
def test_plain_parameter_count_matches_torchvision_with_one_channel_stem(depth: int, expected: int) -> None:
    # torchvision resnet18/34 (11,689,512 / 21,797,672) with conv1 at 1 input channel and fc at 4.
    assert n_params(shared_model(depth, False)) == expected


@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("reduction", [16, 100])
def test_cbam_adds_exactly_its_definition(depth: int, reduction: int) -> None:
    plain = n_params(shared_model(depth, False))
    with_cbam = n_params(build_model(depth, cbam=True, cbam_reduction=reduction))
    assert with_cbam - plain == cbam_params_from_definition(DEPTHS[depth], reduction)


@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("cbam", [False, True])
@pytest.mark.parametrize("size", [(129, 126), (129, 251), (129, 20), (64, 8), (16, 8), (1, 1)])
def test_output_shape_for_any_spectrogram_size(depth: int, cbam: bool, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = shared_model(depth, cbam)
    with torch.no_grad():
        out = model(torch.randn(3, 1, *size))
    assert out.shape == (3, 4)
    assert torch.isfinite(out).all()


def test_small_input_trains_in_train_mode() -> None:
    # Batch statistics on a 1x1 layer4 map still need B >= 2 values per channel; B = 2 works.
    torch.manual_seed(0)
    model = build_model(18, cbam=True).train()
    out = model(torch.randn(2, 1, 16, 8))
    out.sum().backward()
    assert out.shape == (2, 4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_num_classes() -> None:
    assert build_model(18, cbam=False, num_classes=7)(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def reference_cbam(x: Tensor, cbam: CBAM) -> Tensor:
    """CBAM written out from its module's weights (Woo et al., eqs. 2 and 3)."""
    w1 = cbam.channel.mlp[0].weight.flatten(1)  # (h, C)
    b1 = cbam.channel.mlp[0].bias
    w2 = cbam.channel.mlp[2].weight.flatten(1)  # (C, h)
    b2 = cbam.channel.mlp[2].bias

    def mlp(d: Tensor) -> Tensor:  # (B, C) -> (B, C)
        return torch.relu(d @ w1.T + b1) @ w2.T + b2

    f_avg = x.mean(dim=(2, 3))  # average over the spatial axes: (B, C)
    f_max = x.amax(dim=(2, 3))
    m_c = torch.sigmoid(mlp(f_avg) + mlp(f_max))[:, :, None, None]
    x1 = x * m_c

    s_avg = x1.mean(dim=1, keepdim=True)  # average over channels: (B, 1, H, W)
    s_max = x1.amax(dim=1, keepdim=True)
    m_s = torch.sigmoid(
        F.conv2d(torch.cat([s_avg, s_max], 1), cbam.spatial.conv.weight, cbam.spatial.conv.bias, padding=3)
    )
    return x1 * m_s


@pytest.mark.parametrize("reduction", [4, 16])
def test_cbam_equals_written_out_computation(reduction: int) -> None:
    torch.manual_seed(0)
    cbam = CBAM(32, reduction=reduction)
    with torch.no_grad():
        for p in cbam.parameters():  # non-trivial biases, so a dropped bias shows up too
            p.normal_(0.0, 0.5)
    x = torch.randn(2, 32, 9, 13) * 2 + 0.5
    expected = reference_cbam(x, cbam)
    torch.testing.assert_close(cbam(x), expected, rtol=1e-5, atol=1e-6)
    # The reference is sensitive to what it checks: each gate changes the output.
    assert not torch.allclose(expected, x, atol=1e-3)


def test_cbam_gates_reject_a_missing_branch() -> None:
    # The max descriptors matter: the output differs from a channel gate built on avg only.
    torch.manual_seed(1)
    cbam = CBAM(16, reduction=4)
    x = torch.randn(2, 16, 5, 6)
    avg_only = x * torch.sigmoid(2 * cbam.channel.mlp(x.mean((2, 3), keepdim=True)))
    assert not torch.allclose(cbam.channel(x), avg_only, atol=1e-4)


class Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


@pytest.mark.parametrize("stage", ["layer1", "layer2"])  # layer2[0] has a downsampling shortcut
def test_attention_sits_after_bn2_and_before_the_shortcut_addition(stage: str) -> None:
    torch.manual_seed(0)
    model = build_model(18, cbam=True)
    block = getattr(model, stage)[0]
    with torch.no_grad():  # make bn2 differ from the identity so "after bn2" is observable
        block.bn2.weight.uniform_(0.5, 2.0)
        block.bn2.bias.uniform_(-1.0, 1.0)
        block.bn2.running_mean.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, block.conv1.in_channels, 12, 10)

    seen: dict[str, Tensor] = {}
    block.bn2.register_forward_hook(lambda m, i, o: seen.__setitem__("bn2_out", o.clone()))
    block.attn.register_forward_hook(lambda m, i, o: seen.__setitem__("attn_in", i[0].clone()))
    with torch.no_grad():
        block(x)
    torch.testing.assert_close(seen["attn_in"], seen["bn2_out"])

    # Attention zeroing the residual branch leaves relu(shortcut): it is applied before the add.
    block.attn = Zero()
    with torch.no_grad():
        shortcut = x if block.downsample is None else block.downsample(x)
        torch.testing.assert_close(block(x), torch.relu(shortcut))


def test_plain_block_has_identity_attention() -> None:
    assert not any(isinstance(m, CBAM) for m in shared_model(18, False).modules())
    assert sum(isinstance(m, CBAM) for m in shared_model(18, True).modules()) == sum(DEPTHS[18])


def test_init_in_one_place() -> None:
    model = build_model(18, cbam=True)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    # Kaiming fan_out: std = sqrt(2 / (out_channels * k * k)) for the stem's 64 x 7 x 7.
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.1)


@pytest.mark.parametrize("cbam", [False, True])
def test_overfits_eight_samples(cbam: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 1, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    model: ResNet = build_model(18, cbam=cbam)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(x)
    assert F.cross_entropy(logits, y).item() < 0.05
    assert (logits.argmax(1) == y).all()


@pytest.mark.parametrize("cbam", [False, True])
def test_channels_last_matches_contiguous(cbam: bool) -> None:
    torch.manual_seed(0)
    model = build_model(18, cbam=cbam).eval()
    x = torch.randn(2, 1, 64, 40)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("cbam", [False, True])
def test_runs_on_cuda_and_matches_cpu(cbam: bool) -> None:
    torch.manual_seed(0)
    model = build_model(18, cbam=cbam).eval()
    x = torch.randn(2, 1, 129, 63)
    with torch.no_grad():
        expected = model(x)
        out = model.cuda()(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-3, atol=1e-3)
