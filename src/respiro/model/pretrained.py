"""Pretrained initialisation: a network's published weights, recorded and mapped onto ours.

Each architecture (model/architecture.py) names its published files (`weights_file`) and
maps their tensors onto its network (`map_weights`); the torchvision-trained CNNs share
`map_torchvision` below. Our CNNs use torchvision's module names, so its ImageNet-1k files fit
every tensor but three kinds: the stem takes one channel, not three (adapted, see
`adapt_stem`); CBAM does not exist in them; the head has 1000 classes, not the scheme's.
CBAM and the head (the architecture's `new` group) keep the network's own init.

Where the file comes from (the pretrained stage, stages/pretrained.py): `pretrained.path`,
then `$TORCH_HOME/hub/checkpoints/<file>` (torchvision's own cache), then a resumable
download from `pretrained.url` into that cache, each checked against the SHA-256 prefix in
the file's name (respiro/data/acquire/hub.py). The full SHA-256 is recorded in the stage's
models/pretrained/weights.json, then in the checkpoint and the metrics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from respiro.core.errors import DamagedArtifactError, PretrainedWeightsError
from respiro.model.tensor_file import load_data_only

if TYPE_CHECKING:
    from respiro.model.architecture import Architecture

RECORD = "weights.json"  # what the pretrained stage found, in its output folder


def sha256_of(path: Path) -> str:
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the record the pretrained stage leaves for the train stage ------------------------------


def init_record(pretrained: str, arch: str, file: str | None = None, sha256: str | None = None) -> dict[str, Any]:
    """What models/pretrained/weights.json holds: the choice and, for pretrained weights, the
    architecture and the file (its name, as found, and full SHA-256)."""
    if file is None:
        return {"pretrained": pretrained}
    return {"pretrained": pretrained, "arch": arch, "file": file, "sha256": sha256}


def read_init(folder: Path, pretrained: str, arch: str) -> tuple[Path, dict[str, str]] | None:
    """The weights file in the pretrained stage's output `folder` and {file, sha256}; None for
    model.pretrained: none. Checks the folder against the params and the file against its record."""
    record_path = folder / RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as err:
        raise DamagedArtifactError(
            f"{record_path}: unreadable ({err}); rerun the pretrained stage (`dvc repro`)"
        ) from None
    made_for = (record.get("pretrained"), record.get("arch") if record.get("pretrained") != "none" else None)
    if made_for != (pretrained, arch if pretrained != "none" else None):
        raise DamagedArtifactError(
            f"{record_path} was made for model.pretrained={made_for[0]}"
            + (f", model.arch={made_for[1]}" if made_for[1] is not None else "")
            + f", not model.pretrained={pretrained}, model.arch={arch}: rerun the pretrained stage (`dvc repro`)"
        )
    if pretrained == "none":
        return None
    weights = folder / str(record.get("file"))
    if not weights.is_file() or sha256_of(weights) != record.get("sha256"):
        raise DamagedArtifactError(
            f"{weights}: missing or not the file {record_path} records; rerun the pretrained stage (`dvc repro`)"
        )
    return weights, {"file": weights.name, "sha256": record["sha256"]}


# --- mapping torchvision's tensors onto our network ------------------------------------------


def adapt_stem(weight: Tensor) -> Tensor:
    """The RGB stem's kernels (C, 3, k, k) as one-channel kernels (C, 1, k, k): their sum.

    Why the sum (timm's `adapt_input_conv` does the same): a grey image given to the RGB
    network as three equal channels x, x, x makes each filter respond with
    sum_c W_c * x = (sum_c W_c) * x. The summed kernel on one channel is exactly that
    response, so bn1 and every layer after it see activations on the scale they were trained
    on. The mean would shrink them threefold and leave bn1's statistics wrong.

    The input standardisation stays as it is: ImageNet models take each RGB channel
    standardised to zero mean and unit variance (torchvision's mean/std), and our spectrograms
    are standardised per frequency bin on the training cycles, so the stem sees inputs of the
    same first and second moments either way; bn1 right after it re-estimates its statistics
    on spectrograms in training anyway.
    """
    return weight.sum(dim=1, keepdim=True)


def load_weights_file(path: Path) -> dict[str, Tensor]:
    """A torchvision state dict from `path`, loaded with weights_only=True (data, never code)."""
    state = load_data_only(path, PretrainedWeightsError, "a weights file")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise PretrainedWeightsError(f"{path}: not a state dict (a mapping of tensor names to tensors)")
    return state


def check_keys(
    wanted: set[str],
    given: set[str],
    source: Path | str,
    network: str,
    hint: str,
    optional: frozenset[str] = frozenset(),
) -> None:
    """PretrainedWeightsError of one line naming `source` when the file's tensors `given` are
    not the `wanted` ones of `network` (those in `optional` may be absent; `hint`: what such a
    file probably is)."""
    missing, unexpected = wanted - given - optional, given - wanted
    if missing or unexpected:
        first = min(missing or unexpected)
        raise PretrainedWeightsError(
            f"{source}: does not fit {network} ({len(missing)} tensors missing, {len(unexpected)} unexpected, "
            f"e.g. {first}): {hint}"
        )


def map_torchvision(
    state: dict[str, Tensor],
    model: nn.Module,
    source: Path | str,
    *,
    name: str,
    is_new: Callable[[str], bool],
    stem: str,
) -> dict[str, Tensor]:
    """torchvision's `state` of the network `name` (for messages) as tensors for `model` (the
    same names): every tensor `is_new` does not call ours (CBAM, the head), the RGB stem
    `stem` adapted to one channel. The file's own head is left out.

    `num_batches_tracked` counters are taken when the file has them and left alone when it
    has not (files saved before PyTorch 0.4.1 lack them). Anything else missing, left over
    or of the wrong shape stops with one line naming `source`: a file for another depth or
    another network.
    """
    ours = model.state_dict()
    wanted = {k for k in ours if not is_new(k)}
    given = {k for k in state if not is_new(k)}
    counters = {k for k in wanted if k.endswith(".num_batches_tracked")}
    check_keys(wanted, given, source, name, "a weights file of another depth or network", frozenset(counters))
    mapped = {}
    for key in sorted(wanted & given):
        tensor = (
            adapt_stem(state[key]) if key == stem and state[key].ndim == 4 and state[key].shape[1] == 3 else state[key]
        )
        if tensor.shape != ours[key].shape:
            raise PretrainedWeightsError(
                f"{source}: {key} has shape {tuple(state[key].shape)}, {name} needs "
                f"{tuple(ours[key].shape)}{' (from 3 RGB channels)' if key == stem else ''}"
            )
        mapped[key] = tensor.to(ours[key].dtype)
    return mapped


def load_pretrained(arch: Architecture, model: nn.Module, path: Path) -> list[str]:
    """Load the weights file at `path` into `model` (a network of `arch`) in place; return the
    keys loaded.

    Draws no random numbers: the network's own init (already done) is kept for the new parts
    (CBAM, the head), exactly as a from-scratch run with the same seed would have them.
    """
    mapped = arch.map_weights(arch.read_weights(path), model, path)
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys and all(
        arch.param_group(k) == "new" or k.endswith("num_batches_tracked") for k in result.missing_keys
    )
    return sorted(mapped)
