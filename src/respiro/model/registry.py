"""The networks the pipeline trains, by name (`model.arch`): one module each.

Adding a network is one module with an `Architecture` (model/architecture.py says what it
declares) and its line in ARCHITECTURES; nothing else in the project names a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from respiro.core.config import ModelParams
from respiro.core.errors import ParamsError
from respiro.model.architecture import Architecture
from respiro.model.ast import ASTArchitecture
from respiro.model.efficientnet import EfficientNetB0Architecture
from respiro.model.resnet import RESNETS

ARCHITECTURES: dict[str, Architecture] = {
    **{arch.name: arch for arch in RESNETS},
    EfficientNetB0Architecture.name: EfficientNetB0Architecture(),
    ASTArchitecture.name: ASTArchitecture(),
}


def get_architecture(name: str) -> Architecture:
    """The architecture called `name`; ParamsError naming model.arch for an unknown one."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ParamsError(f"model.arch: unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def architecture_of(params: ModelParams) -> Architecture:
    """model.arch's architecture, after checking that it has what the other model.* ask of it
    (a CBAM placement, the model.pretrained weights)."""
    arch = get_architecture(params.arch)
    for name in params.model_extra or {}:
        if name not in ARCHITECTURES:
            raise ParamsError(f"model.{name}: no network of that name has settings; known: {', '.join(ARCHITECTURES)}")
    arch.check(params)
    return arch


def create_model(params: ModelParams, num_classes: int) -> nn.Module:
    """The network the `model.*` params name, with its own init: `(B, 1, F, T) -> (B, num_classes)`."""
    return architecture_of(params).build(num_classes, params)


def upgrade_model_group(model: Mapping[str, Any]) -> dict[str, Any]:
    """A `model` params group from before model.arch (a checkpoint's, an evaluation.json's
    provenance) with the architecture its old keys meant (`Architecture.legacy`, e.g.
    model.depth 34) as model.arch, those keys removed; others are returned as they are."""
    upgraded = dict(model)
    if "arch" in upgraded:
        return upgraded
    for arch in ARCHITECTURES.values():
        if arch.legacy and all(upgraded.get(k) == v for k, v in arch.legacy.items()):
            for key in arch.legacy:
                del upgraded[key]
            return {"arch": arch.name, **upgraded}
    return upgraded
