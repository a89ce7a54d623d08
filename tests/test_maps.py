"""The attention view and Grad-CAM (inference/maps.py) peak where the energy is.

The network here is one whose right answer is known: ResNet-18 + CBAM with every weight made
non-negative, so that every feature grows with the energy beneath it and both maps must peak
on the one bright region of an otherwise silent spectrogram. A wrong hook (another block's
gate), a swapped axis or a half-cell shift in the upsampling moves the peak off the region.
The regions sit on cell centres away from the borders, where zero padding would pull a
peak inwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from respiro.inference.maps import attention, attention_and_grad_cam, grad_cam, upsample
from respiro.model.cbam import SpatialAttention
from respiro.model.registry import get_architecture
from respiro.model.resnet import build_model

ARCH = get_architecture("resnet18")
STRIDE = ARCH.feature_stride

F, T = 129, 251  # stft.n_fft 256, hop 128, 8 s at 4 kHz: a 5 x 8 grid after layer4
HALF = 6  # the bright region is 13 x 13 bins and frames


@pytest.fixture(scope="module")
def energy_detector() -> nn.Module:
    torch.manual_seed(0)
    model = build_model(18, cbam=True, num_classes=4).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.abs_()
        model.fc.weight[2].neg_()  # class 2: every feature speaks against it
    return model


def bright_region(row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 1, F, T)
    x[0, 0, row - HALF : row + HALF + 1, col - HALF : col + HALF + 1] = 1.0
    return x


def peak(maps: np.ndarray) -> tuple[int, int]:
    up = upsample(maps, (F, T), STRIDE)
    assert up.shape == (1, F, T)
    row, col = np.unravel_index(up[0].argmax(), (F, T))
    return int(row), int(col)


def scale_last_gate(model: nn.Module, x: torch.Tensor) -> None:
    """Make the last spatial gate read only its max-over-channels input, scaled so that its
    sigmoid does not saturate (the non-negative features grow through 8 blocks)."""
    gate = [m for m in model.modules() if isinstance(m, SpatialAttention)][-1]
    assert ARCH.attention_layer(model) is gate.conv  # the gate the report reads
    seen: list[torch.Tensor] = []
    handle = gate.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].amax(1).max()))
    with torch.no_grad():
        model(x)
        handle.remove()
        gate.conv.weight.zero_()
        gate.conv.weight[0, 1, 3, 3] = 4 / seen[0]
        gate.conv.bias.fill_(-2.0)


@pytest.mark.parametrize("row,col", [(32, 64), (96, 160), (64, 192)])
def test_attention_and_grad_cam_peak_on_the_energy(energy_detector, row, col):
    x = bright_region(row, col)
    scale_last_gate(energy_detector, x)
    view = attention(ARCH, energy_detector, x)
    assert view is not None and view.shape == (1, 5, 8)
    assert ((view > 0) & (view < 1)).all()
    cam = grad_cam(ARCH, energy_detector, x, torch.tensor([1]))
    assert cam.shape == (1, 5, 8) and cam.max() == pytest.approx(1.0)
    for maps in (view, cam):
        found = peak(maps)
        assert abs(found[0] - row) <= 2 and abs(found[1] - col) <= 2, (found, (row, col))


def test_grad_cam_is_zero_for_a_class_no_feature_supports(energy_detector):
    cam = grad_cam(ARCH, energy_detector, bright_region(64, 128), torch.tensor([2]))
    assert cam.shape == (1, 5, 8) and not cam.any()


def test_grad_cam_takes_one_class_per_input(energy_detector):
    x = torch.cat([bright_region(32, 64), bright_region(96, 160)])
    cam = grad_cam(ARCH, energy_detector, x, torch.tensor([1, 2]))
    assert peak(cam[:1]) == (32, 64) and not cam[1].any()


def test_one_pass_gives_both_maps_as_the_separate_calls_do(energy_detector):
    x = torch.cat([bright_region(32, 64), bright_region(96, 160)])
    scale_last_gate(energy_detector, x[:1])
    classes = torch.tensor([1, 3])
    view, cam = attention_and_grad_cam(ARCH, energy_detector, x, classes)
    assert view is not None
    np.testing.assert_allclose(view, attention(ARCH, energy_detector, x), rtol=1e-5)
    np.testing.assert_allclose(cam, grad_cam(ARCH, energy_detector, x, classes), rtol=1e-5)


def test_a_network_without_cbam_has_no_attention_map():
    model = build_model(18, cbam=False).eval()
    assert attention(ARCH, model, torch.zeros(1, 1, 64, 64)) is None


def test_upsampling_puts_each_cell_on_its_centre_and_interpolates_between():
    cells = np.zeros((1, 5, 8), np.float32)
    cells[0, 2, 3] = 1.0
    up = upsample(cells, (F, T), STRIDE)
    assert np.unravel_index(up[0].argmax(), (F, T)) == (2 * STRIDE, 3 * STRIDE)
    assert up[0, 2 * STRIDE + STRIDE // 2, 3 * STRIDE] == pytest.approx(0.5)
    assert up[0, :, -1].max() == 0  # frames past the last centre (224) take the last column's value
    flat = upsample(np.full((2, 5, 8), 0.25, np.float32), (F, T), STRIDE)
    assert flat.shape == (2, F, T) and np.allclose(flat, 0.25)


def test_upsampling_with_an_offset_moves_every_centre_by_it():
    # A patch grid (a transformer's) has its first cell centred inside the spectrogram.
    cells = np.zeros((1, 5, 8), np.float32)
    cells[0, 2, 3] = 1.0
    up = upsample(cells, (F, T), 10, offset=5)
    assert np.unravel_index(up[0].argmax(), (F, T)) == (25, 35)
    assert up[0, 30, 35] == pytest.approx(0.5)
    edge = np.zeros((1, 5, 8), np.float32)
    edge[0, 0, 0] = 1.0
    assert (upsample(edge, (F, T), 10, offset=5)[0, :6, :6] == 1).all()  # before the first centre: its value
