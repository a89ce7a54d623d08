"""The classifier: ResNet-18/34 on one-channel spectrograms, optionally with CBAM."""
