"""Which params a checkpoint stores (models/model.pt `params`), and how they read back.

A light module of its own: the train stage writes with it, and it imports nothing of the
audio or evaluation code that loading a checkpoint (training/checkpoint.py) needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from respiro.core.config import Params

# The params groups a checkpoint stores (the audio chain's included: predict rebuilds it).
STORED_GROUPS = ("data", "synthetic", "resample", "normalize", "segment", "stft", "split", "model", "loss", "train")
# Keys added after checkpoints existed, with the value that means "as before". A checkpoint
# stores one only when it differs, so a default run writes the very bytes it wrote before
# they existed, and older checkpoints read as what they are: from scratch, one rate.
LATER_KEYS: dict[tuple[str, str], Any] = {
    ("model", "pretrained"): "none",
    ("train", "backbone_lr_factor"): 1.0,
    ("train", "freeze_epochs"): 0,
}


def checkpoint_params(params: Params) -> dict[str, dict[str, Any]]:
    """The params groups a checkpoint stores, `LATER_KEYS` at their defaults left out."""
    stored = {group: dataclasses.asdict(getattr(params, group)) for group in STORED_GROUPS}
    for (group, key), default in LATER_KEYS.items():
        if stored[group][key] == default:
            del stored[group][key]
    return stored


def stored_param(params: dict[str, dict[str, Any]], group: str, key: str) -> Any:
    """A checkpoint's param, `LATER_KEYS`' default where it is not stored."""
    return params[group].get(key, LATER_KEYS[(group, key)])
