"""The classifier: ResNet-18/34 on one-channel spectrograms, optionally with CBAM."""

from .cbam import CBAM, ChannelAttention, SpatialAttention
from .resnet import DEPTHS, ResNet, build_model

__all__ = ["CBAM", "ChannelAttention", "DEPTHS", "ResNet", "SpatialAttention", "build_model"]
