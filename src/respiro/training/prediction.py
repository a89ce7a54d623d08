"""A trained network's outputs: class probabilities, and the validation pass's loss.

Apart from the training loop (training/loop.py) so that what evaluates a model (the evaluate
stage, `respiro predict`) does not import, and so does not depend on, the training step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]  # (x (B, 1, F, T), y (B,)): a DataLoader, HeldCycles


def _outputs(model: nn.Module, batches: Batches, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Logits `(B, C)` float32 and labels `(B,)`, on `device`, batch by batch.

    Always float32 (no autocast), whatever precision the model was trained in: the
    evaluate stage and any later prediction from the same checkpoint give the same numbers.
    """
    model.eval()
    for x, y in batches:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        yield model(x).float(), y.to(device, non_blocking=True)


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    # Softmax batch by batch, on the device, as predictions have always been computed; the
    # caller copies them to the host once.
    return torch.softmax(logits, dim=1).double()


@torch.inference_mode()
def predict(model: nn.Module, batches: Batches, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, C) float64 and true labels (N,) for every item of `batches`."""
    probs, labels = [], []
    for logits, y in _outputs(model, batches, device):
        probs.append(_probabilities(logits))
        labels.append(y)
    return torch.cat(probs).cpu().numpy(), torch.cat(labels).cpu().numpy()


@torch.inference_mode()
def validate(
    model: nn.Module,
    batches: Batches,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
) -> tuple[float, np.ndarray, np.ndarray]:
    """One pass over `batches`: the loss of all its items at once, from the logits (as in
    training), and `predict`'s probabilities (N, C) and labels (N,). Everything stays on the
    device until the pass ends."""
    logits, probs, labels = [], [], []
    for out, y in _outputs(model, batches, device):
        logits.append(out)
        probs.append(_probabilities(out))
        labels.append(y)
    true = torch.cat(labels)
    loss = loss_fn(torch.cat(logits), true).item()
    return loss, torch.cat(probs).cpu().numpy(), true.cpu().numpy()
