"""A trained model for deployment: ONNX with the per-bin standardization and softmax inside.

The exported graph takes what the stft stage writes, log-power spectrograms
`(batch, 1, F, T)` float32, and returns class probabilities `(batch, C)`, so a runtime
without this project needs only the audio chain (its settings are in the file's metadata)
and onnxruntime. The batch dimension is dynamic.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from respiro.evaluation.reports import SYNTHETIC_NOTE
from respiro.training.checkpoint import TrainedModel

INPUT, OUTPUT = "spectrogram", "probabilities"


class ProbabilityModel(nn.Module):
    """`(B, 1, F, T)` log-power spectrograms -> `(B, C)` probabilities: per-bin
    standardization (the training set's mean and std), the network, softmax."""

    def __init__(self, network: nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.from_numpy(mean)[:, None])  # (F, 1)
        self.register_buffer("std", torch.from_numpy(std)[:, None])

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network((spectrogram - self.mean) / self.std), dim=1)


def metadata(trained: TrainedModel) -> dict[str, str]:
    """What a deployment needs to know besides the graph: the classes, the audio chain that
    makes the input, and which data the model was trained on."""
    origin = trained.provenance
    return {
        "class_names": json.dumps(list(trained.class_names)),
        "audio_chain": json.dumps(trained.chain.as_dict(), sort_keys=True),
        "input": f"log-power spectrogram (batch, 1, {trained.chain.shape[0]}, {trained.chain.shape[1]}) float32, made by audio_chain",
        "trained_on": origin["data_source"],
        "model": trained.describe(),
        "intended_use": "research tool's screening aid, not a diagnosis",
        **({"note": SYNTHETIC_NOTE} if origin["synthetic_data"] else {}),
    }


def export_onnx(trained: TrainedModel, path: Path) -> int:
    """Write `trained` as one self-contained ONNX file at `path` (torch's dynamo exporter,
    its default opset), with `metadata` as the model's metadata properties. Returns the opset."""
    network = copy.deepcopy(trained.model).cpu().to(memory_format=torch.contiguous_format).eval()
    wrapper = ProbabilityModel(network, trained.mean, trained.std).eval()
    example = torch.zeros(2, 1, *trained.chain.shape)
    # The exporter narrates every step and warns about optional torchvision ops: keep the
    # command's output to its own lines.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes={"spectrogram": {0: torch.export.Dim("batch")}},
            verbose=False,
        )
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata(trained))
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def onnx_probabilities(path: Path, spectrograms: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities `(n, C)` of spectrograms `(n, F, T)` from the ONNX file, on CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = [
        session.run([OUTPUT], {INPUT: np.ascontiguousarray(spectrograms[i : i + batch_size, None], dtype=np.float32)})[0]
        for i in range(0, len(spectrograms), batch_size)
    ]
    return np.concatenate(out)

