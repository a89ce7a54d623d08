"""Where the network looked: CBAM's spatial attention of the last block, and Grad-CAM.

Both maps live on the grid of the last stage's output, `(B, h, w)` with `h = ceil(F / 32)`,
`w = ceil(T / 32)` for a spectrogram `(B, 1, F, T)`; `upsample` puts them back onto the
spectrogram's bins and frames.

Geometry (`FEATURE_STRIDE`): every strided layer of the ResNet (the 7x7 stem, the 3x3 max
pool, the first 3x3 conv and the 1x1 shortcut of layer2-4) has stride 2 and padding that
keeps the kernel centred, so the output cell `i` of each is centred on input position `2i`,
and cell `(i, j)` of layer4 on bin `32 i`, frame `32 j` (not `32 i + 16`: the first cell is
centred on the first bin). `upsample` interpolates between those centres, and
tests/test_maps.py checks the centres against the network's own input gradients.

Both are read with forward hooks on an unchanged model, so the maps come from the very
forward pass that gives the probabilities; hooks are removed whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from respiro.model.cbam import SpatialAttention

FEATURE_STRIDE = 32  # 2 (stem) * 2 (max pool) * 2 * 2 * 2 (layer2, layer3, layer4)


def last_spatial_attention(model: nn.Module) -> SpatialAttention | None:
    """The spatial gate of the network's last block (the last SpatialAttention in module
    order), or None for a network without CBAM."""
    found = [m for m in model.modules() if isinstance(m, SpatialAttention)]
    return found[-1] if found else None


@contextmanager
def _hook(module: nn.Module, store: list[Tensor]) -> Iterator[None]:
    """Append `module`'s output to `store` on every forward pass while the block runs."""
    handle = module.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        yield
    finally:
        handle.remove()


def spatial_attention(model: nn.Module, x: Tensor) -> np.ndarray | None:
    """The last block's spatial attention gate, `sigmoid(conv7x7([mean_c, max_c]))`, for
    standardized spectrograms `x (B, 1, F, T)`: `(B, h, w)` float32 in (0, 1); None when the
    network has no CBAM."""
    gate = last_spatial_attention(model)
    if gate is None:
        return None
    logits: list[Tensor] = []
    with torch.inference_mode(), _hook(gate.conv, logits):
        model(x)
    return torch.sigmoid(logits[-1][:, 0]).float().cpu().numpy()  # (B, h, w)


def attention_and_grad_cam(
    model: nn.Module, x: Tensor, classes: Tensor, layer: nn.Module
) -> tuple[np.ndarray | None, np.ndarray]:
    """`spatial_attention` and `grad_cam` of one forward pass (half the work of calling both)."""
    gate = last_spatial_attention(model)
    acts: list[Tensor] = []
    gate_logits: list[Tensor] = []
    with torch.enable_grad(), _hook(layer, acts), _hook(gate.conv if gate else nn.Identity(), gate_logits):
        inputs = x.detach().clone().requires_grad_(True)  # a graph even where the weights are frozen
        logits = model(inputs)
        chosen = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
        (grads,) = torch.autograd.grad(chosen, acts[-1])
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = torch.relu((weights * acts[-1]).sum(dim=1)).detach().float().cpu()  # (B, h, w)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam)
    attention = torch.sigmoid(gate_logits[-1][:, 0]).detach().float().cpu().numpy() if gate_logits else None
    return attention, cam.numpy()


def grad_cam(model: nn.Module, x: Tensor, classes: Tensor, layer: nn.Module) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of `classes (B,)` on the output of `layer`:
    `relu(sum_k mean_ij(d logit / d A_k) * A_k)`, `(B, h, w)` float32, each map scaled to a
    maximum of 1 (all zero where no feature speaks for the class).

    The logit, not the probability, is differentiated (as the paper does): a confident
    prediction's softmax saturates and its gradient vanishes.
    """
    return attention_and_grad_cam(model, x, classes, layer)[1]


def _interpolation_matrix(size: int, cells: int, stride: int) -> np.ndarray:
    """`(size, cells)` weights that interpolate linearly between cell centres `stride * i`
    (positions past the last centre take the last cell's value)."""
    position = np.clip(np.arange(size) / stride, 0, cells - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = position - low
    out = np.zeros((size, cells))
    out[np.arange(size), low] += 1 - frac
    out[np.arange(size), high] += frac
    return out


def upsample(maps: np.ndarray, shape: tuple[int, int], stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Maps `(B, h, w)` on the feature grid -> `(B, F, T)` on the spectrogram's bins and
    frames (`shape = (F, T)`), bilinear between the cells' centres (module docstring)."""
    rows = _interpolation_matrix(shape[0], maps.shape[1], stride)  # (F, h)
    cols = _interpolation_matrix(shape[1], maps.shape[2], stride)  # (T, w)
    return np.einsum("fh,bhw,tw->bft", rows, maps, cols).astype(np.float32)
