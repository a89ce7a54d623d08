"""The classifiers on one-channel spectrograms, by model.arch (registry.py: one module each), CBAM and the loss."""
