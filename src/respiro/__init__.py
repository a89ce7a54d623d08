"""respiro: respiratory-sound classification (ResNet + CBAM + focal loss) as a DVC pipeline.

The subpackages are the data flow, each importing only those above it in this list:

    core/        plumbing: params.yaml schema, errors, atomic outputs, worker pool, logging
    data/        ICBHI files: formats, acquisition, the synthetic corpus, catalog, splits
    audio/       signal processing: read, resample, normalize, cut cycles, spectrograms
    model/       the networks by model.arch (one module each), CBAM, focal loss
    evaluation/  ICBHI scores, reports, the paper's Table 3
    training/    the training loop, its devices and precision, the checkpoint format
    inference/   a trained model on new recordings, ONNX
    commands/    the user's commands beside `dvc repro`: `respiro predict|export|table3`

The stages of `dvc.yaml` are thin scripts in the repository's `stages/` folder.
"""
