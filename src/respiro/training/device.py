"""Where training runs and how it is seeded."""

from __future__ import annotations

import random
from typing import TypeVar

import numpy as np
import torch

from respiro.core.errors import StageError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """`auto` -> CUDA when present, else CPU; `cuda` without a GPU is an error naming `key`
    (the params key, or a command's option)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError(f"{key} is cuda but no CUDA device is available; use auto or cpu")
    return torch.device(name)


M = TypeVar("M", bound=torch.nn.Module)


def to_device(model: M, device: torch.device) -> M:
    """`model` on `device` in channels_last layout, as training and inference run it (faster
    convolutions on CPU and tensor-core GPUs). torch's type stubs lack Module.to's
    memory_format argument, hence the one ignore."""
    return model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Reproducible cuDNN choices at a small speed cost; CPU kernels are deterministic already.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
