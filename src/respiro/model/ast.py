"""The Audio Spectrogram Transformer (Gong et al. 2021), from transformers' implementation.

The network is transformers' `ASTModel` (patch embedding, layers, final norm) and
`ASTMLPHead`, run by `SpectrogramTransformer` in three steps so that the report can read it:
1. the spectrogram `(B, 1, F, T)` cut into 16 x 16 patches every 10 bins and frames (the
   model's own convolution), plus its CLS and distillation tokens and position embeddings;
   the embeddings are laid out for `position_bins x position_frames` (AudioSet's 128 x 1024)
   and interpolated bilinearly to any other input's patch grid, so any size goes in;
2. every layer but the last; the patch tokens entering the last layer pass through
   `PatchGrid` as a map `(B, D, h, w)`: Grad-CAM's layer, since the CLS token of the last
   layer reads them (the last layer's own patch outputs reach no logit);
3. the last layer, whose attention (eager, so that its weights come out) is the report's
   attention view: what the CLS and distillation tokens attend to, over heads, on the grid.
The logits are the head on the mean of the two tokens, as AST's.

The AudioSet weights (model.pretrained: audioset) are the hub's
MIT/ast-finetuned-audioset-10-10-0.4593 `model.safetensors`, ImageNet DeiT then AudioSet
trained: read with safetensors, their names mapped onto ours (`_OUR_NAME`: the file predates
transformers 5's module names), their position grid interpolated to ours; their 527-class
head is left out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from respiro.core.config import Group, ModelParams
from respiro.core.errors import ParamsError, PretrainedWeightsError
from respiro.model.architecture import Architecture, ParamGroup
from respiro.model.pretrained import check_keys

PATCH, STRIDE = 16, 10  # AST's patches: 16 x 16, every 10 bins and frames (overlapping)
SPECIAL = 2  # the CLS and distillation tokens, before the patches
# The published AudioSet file, as the hub names it, and the model it belongs to.
AUDIOSET_FILE = "model.safetensors"
AUDIOSET_MODEL = "MIT/ast-finetuned-audioset-10-10-0.4593"


class ASTOptions(Group):
    """model.ast: the transformer's size and the input its position embeddings are laid out for."""

    dim: Annotated[int, Field(ge=8)]
    layers: Annotated[int, Field(ge=1)]
    heads: Annotated[int, Field(ge=1)]
    position_bins: Annotated[int, Field(ge=PATCH)]
    position_frames: Annotated[int, Field(ge=PATCH)]

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ASTOptions:
        if self.dim % self.heads:
            raise ValueError(f"dim: must be a multiple of heads ({self.heads}); got {self.dim}")
        return self


def patch_grid_shape(bins: int, frames: int) -> tuple[int, int]:
    """`(h, w)` patches of a `bins x frames` input (at least one each way: a shorter input is
    padded to one patch)."""
    return tuple(max(1, (n - PATCH) // STRIDE + 1) for n in (bins, frames))  # type: ignore[return-value]


class PatchGrid(nn.Module):
    """Patch tokens `(B, h*w, D)` as a map `(B, D, h, w)` (Grad-CAM's layer; no weights)."""

    def forward(self, tokens: Tensor, h: int, w: int) -> Tensor:
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


class SpectrogramTransformer(nn.Module):
    """AST `(B, 1, F, T) -> (B, num_classes)`; see the module docstring."""

    def __init__(self, num_classes: int, options: ASTOptions) -> None:
        super().__init__()
        from transformers import ASTConfig, ASTModel
        from transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer import (
            ASTMLPHead,
        )

        config = ASTConfig(
            hidden_size=options.dim,
            num_hidden_layers=options.layers,
            num_attention_heads=options.heads,
            intermediate_size=4 * options.dim,
            num_mel_bins=options.position_bins,
            max_length=options.position_frames,
            patch_size=PATCH,
            frequency_stride=STRIDE,
            time_stride=STRIDE,
            num_labels=num_classes,
            attn_implementation="eager",  # the last layer's attention weights are the report's view
        )  # type: ignore[call-arg]  # PretrainedConfig's own keywords, unknown to the stubs
        self.positions = patch_grid_shape(options.position_bins, options.position_frames)
        self.ast = ASTModel(config)
        self.grid = PatchGrid()
        self.head = ASTMLPHead(config)
        self.head.apply(self.ast._init_weights)  # transformers' init of the head's Linear and LayerNorm

    def embed(self, x: Tensor) -> tuple[Tensor, int, int]:
        """Spectrograms `(B, 1, F, T)` -> tokens `(B, 2 + h*w, D)` and the patch grid `(h, w)`."""
        bins, frames = x.shape[2], x.shape[3]
        if bins < PATCH or frames < PATCH:  # one patch at least: pad the short side with zeros
            x = nn.functional.pad(x, (0, max(0, PATCH - frames), 0, max(0, PATCH - bins)))
        embeddings = self.ast.embeddings
        patches = embeddings.patch_embeddings.projection(x)  # (B, D, h, w)
        h, w = patches.shape[2], patches.shape[3]
        positions = embeddings.position_embeddings  # (1, 2 + H*W, D), laid out H x W
        grid = positions[:, SPECIAL:]
        if (h, w) != self.positions:
            H, W = self.positions
            grid = grid.transpose(1, 2).reshape(1, -1, H, W)
            grid = nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
            grid = grid.flatten(2).transpose(1, 2)
        batch = x.shape[0]
        tokens = torch.cat(
            [
                embeddings.cls_token.expand(batch, -1, -1) + positions[:, :1],
                embeddings.distillation_token.expand(batch, -1, -1) + positions[:, 1:SPECIAL],
                patches.flatten(2).transpose(1, 2) + grid,
            ],
            dim=1,
        )
        return embeddings.dropout(tokens), h, w

    def forward(self, x: Tensor) -> Tensor:
        tokens, h, w = self.embed(x)
        *first, last = self.ast.layers
        for layer in first:
            tokens = layer(tokens)
        patches = self.grid(tokens[:, SPECIAL:], h, w)  # (B, D, h, w)
        tokens = torch.cat([tokens[:, :SPECIAL], patches.flatten(2).transpose(1, 2)], dim=1)
        tokens = self.ast.layernorm(last(tokens))
        return self.head((tokens[:, 0] + tokens[:, 1]) / 2)


# The published file's names (transformers 4's modules) -> ours; a name already in ours passes.
_OUR_NAME = [
    (r"^audio_spectrogram_transformer\.", "ast."),
    (r"\.encoder\.layer\.", ".layers."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
    (r"^classifier\.", "head."),
]


def our_name(key: str) -> str:
    for pattern, replacement in _OUR_NAME:
        key = re.sub(pattern, replacement, key)
    return key


def _fit_positions(published: Tensor, ours: Tensor, grid: tuple[int, int], source: Path | str) -> Tensor:
    """The published position embeddings `(1, 2 + H*W, D)`, laid out for AudioSet's input, on
    our layout's patch grid `(h, w)`; as they are where the two layouts are the same."""
    if published.shape == ours.shape:
        return published
    H, W = patch_grid_shape(128, 1024)  # AudioSet's 12 x 101 patches
    if published.ndim != 3 or published.shape[1] != SPECIAL + H * W:
        raise PretrainedWeightsError(
            f"{source}: position embeddings of shape {tuple(published.shape)}, neither ours nor AudioSet's "
            f"(1, {SPECIAL + H * W}, D)"
        )
    layout = published[:, SPECIAL:].transpose(1, 2).reshape(1, -1, H, W)
    fitted = nn.functional.interpolate(layout, size=grid, mode="bilinear", align_corners=False)
    return torch.cat([published[:, :SPECIAL], fitted.flatten(2).transpose(1, 2)], dim=1).to(ours.dtype)


class ASTArchitecture(Architecture):
    name = "ast"
    short = "ast"
    cbam_placement = None
    options_schema = ASTOptions
    feature_stride = STRIDE
    feature_offset = (PATCH - 1) / 2  # patch i covers bins (frames) 10 i .. 10 i + 15
    attention_text = "the last layer's attention from its CLS and distillation tokens"
    attention_label = "AST attention (last layer, CLS)"

    def label(self, cbam: bool) -> str:
        return "AST"

    def build(self, num_classes: int, params: ModelParams) -> SpectrogramTransformer:
        options = self.options(params)
        assert isinstance(options, ASTOptions)
        return SpectrogramTransformer(num_classes, options)

    @property
    def weights_files(self) -> dict[str, str]:
        """The hub's file name (it carries no hash: pretrained.sha256 pins it)."""
        return {"audioset": AUDIOSET_FILE}

    def weights_source(self, pretrained: str) -> str:
        return f"the hub's {AUDIOSET_MODEL} {AUDIOSET_FILE}"

    def read_weights(self, path: Path) -> dict[str, Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise PretrainedWeightsError(f"{path}: not a safetensors file ({str(err)[:200]})") from None

    def map_weights(self, state: dict[str, Tensor], model: nn.Module, source: Path | str) -> dict[str, Tensor]:
        assert isinstance(model, SpectrogramTransformer)
        ours = model.state_dict()
        given = {our_name(k): v for k, v in state.items()}
        wanted = {k for k in ours if self.param_group(k) != "new"}
        pretrained = {k for k in given if self.param_group(k) != "new"}
        check_keys(
            wanted,
            pretrained,
            source,
            "this AST",
            "model.ast must be the file's size (AST-Base: dim 768, layers 12, heads 12)",
        )
        mapped = {}
        for key in sorted(wanted):
            tensor = given[key]
            if key == "ast.embeddings.position_embeddings":
                tensor = _fit_positions(tensor, ours[key], model.positions, source)
            if tensor.shape != ours[key].shape:
                raise PretrainedWeightsError(
                    f"{source}: {key} has shape {tuple(tensor.shape)}, this AST needs {tuple(ours[key].shape)} "
                    "(model.ast must be the file's size: dim 768, layers 12, heads 12)"
                )
            mapped[key] = tensor.to(ours[key].dtype)
        return mapped

    def param_group(self, key: str) -> ParamGroup:
        """The head is new; the embeddings and the first layer are early."""
        if key.startswith("head."):
            return "new"
        return "early" if key.startswith(("ast.embeddings.", "ast.layers.0.")) else "backbone"

    def cam_layer(self, model: nn.Module) -> nn.Module:
        return model.get_submodule("grid")

    def attention_layer(self, model: nn.Module) -> nn.Module | None:
        layers = model.get_submodule("ast.layers")
        assert isinstance(layers, nn.ModuleList)
        return layers[len(layers) - 1].get_submodule("attention")

    def attention_map(self, output: Any, grid: tuple[int, int]) -> Tensor:
        """The last layer's attention weights `(B, heads, N, N)` from the CLS and distillation
        tokens to the patches, averaged over both and the heads, each map scaled to a maximum of 1."""
        weights = output[1]
        if weights is None:
            raise ParamsError("the AST's attention weights are not returned: it must run with eager attention")
        maps = weights[:, :, :SPECIAL, SPECIAL:].mean(dim=(1, 2)).reshape(-1, *grid)  # (B, h, w)
        return maps / maps.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
