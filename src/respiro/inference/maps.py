"""Where the network looked: its attention view (CBAM's spatial attention of the last block,
for the CNNs) and Grad-CAM, both as the architecture declares them (model/architecture.py).

Both maps live on the grid of the architecture's `cam_layer` output, `(B, h, w)`, e.g.
`h = ceil(F / 32)`, `w = ceil(T / 32)` for a ResNet on a spectrogram `(B, 1, F, T)`;
`upsample` puts them back onto the spectrogram's bins and frames.

Geometry (`Architecture.feature_stride`, `feature_offset`): cell `(i, j)` of the grid is
centred on bin `offset + stride i`, frame `offset + stride j`. For the CNNs every strided
layer has stride 2 and padding that keeps the kernel centred, so the output cell `i` of each
is centred on input position `2i`, and cell `(i, j)` of the last stage on bin `32 i`, frame
`32 j` (not `32 i + 16`: the first cell is centred on the first bin). `upsample`
interpolates between those centres, and tests/test_maps.py checks the centres against the
network's own input gradients.

Both are read with forward hooks on an unchanged model, so the maps come from the very
forward pass that gives the probabilities; hooks are removed whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from respiro.model.architecture import Architecture


@contextmanager
def _hook(module: nn.Module, store: list[Tensor]) -> Iterator[None]:
    """Append `module`'s output to `store` on every forward pass while the block runs."""
    handle = module.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        yield
    finally:
        handle.remove()


def attention(arch: Architecture, model: nn.Module, x: Tensor) -> np.ndarray | None:
    """The attention view of `arch` (e.g. the last block's spatial gate,
    `sigmoid(conv7x7([mean_c, max_c]))`) for standardized spectrograms `x (B, 1, F, T)`:
    `(B, h, w)` float32 in [0, 1]; None when the network has none (a CNN without CBAM)."""
    layer = arch.attention_layer(model)
    if layer is None:
        return None
    outputs: list[Tensor] = []
    grid: list[Tensor] = []
    with torch.inference_mode(), _hook(layer, outputs), _hook(arch.cam_layer(model), grid):
        model(x)
    return arch.attention_map(outputs[-1], _grid_of(grid[-1])).float().cpu().numpy()  # (B, h, w)


def _grid_of(features: Tensor) -> tuple[int, int]:
    """`(h, w)` of the Grad-CAM layer's output `(B, K, h, w)`."""
    return features.shape[2], features.shape[3]


def _detached(output: Tensor | tuple[Tensor | None, ...]) -> Tensor | tuple[Tensor | None, ...]:
    """A hooked output (a tensor, or a tuple of them such as an attention's) off the graph."""
    if isinstance(output, tuple):
        return tuple(t.detach() if t is not None else None for t in output)
    return output.detach()


def attention_and_grad_cam(
    arch: Architecture, model: nn.Module, x: Tensor, classes: Tensor
) -> tuple[np.ndarray | None, np.ndarray]:
    """`attention` and `grad_cam` of one forward pass (half the work of calling both)."""
    layer = arch.attention_layer(model)
    acts: list[Tensor] = []
    seen: list[Tensor] = []
    with torch.enable_grad(), _hook(arch.cam_layer(model), acts), _hook(layer or nn.Identity(), seen):
        inputs = x.detach().clone().requires_grad_(True)  # a graph even where the weights are frozen
        logits = model(inputs)
        chosen = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
        (grads,) = torch.autograd.grad(chosen, acts[-1])
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = torch.relu((weights * acts[-1]).sum(dim=1)).detach().float().cpu()  # (B, h, w)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), cam)
    view = arch.attention_map(_detached(seen[-1]), _grid_of(acts[-1])).float().cpu().numpy() if seen else None
    return view, cam.numpy()


def grad_cam(arch: Architecture, model: nn.Module, x: Tensor, classes: Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) of `classes (B,)` on the output of `arch`'s
    `cam_layer`: `relu(sum_k mean_ij(d logit / d A_k) * A_k)`, `(B, h, w)` float32, each map
    scaled to a maximum of 1 (all zero where no feature speaks for the class).

    The logit, not the probability, is differentiated (as the paper does): a confident
    prediction's softmax saturates and its gradient vanishes.
    """
    return attention_and_grad_cam(arch, model, x, classes)[1]


def _interpolation_matrix(size: int, cells: int, stride: float, offset: float) -> np.ndarray:
    """`(size, cells)` weights that interpolate linearly between cell centres
    `offset + stride * i` (positions outside the first and last centre take that cell's value)."""
    position = np.clip((np.arange(size) - offset) / stride, 0, cells - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = position - low
    out = np.zeros((size, cells))
    out[np.arange(size), low] += 1 - frac
    out[np.arange(size), high] += frac
    return out


def upsample(maps: np.ndarray, shape: tuple[int, int], stride: float, offset: float = 0.0) -> np.ndarray:
    """Maps `(B, h, w)` on the feature grid -> `(B, F, T)` on the spectrogram's bins and
    frames (`shape = (F, T)`), bilinear between the cells' centres `offset + stride * i`
    (module docstring)."""
    rows = _interpolation_matrix(shape[0], maps.shape[1], stride, offset)  # (F, h)
    cols = _interpolation_matrix(shape[1], maps.shape[2], stride, offset)  # (T, w)
    return np.einsum("fh,bhw,tw->bft", rows, maps, cols).astype(np.float32)
