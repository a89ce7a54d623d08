"""ResNet-18/34 for one-channel spectrograms, with an optional attention part in every block:
the paper's network, and its two registry entries (`RESNETS`: model.arch resnet18, resnet34).

Layout follows torchvision `models/resnet.py`: helpers, block, network, factory, then what
the architecture declares to the rest of the code (`ResNetArchitecture`). Depth is data
(`DEPTHS`), and attention is a factory `attn_layer(channels) -> nn.Module` handed to every
block (timm style), so the network never branches on depth or on "use CBAM".

Input is a spectrogram `(B, 1, F, T)` (frequency bins x time frames) of any size >= 1x1:
every stride-2 layer pads, so small maps shrink to 1x1 rather than to nothing, and the head
uses adaptive average pooling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from respiro.core.config import ModelParams
from respiro.model.architecture import Architecture, PaperScores, ParamGroup
from respiro.model.cbam import CBAM
from respiro.model.pretrained import map_torchvision

AttnLayer = Callable[[int], nn.Module]

# Blocks per stage; the stage widths are 64, 128, 256, 512 as in He et al. (2016).
DEPTHS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STAGE_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn-attention, plus shortcut, then relu.

    `(B, inplanes, H, W) -> (B, planes, ceil(H / stride), ceil(W / stride))`. The attention
    sits after bn2 and before the addition, as in the CBAM authors' code, so it reweights the
    residual branch only and the identity path stays clean.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attn_layer: AttnLayer | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = attn_layer(planes) if attn_layer is not None else nn.Identity()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.attn(out)

        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet with BasicBlocks on a one-channel input: `(B, 1, F, T) -> (B, num_classes)`.

    Args:
        layers: blocks per stage, e.g. `DEPTHS[34] == (3, 4, 6, 3)`.
        num_classes: number of output logits.
        attn_layer: factory called with each block's width to build its attention module
            (e.g. `partial(CBAM, reduction=16)`); None for plain ResNet.
    """

    def __init__(
        self,
        layers: Sequence[int],
        num_classes: int = 4,
        attn_layer: AttnLayer | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(STAGE_WIDTHS) or any(n < 1 for n in layers):
            raise ValueError(f"layers must be {len(STAGE_WIDTHS)} positive block counts, got {tuple(layers)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.inplanes = STAGE_WIDTHS[0]

        # torchvision stem with one input channel: a spectrogram is a single-channel image.
        self.conv1 = nn.Conv2d(1, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(STAGE_WIDTHS[0], layers[0], stride=1, attn_layer=attn_layer)
        self.layer2 = self._make_layer(STAGE_WIDTHS[1], layers[1], stride=2, attn_layer=attn_layer)
        self.layer3 = self._make_layer(STAGE_WIDTHS[2], layers[2], stride=2, attn_layer=attn_layer)
        self.layer4 = self._make_layer(STAGE_WIDTHS[3], layers[3], stride=2, attn_layer=attn_layer)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_WIDTHS[3] * BasicBlock.expansion, num_classes)

        # All init in one place, as torchvision. The last BN of each block is NOT zero-initialised
        # (torchvision's default, zero_init_residual=False): with attention after bn2, a zero
        # gamma would feed the attention an all-zero map, so its gates would start untrained.
        # Conv biases (only in the attention parts) start at zero; fc keeps PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int, attn_layer: AttnLayer | None) -> nn.Sequential:
        """One stage: a (possibly strided) first block, then `blocks - 1` blocks at `planes`."""
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, attn_layer)]
        self.inplanes = planes * BasicBlock.expansion
        layers.extend(BasicBlock(self.inplanes, planes, attn_layer=attn_layer) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)  # (B, 64, F/2, T/2)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)  # (B, 64, F/4, T/4)

        x = self.layer1(x)  # (B, 64, F/4, T/4)
        x = self.layer2(x)  # (B, 128, F/8, T/8)
        x = self.layer3(x)  # (B, 256, F/16, T/16)
        x = self.layer4(x)  # (B, 512, F/32, T/32), each side at least 1

        x = self.avgpool(x)  # (B, 512, 1, 1)
        x = x.flatten(1)
        return self.fc(x)  # (B, num_classes)


def build_model(depth: int, cbam: bool, cbam_reduction: int = 16, num_classes: int = 4) -> ResNet:
    """The network named by the `model.*` params: `(B, 1, F, T) -> (B, num_classes)`.

    Args:
        depth: `model.depth`, a key of `DEPTHS` (18 or 34).
        cbam: `model.cbam`, put a CBAM in every residual block.
        cbam_reduction: `model.cbam_reduction`, the channel MLP's reduction ratio (>= 1).
        num_classes: number of output logits (4: Normal, Crackle, Wheeze, Both).

    Values come checked by the params schema (`model.*`).
    """
    attn_layer = partial(CBAM, reduction=cbam_reduction) if cbam else None
    return ResNet(DEPTHS[depth], num_classes=num_classes, attn_layer=attn_layer)


# --- what the architecture declares -------------------------------------------------------

# torchvision's published ImageNet-1k weights (IMAGENET1K_V1), by depth.
IMAGENET: dict[int, str] = {18: "resnet18-f37072fd.pth", 34: "resnet34-b627a593.pth"}
# The paper's Table 3 (accuracy, SE, SP, ICBHI score), as printed, by depth and (CBAM, loss).
PAPER_TABLE3: dict[int, dict[tuple[bool, str], PaperScores]] = {
    18: {
        (False, "ce"): (0.705, 0.584, 0.813, 0.699),
        (True, "ce"): (0.715, 0.605, 0.812, 0.709),
        (False, "focal"): (0.717, 0.584, 0.835, 0.710),
        (True, "focal"): (0.725, 0.604, 0.832, 0.718),
    },
    34: {
        (False, "ce"): (0.716, 0.613, 0.807, 0.711),
        (True, "ce"): (0.726, 0.623, 0.818, 0.721),
        (False, "focal"): (0.717, 0.586, 0.834, 0.710),
        (True, "focal"): (0.732, 0.607, 0.843, 0.725),
    },
}
STEM = "conv1.weight"


class ResNetArchitecture(Architecture):
    """ResNet-`depth` (model.arch `resnet<depth>`): CBAM in every residual block, after bn2;
    torchvision's ImageNet weights; Grad-CAM on layer4, stride 32."""

    cbam_placement = "in every residual block, after bn2 and before the shortcut addition"
    # 2 (stem) * 2 (max pool) * 2 * 2 * 2 (layer2, layer3, layer4): every strided layer keeps
    # its kernel centred, so cell i of layer4 is centred on input position 32 i.
    feature_stride = 32

    def __init__(self, depth: int) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
        self.depth = depth
        self.name = f"resnet{depth}"
        self.short = f"r{depth}"
        self.legacy: Mapping[str, Any] = {"depth": depth}  # model.depth, before model.arch
        self.paper_table3 = PAPER_TABLE3[depth]

    def label(self, cbam: bool) -> str:
        return f"ResNet-{self.depth}{' + CBAM' if cbam else ''}"

    def build(self, num_classes: int, params: ModelParams) -> ResNet:
        return build_model(self.depth, params.cbam, params.cbam_reduction, num_classes)

    @property
    def weights_files(self) -> dict[str, str]:
        return {"imagenet": IMAGENET[self.depth]}

    def map_weights(self, state: dict[str, Tensor], model: nn.Module, source: Path | str) -> dict[str, Tensor]:
        is_new = lambda key: self.param_group(key) == "new"  # noqa: E731
        return map_torchvision(state, model, source, name=self.label(False), is_new=is_new, stem=STEM)

    def param_group(self, key: str) -> ParamGroup:
        """CBAM (`*.attn.*`) and the head (`fc`) are new; the stem and layer1 are early (the
        most generic, edge-like filters)."""
        if key.startswith("fc.") or ".attn." in key:
            return "new"
        return "early" if key.startswith(("conv1.", "bn1.", "layer1.")) else "backbone"

    def cam_layer(self, model: nn.Module) -> nn.Module:
        return model.get_submodule("layer4")  # the last stage's features


RESNETS: tuple[ResNetArchitecture, ...] = tuple(ResNetArchitecture(depth) for depth in DEPTHS)
