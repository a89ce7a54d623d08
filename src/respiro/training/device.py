"""Where training runs and how it is seeded."""

from __future__ import annotations

import random

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # Reproducible cuDNN choices at a small speed cost; CPU kernels are deterministic already.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
