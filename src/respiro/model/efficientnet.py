"""EfficientNet-B0 (Tan & Le 2019) for one-channel spectrograms, torchvision's network, with an
optional CBAM after each of its seven MBConv stages: model.arch efficientnet_b0.

A light CNN of the kind stethoscope makers deploy (4.0 M parameters against ResNet-34's 21.3 M,
a ninth of its multiply-adds: benchmarks/RESULTS_model.md). The network is
torchvision's `efficientnet_b0` (its blocks, squeeze-excitation, stochastic depth, dropout
and init) with two changes: the stem takes one channel (a spectrogram), and `attn[i]` runs
after stage `features[i + 1]`. The module names stay torchvision's (`features.*`,
`classifier.1`), so its ImageNet file maps onto every tensor but the stem (its RGB kernels
summed, model/pretrained.py), the head and CBAM (`attn.*`). torchvision is imported only
when this network is built or its weights are named.

Geometry: the stem and the first convolution of the strided stages (2, 3, 4, 6) have stride
2 and padding `k // 2`, so as in the ResNet every cell of the last feature map
(`features[8]`, 1280 channels) is centred on input position 32 i.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from respiro.core.config import ModelParams
from respiro.model.architecture import Architecture, ParamGroup
from respiro.model.cbam import CBAM
from respiro.model.pretrained import map_torchvision

STAGE_WIDTHS: tuple[int, ...] = (16, 24, 40, 80, 112, 192, 320)  # output channels of features[1..7]
STEM = "features.0.0.weight"


class EfficientNetB0(nn.Module):
    """`(B, 1, F, T) -> (B, num_classes)`: torchvision's EfficientNet-B0 on one channel, with
    `attn[i]` (CBAM or identity) after MBConv stage `features[i + 1]`."""

    def __init__(self, num_classes: int = 4, cbam: bool = False, cbam_reduction: int = 16) -> None:
        super().__init__()
        from torchvision.models import efficientnet_b0

        net = efficientnet_b0(num_classes=num_classes)  # torchvision's own init
        stem = net.features[0][0]
        assert isinstance(stem, nn.Conv2d)
        one_channel = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)  # type: ignore[arg-type]
        nn.init.kaiming_normal_(one_channel.weight, mode="fan_out")  # torchvision's init of its convs
        net.features[0][0] = one_channel
        self.features = net.features
        self.attn = nn.ModuleList(CBAM(c, cbam_reduction) if cbam else nn.Identity() for c in STAGE_WIDTHS)
        for m in self.attn.modules():  # CBAM's convs as the ResNet's: Kaiming fan_out, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.avgpool = net.avgpool
        self.classifier = net.classifier

    def forward(self, x: Tensor) -> Tensor:
        x = self.features[0](x)  # (B, 32, F/2, T/2)
        for stage, attn in zip(self.features[1:8], self.attn):
            x = attn(stage(x))  # ... (B, 320, F/32, T/32)
        x = self.features[8](x)  # (B, 1280, F/32, T/32): Grad-CAM's layer
        x = self.avgpool(x).flatten(1)  # (B, 1280)
        return self.classifier(x)  # (B, num_classes)


class EfficientNetB0Architecture(Architecture):
    name = "efficientnet_b0"
    short = "effb0"
    cbam_placement = "after each of the seven MBConv stages"
    feature_stride = 32

    def label(self, cbam: bool) -> str:
        return f"EfficientNet-B0{' + CBAM' if cbam else ''}"

    def build(self, num_classes: int, params: ModelParams) -> EfficientNetB0:
        return EfficientNetB0(num_classes, params.cbam, params.cbam_reduction)

    @property
    def weights_files(self) -> dict[str, str]:
        """torchvision's ImageNet-1k file (IMAGENET1K_V1), named by its weights API."""
        from torchvision.models import EfficientNet_B0_Weights

        return {"imagenet": EfficientNet_B0_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]}

    def map_weights(self, state: dict[str, Tensor], model: nn.Module, source: Path | str) -> dict[str, Tensor]:
        is_new = lambda key: self.param_group(key) == "new"  # noqa: E731
        return map_torchvision(state, model, source, name=self.label(False), is_new=is_new, stem=STEM)

    def param_group(self, key: str) -> ParamGroup:
        """CBAM (`attn.*`) and the head (`classifier.*`) are new; the stem and the first
        stage (`features.0`, `features.1`) are early."""
        if key.startswith(("attn.", "classifier.")):
            return "new"
        return "early" if key.startswith(("features.0.", "features.1.")) else "backbone"

    def cam_layer(self, model: nn.Module) -> nn.Module:
        return model.get_submodule("features.8")  # the last 1x1 convolution's features
