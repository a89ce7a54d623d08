"""What an architecture declares, so that the rest of the code never asks which network it is.

One module per network (model/resnet.py, model/efficientnet.py, ...) holds the network and
an `Architecture` that says, for the code around it:
- its name (`model.arch`), its display name (`label`: "ResNet-34 + CBAM") and a short name
  for experiment names (`short`: the Table 3 slugs, r34-cbam-focal);
- how to build it for a one-channel spectrogram `(B, 1, F, T)` of any size and the class
  scheme's class count (`build`), with CBAM where it goes (`cbam_placement`; None where the
  network has no place for it, and model.cbam: true is then refused);
- its pretrained weights: the published file of each `model.pretrained` choice
  (`weights_files`: torchvision-style names whose SHA-256 prefix is checked), and how such a
  file's tensors map onto it (`map_weights`);
- its parameter groups for train.backbone_lr_factor and train.freeze_epochs (`param_group`:
  `new` for what pretrained weights do not provide, `early` for the stem and first stage,
  `backbone` for the rest);
- the layer Grad-CAM reads (`cam_layer`) and the geometry of its grid on the spectrogram
  (`feature_stride`: cell i of the grid is centred on bin / frame `feature_stride * i`),
  and its attention view for the report (`attention_layer` and `attention_map`; by default
  the spatial gate of the last CBAM);
- its own settings, if any (`options_schema`: the mapping model.<name> in params.yaml);
- the old model params that meant it, for checkpoints written before model.arch existed
  (`legacy`: `{"depth": 34}`), and the paper's Table 3 rows of this network, if any.

The registry (model/registry.py) holds one instance per `model.arch`: adding a network is one
module plus its line there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from respiro.core.config import Group, ModelParams, validate_group
from respiro.core.errors import ParamsError
from respiro.model.cbam import SpatialAttention

ParamGroup = Literal["early", "backbone", "new"]
# The paper's scores of one Table 3 row: accuracy, SE, SP, ICBHI score.
PaperScores = tuple[float, float, float, float]


class Architecture(ABC):
    """One network of the registry; see the module docstring for what each member means."""

    name: str  # model.arch
    short: str  # in experiment names: t3-<short>-cbam-focal-s0
    cbam_placement: str | None  # where CBAM goes, in words; None: this network has no place for it
    feature_stride: int  # cell i of cam_layer's grid is centred on bin / frame feature_stride * i
    # The spectrogram's bins and frames each cam_layer cell is centred on are
    # feature_offset + feature_stride * i (0 for the CNNs: their first cell sits on the first bin).
    feature_offset: float = 0.0
    legacy: Mapping[str, Any] = {}  # model params of checkpoints from before model.arch that meant it
    # The paper's Table 3 rows of this network, by (cbam, loss name); empty for the others.
    paper_table3: Mapping[tuple[bool, str], PaperScores] = {}
    # The report's attention view: in its pages' text, as its panel's title, and that panel's
    # words when the network has no attention map.
    attention_text: str = "CBAM's spatial attention of the last block"
    attention_label: str = "CBAM spatial attention (last block)"
    no_attention: str = "no CBAM in this model"

    @abstractmethod
    def label(self, cbam: bool) -> str:
        """The display name, e.g. `ResNet-34 + CBAM`."""

    # The schema of the network's own settings (model.<name>: {...}), or None where it has none.
    options_schema: type[Group] | None = None

    @abstractmethod
    def build(self, num_classes: int, params: ModelParams) -> nn.Module:
        """The network `(B, 1, F, T) -> (B, num_classes)` with its own init, CBAM where
        `cbam_placement` says when `params.cbam`; draws its random numbers from torch's generator."""

    def options(self, params: ModelParams) -> Group | None:
        """The network's own settings (model.<name>), validated by `options_schema`."""
        if self.options_schema is None:
            return None
        return validate_group(f"model.{self.name}", params.options_of(self.name), self.options_schema)

    @property
    @abstractmethod
    def weights_files(self) -> Mapping[str, str]:
        """`{model.pretrained choice: published file name}` for every choice besides `none`
        this network has weights for (a torchvision-style name carries its SHA-256 prefix)."""

    @property
    def weights_choices(self) -> tuple[str, ...]:
        """The model.pretrained values besides `none` this network has weights for."""
        return tuple(self.weights_files)

    def weights_file(self, pretrained: str) -> str:
        """The published file name of the `model.pretrained` choice `pretrained`."""
        files = self.weights_files
        if pretrained not in files:
            raise ValueError(f"{self.name} has no {pretrained} weights")
        return files[pretrained]

    def read_weights(self, path: Path) -> dict[str, Tensor]:
        """The tensors of a weights file of this network's (torch.save's, by default)."""
        from respiro.model.pretrained import load_weights_file

        return load_weights_file(path)

    @abstractmethod
    def map_weights(self, state: dict[str, Tensor], model: nn.Module, source: Path | str) -> dict[str, Tensor]:
        """A published weights file's `state` as tensors for `model` (this network's names):
        every tensor `param_group` does not call new. PretrainedWeightsError naming `source`
        when the file does not fit."""

    @abstractmethod
    def param_group(self, key: str) -> ParamGroup:
        """Which group a parameter or buffer key belongs to (`new`: not in pretrained weights)."""

    @abstractmethod
    def cam_layer(self, model: nn.Module) -> nn.Module:
        """The module whose output Grad-CAM weighs: the last feature map, `(B, K, h, w)`."""

    def attention_layer(self, model: nn.Module) -> nn.Module | None:
        """The module whose output `attention_map` turns into the report's attention view, or
        None: by default the 7x7 convolution of the last CBAM spatial gate (its logits)."""
        found = [m for m in model.modules() if isinstance(m, SpatialAttention)]
        return found[-1].conv if found else None

    def attention_map(self, output: Any, grid: tuple[int, int]) -> Tensor:
        """`attention_layer`'s output as maps `(B, h, w)` in [0, 1] on cam_layer's grid (`grid`
        is its `(h, w)`): by default the spatial gate, sigmoid of its logits `(B, 1, h, w)`."""
        return torch.sigmoid(output[:, 0])

    def check(self, params: ModelParams) -> None:
        """ParamsError of one line when `params` (model.*) ask this network for what it lacks,
        or hold settings of a network that is not in the registry (a misspelt name)."""
        self.options(params)
        if params.cbam and self.cbam_placement is None:
            raise ParamsError(f"model.cbam: {self.name} has no CBAM placement; set model.cbam to false")
        if params.pretrained != "none" and params.pretrained not in self.weights_choices:
            known = ", ".join(("none", *self.weights_choices))
            raise ParamsError(f"model.pretrained: {self.name} has no {params.pretrained} weights; it takes {known}")
