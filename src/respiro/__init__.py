"""respiro: respiratory-sound classification (the paper's ResNet + CBAM + focal loss, and the
field's networks beside it) as a DVC pipeline.

The subpackages are the data flow, each importing only those above it in this list:

    core/        plumbing: params.yaml schema, errors, atomic outputs, worker pool, logging
    data/        the databases (databases/: ICBHI, SPRSound, your CSV, one module each), their
                 acquisition, the synthetic corpus, catalog, splits
    audio/       signal processing: read, resample, normalize, cut cycles, spectrograms or fbanks
    model/       the networks by model.arch (one module each, model/registry.py), CBAM, focal loss
    evaluation/  the schemes' scores (ICBHI, SPRSound), reports, the paper's Table 3
    training/    the training loop, its devices, precision and kernels, the checkpoint format
    inference/   a trained model on new recordings, ONNX, maps, the report pages
    commands/    the user's commands beside `dvc repro`: `respiro predict|export|table3|crossdb|queue`

The stages of `dvc.yaml` are thin scripts in the repository's `stages/` folder.
"""
