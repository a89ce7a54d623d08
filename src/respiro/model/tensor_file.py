"""Reading a file of tensors written by torch.save (our checkpoints, torchvision's weights
files) as data only: the one `torch.load` of the project."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch


def load_data_only(path: Path, error: type[Exception], what: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, or `error` of one line naming the
    file: `{path}: not {what}: <why>; refused`.

    torch's own message on a refused file ends in advice to load it with weights_only=False,
    which would run whatever code the file names: the one line here says what the file is
    not, and which Python object it asked for, without that advice.
    """
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not the user's concern
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle a user's file is a bad file, not a bug
        wanted = re.search(r"GLOBAL ([\w.]+)", str(err))
        if wanted:
            why = f"it asks for the Python object {wanted.group(1)}, and a checkpoint is loaded as data only (tensors, numbers, strings), never as code"
        else:
            why = "not a file of tensors and plain data written by torch.save"
        raise error(f"{path}: not {what}: {why}; refused") from None
