"""Using a trained model: loading a checkpoint, classifying recordings, exporting to ONNX."""
