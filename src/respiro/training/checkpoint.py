"""The checkpoint format (models/model.pt): written by the train stage, read by everything
that uses a trained model (the evaluate stage, predict, export), in this one module.

A checkpoint is a dict, saved with torch.save, whose keys are (REQUIRED_KEYS):

    state_dict            the network's weights: {plain module key: tensor} (no `module.`)
    class_names           the classes in output order: the class scheme's (classes.scheme)
    params                {group: {key: value}} of params.yaml for PARAMS_GROUPS: the audio
                          chain's groups (so a recording is prepared as in training), the
                          model's (to rebuild the network) and what describes the run
    input_mean, input_std (F,) float32 tensors: per-bin standardization of the training
                          spectrograms, applied again to every input
    epoch                 the epoch whose weights these are (1-based, chosen on validation)
    val_scores            {icbhi_score, se, sp} of that epoch on the validation cycles
                          (None where undefined)
    cycle_seconds_median  the median length of the training cycles before fitting (seconds):
                          predict cuts recordings without annotation into windows this long

Loading uses `weights_only=True` (a checkpoint is data, never code to run) and gives either
a ready model or one line naming the file and what is missing or wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from respiro.audio.chain import AudioChain
from respiro.core.config import ModelParams, validate_group
from respiro.core.errors import CheckpointError, MissingInputError, ParamsError
from respiro.core.kernels import KernelMode, kernel_mode
from respiro.core.outputs import atomic_file
from respiro.evaluation.reports import provenance
from respiro.model.architecture import Architecture
from respiro.model.registry import architecture_of, get_architecture, upgrade_model_group
from respiro.model.tensor_file import load_data_only
from respiro.training.device import to_device

REQUIRED_KEYS = (
    "state_dict",
    "class_names",
    "params",
    "input_mean",
    "input_std",
    "epoch",
    "val_scores",
    "cycle_seconds_median",
)
# Optional: `init_weights`, {file, sha256} of the ImageNet weights training started from
# (model.pretrained: imagenet); absent for a network trained from scratch.
PARAMS_GROUPS = ("data", "synthetic", "resample", "normalize", "segment", "stft", "split", "model", "loss", "train")
VAL_SCORES = ("icbhi_score", "se", "sp")
# Keys added to params.yaml after checkpoints existed, with the value a checkpoint saved
# before them ran with. params.yaml has no defaults (a missing key is an error naming it):
# an older checkpoint is upgraded here, in the one place checkpoints are read.
ADDED_KEYS: dict[tuple[str, str], Any] = {
    ("data", "database"): "icbhi",
    ("resample", "method"): "torchaudio",
    ("model", "pretrained"): "none",
    ("train", "backbone_lr_factor"): 1.0,
    ("train", "freeze_epochs"): 0,
    ("train", "capture"): "off",
    ("train", "standardize"): "bins",
    ("stft", "frontend"): "stft",
    ("stft", "n_mels"): 128,
}
# Values renamed since: data.source `icbhi` is the database's own `download` now, and the
# database's keys that data held moved to its own group (not stored in checkpoints).
RENAMED_VALUES: dict[tuple[str, str], dict[str, str]] = {("data", "source"): {"icbhi": "download"}}
# Keys replaced since: model.depth is model.arch now; the registry says which architecture
# an old group meant (respiro.model.registry.upgrade_model_group).


def upgrade_params(params: Any) -> Any:
    """A checkpoint's params with every key of ADDED_KEYS it predates filled in, the values
    of RENAMED_VALUES renamed and a model group from before model.arch given its architecture
    (a copy; anything that is not a mapping of groups is returned as it is, for the checks to name)."""
    if not isinstance(params, Mapping):
        return params
    upgraded = {group: dict(values) if isinstance(values, Mapping) else values for group, values in params.items()}
    for (group, key), value in ADDED_KEYS.items():
        if isinstance(upgraded.get(group), dict):
            upgraded[group].setdefault(key, value)
    for (group, key), renames in RENAMED_VALUES.items():
        values = upgraded.get(group)
        if isinstance(values, dict) and values.get(key) in renames:
            values[key] = renames[values[key]]
    if isinstance(upgraded.get("model"), dict):
        upgraded["model"] = upgrade_model_group(upgraded["model"])
    return upgraded


@dataclass(frozen=True)
class CheckpointContents:
    """What the train stage saves: the keys above, as it has them."""

    state_dict: dict[str, torch.Tensor]
    class_names: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]]  # params.yaml as a dict: at least PARAMS_GROUPS
    input_mean: np.ndarray  # (F,) float32
    input_std: np.ndarray  # (F,) float32
    epoch: int
    val_scores: Mapping[str, float | None]  # at least VAL_SCORES
    cycle_seconds_median: float
    # {file, sha256} of the ImageNet weights training started from (model.pretrained:
    # imagenet), stored only then.
    init_weights: Mapping[str, str] | None = None


def save_checkpoint(path: Path, contents: CheckpointContents) -> None:
    """Write a checkpoint of `contents` to `path` (atomically: complete or not at all)."""
    c = contents
    checkpoint = {  # the keys in this order: the same run gives the same bytes
        "state_dict": c.state_dict,
        "class_names": list(c.class_names),
        "params": {group: dict(c.params[group]) for group in PARAMS_GROUPS},
        "input_mean": torch.from_numpy(c.input_mean),
        "input_std": torch.from_numpy(c.input_std),
        "epoch": c.epoch,
        "val_scores": {k: c.val_scores[k] for k in VAL_SCORES},
        "cycle_seconds_median": float(c.cycle_seconds_median),
        **({"init_weights": dict(c.init_weights)} if c.init_weights is not None else {}),
    }
    with atomic_file(path) as tmp:
        torch.save(checkpoint, tmp)


@dataclass(frozen=True)
class TrainedModel:
    """A checked checkpoint, its network built on `device` in eval mode."""

    path: Path
    checkpoint: dict[str, Any]  # as saved by the train stage
    model: nn.Module
    chain: AudioChain
    mean: np.ndarray  # (F,) float32
    std: np.ndarray  # (F,) float32
    device: torch.device

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return self.checkpoint["params"]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.checkpoint["class_names"])

    @property
    def kernels(self) -> KernelMode:
        """The CPU kernels it was trained on (core/kernels.py): a strict model is evaluated on
        strict kernels too. A checkpoint from before train.precision: strict is not strict."""
        return kernel_mode(str(self.params.get("train", {}).get("precision")))

    @property
    def arch(self) -> Architecture:
        """The network's architecture (model.arch): its label, Grad-CAM layer, attention view."""
        return get_architecture(self.params["model"]["arch"])

    @property
    def cycle_seconds(self) -> float:
        """The median length of the training cycles (before fitting), in seconds."""
        return float(self.checkpoint["cycle_seconds_median"])

    @property
    def provenance(self) -> dict[str, Any]:
        """Which data, configuration and initial weights produced the model (evaluation.reports.provenance)."""
        return provenance(self.params, self.checkpoint.get("init_weights"))

    def describe(self) -> str:
        """`ResNet-34 + CBAM (focal loss, epoch 7) trained on synthetic(...)`, for summaries."""
        p = self.provenance
        warning = " - NOT ICBHI data" if p["synthetic_data"] else ""
        init = f", from {p['init_weights']['file']}" if p["init_weights"] else ""
        return f"{self.arch.label(self.params['model']['cbam'])} ({p['loss']} loss, epoch {self.checkpoint['epoch']}{init}) trained on {p['data_source']}{warning}"


def _first(names: set[str]) -> str:
    return ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")


def _check_state_dict(path: Path, model: nn.Module, state: Any, name: str) -> None:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of tensors")
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: its weights do not fit {name}: {len(missing)} missing ({_first(missing)}), "
            f"{len(unexpected)} unexpected ({_first(unexpected)})"
        )
    wrong = {k for k in expected if state[k].shape != expected[k].shape}
    if wrong:
        k = sorted(wrong)[0]
        raise CheckpointError(
            f"{path}: {len(wrong)} weights of the wrong shape for {name}, e.g. {k} {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
        )


def _check_stats(path: Path, checkpoint: dict[str, Any], bins: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for key in ("input_mean", "input_std"):
        value = checkpoint[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (bins,):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(
                f"{path}: {key} must be a tensor of {bins} frequency bins (the front-end's); got {shape}"
            )
        array = value.detach().cpu().numpy().astype(np.float32)
        if not np.isfinite(array).all():
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
        out.append(array)
    if (out[1] <= 0).any():
        raise CheckpointError(f"{path}: input_std must be > 0 in every bin")
    return out[0], out[1]


def load_checkpoint(path: Path | str, device: torch.device = torch.device("cpu")) -> TrainedModel:
    """Load and check a checkpoint of this project; the model comes back on `device`, in eval
    mode and channels_last layout (as training and evaluation run it).

    Raises FileNotFoundError for a missing file and CheckpointError for anything else that
    makes it unusable: not loadable with weights_only=True, missing keys, class names other
    than ours, params the audio chain or the network cannot be built from, weights or
    standardization of the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such checkpoint file")
    checkpoint = load_data_only(path, CheckpointError, "a checkpoint of this project")
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: not a checkpoint of this project (a {type(checkpoint).__name__}, expected a dict with {', '.join(REQUIRED_KEYS)})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this project: missing {', '.join(missing)}")
    names = checkpoint["class_names"]
    if (
        not isinstance(names, (list, tuple))
        or len(names) < 2
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise CheckpointError(f"{path}: class_names must be two or more distinct names (its scheme's); got {names!r}")
    params = checkpoint["params"] = upgrade_params(checkpoint["params"])
    try:
        chain = AudioChain.from_params(params)
        m = validate_group("model", params["model"])
        assert isinstance(m, ModelParams)
        arch = architecture_of(m)
        provenance(params, checkpoint.get("init_weights"))
    except ParamsError as err:
        raise CheckpointError(f"{path}: its params: {err}") from None
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: its params lack {err}") from None
    init = checkpoint.get("init_weights")
    if init is not None and not (
        isinstance(init, dict) and all(isinstance(init.get(k), str) for k in ("file", "sha256"))
    ):
        raise CheckpointError(
            f"{path}: init_weights must be {{file, sha256}} of the weights training started from; got {init!r}"
        )
    if not isinstance(checkpoint["epoch"], int):
        raise CheckpointError(f"{path}: epoch must be an integer; got {checkpoint['epoch']!r}")
    seconds = checkpoint["cycle_seconds_median"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < 1e4:
        raise CheckpointError(f"{path}: cycle_seconds_median must be a positive number of seconds; got {seconds!r}")
    mean, std = _check_stats(path, checkpoint, chain.shape[0])
    model = arch.build(len(names), m)
    name = f"{arch.label(m.cbam)} (its params.model)"
    _check_state_dict(path, model, checkpoint["state_dict"], name)
    model.load_state_dict(checkpoint["state_dict"])
    model = to_device(model, device).eval()
    return TrainedModel(path=path, checkpoint=checkpoint, model=model, chain=chain, mean=mean, std=std, device=device)
