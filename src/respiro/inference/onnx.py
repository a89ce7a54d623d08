"""A trained model for deployment: ONNX with the per-bin standardization and softmax inside.

The exported graph takes what the stft stage writes, log-power spectrograms
`(batch, 1, F, T)` float32, and returns class probabilities `(batch, C)`. The batch
dimension is dynamic. The file describes itself: its metadata give every step that makes
the input from a recording (`input_recipe`: reading, resampling kernel, normalization,
cutting and padding, STFT, scale), so that a runtime without this project can rebuild it
with numpy and scipy. tests/test_predict.py does so, for a real 44.1 kHz recording: its
spectrograms differ from predict's by at most 8.5e-4 (natural-log units; float64 numpy vs
float32 torch), the file's probabilities from predict's by 4.9e-7 (checked to 1e-5).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, assert_never

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from respiro.audio.spectrogram import LOG_FLOOR
from respiro.core.config import ResampleMethod
from respiro.evaluation.reports import SYNTHETIC_NOTE
from respiro.inference.windows import default_window
from respiro.model.pretrained import sha256_of
from respiro.training.checkpoint import TrainedModel

INPUT, OUTPUT = "spectrogram", "probabilities"
# torchaudio.transforms.Resample's defaults, which audio/resample.Resampler uses.
RESAMPLER = {"kernel": "sinc_interp_hann", "lowpass_filter_width": 6, "rolloff": 0.99}


class ProbabilityModel(nn.Module):
    """`(B, 1, F, T)` log-power spectrograms -> `(B, C)` probabilities: per-bin
    standardization (the training set's mean and std), the network, softmax."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, network: nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.from_numpy(mean)[:, None])  # (F, 1)
        self.register_buffer("std", torch.from_numpy(std)[:, None])

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network((spectrogram - self.mean) / self.std), dim=1)


def _resample_recipe(method: ResampleMethod, rate: int) -> dict[str, Any]:
    """How `resample.method` brings a recording to `rate`, precisely enough to redo it."""
    if method == "soxr":
        return {
            "rate": rate,
            "when": "the file's rate differs",
            "method": "soxr",
            "call": "soxr.resample(x, source_rate, rate, quality='HQ') of python-soxr (libsoxr's HQ recipe, librosa's default): "
            "one call for the whole recording, float32 in and out",
            "length": "round(n * rate / source_rate)",
        }
    if method != "torchaudio":
        assert_never(method)
    return {
        "rate": rate,
        "when": "the file's rate differs; g = gcd(source, rate), S = source / g, R = rate / g",
        "method": "torchaudio",
        "kernel": "windowed sinc, torchaudio.functional.resample's sinc_interp_hann",
        **{k: v for k, v in RESAMPLER.items() if k != "kernel"},
        "formula": (
            "base = min(S, R) * rolloff; w = ceil(lowpass_filter_width * S / base); x padded with w zeros before and "
            "w + S after; output sample k * R + j (phase j in 0..R-1) = sum over i in 0..2w+S-1 of x_padded[k * S + i] * h_j(i), "
            "t = ((i - w) / S - j / R) * base clipped to [-lowpass_filter_width, lowpass_filter_width], "
            "h_j(i) = (base / S) * sinc(t) * cos(pi * t / (2 * lowpass_filter_width))^2 (sinc(t) = sin(pi t) / (pi t)), kernel in float32"
        ),
        "length": "ceil(n * R / S)",
    }


def input_recipe(trained: TrainedModel) -> dict[str, Any]:
    """Every step from a recording file to the graph's input, with the chain's values: what
    `respiro predict` does (audio/chain.py), written so that numpy and scipy can redo it."""
    chain = trained.chain
    st, rate = chain.stft, chain.rate
    scales = {
        "log": "ln(power + log_floor)",
        "db": f"10 * log10(max(power, 1e-10)), then raised to (its maximum over the whole spectrogram) - top_db ({st.top_db:g})",
        "linear": "power as it is",
    }
    window_s, hop_s = default_window(trained.cycle_seconds, None, None)
    return {
        "read": "samples as float in [-1, 1] (PCM divided by 2^(bits-1)), several channels averaged to one, float32",
        "resample": _resample_recipe(chain.resample.method, rate),
        "normalize": {
            "method": chain.normalize.method,
            "target_dbfs": chain.normalize.target_dbfs,
            "formula": "level = 20 * log10(rms) (rms) or 20 * log10(max |x|) (peak) of the whole resampled recording, in float64; "
            "x * 10^((target_dbfs - level) / 20), cast to float32; a silent recording, or method none, is left as it is",
        },
        "cycle": {
            "samples": chain.cycle_samples,
            "seconds": chain.segment.duration,
            "pad": chain.segment.pad,
            "cut": "samples round(start * rate) to round(end * rate) (round half to even) of the normalized recording, the end clipped to its length; "
            "without annotation, windows of round(window * rate) samples every round(hop * rate) from 0 until one reaches the end",
            "default_window_s": window_s,
            "default_hop_s": hop_s,
            "fit": "longer: its first `samples` samples; shorter: repeat = tiled (numpy.resize), zero = zeros appended",
        },
        "stft": {
            "n_fft": st.n_fft,
            "hop_length": st.hop_length,
            "window": f"{st.window}, periodic (torch.{st.window}_window(n_fft, periodic=True))",
            "center": "reflect-padded by n_fft // 2 on both sides; frame t starts at t * hop_length of the padded cycle",
            "frames": chain.shape[1],
            "bins": chain.shape[0],
            "power": "|rfft(frame * window)|^2, no normalization",
        },
        "scale": {"name": st.scale, "top_db": st.top_db, "log_floor": LOG_FLOOR, "formula": scales[st.scale]},
        "standardization": "per frequency bin with the training set's mean and std: inside the graph",
        "shape": f"(batch, 1, {chain.shape[0]}, {chain.shape[1]}) float32",
    }


def metadata(trained: TrainedModel) -> dict[str, str]:
    """What a deployment needs to know besides the graph: the classes, every step that makes
    the input (`input_recipe`; `audio_chain` is the same params as params.yaml groups), and
    which data the model was trained on."""
    origin = trained.provenance
    return {
        "class_names": json.dumps(list(trained.class_names)),
        "input_recipe": json.dumps(input_recipe(trained), sort_keys=True),
        "audio_chain": json.dumps(trained.chain.as_dict(), sort_keys=True),
        "input": f"spectrogram (batch, 1, {trained.chain.shape[0]}, {trained.chain.shape[1]}) float32, made as input_recipe says",
        "trained_on": origin["data_source"],
        "model": trained.describe(),
        # Which checkpoint file this is: an export outlives a retrained models/model.pt.
        "checkpoint_sha256": sha256_of(trained.path),
        "intended_use": "research tool's screening aid, not a diagnosis",
        **({"note": SYNTHETIC_NOTE} if origin["synthetic_data"] else {}),
    }


def export_onnx(trained: TrainedModel, path: Path) -> int:
    """Write `trained` as one self-contained ONNX file at `path` (torch's dynamo exporter,
    its default opset), with `metadata` as the model's metadata properties. Returns the opset."""
    network = copy.deepcopy(trained.model).cpu().to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
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
    if program is None:  # only the legacy (non-dynamo) exporter returns nothing
        raise RuntimeError("torch.onnx.export returned no program")
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata(trained))
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def onnx_probabilities(path: Path, spectrograms: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities `(n, C)` of spectrograms `(n, F, T)` from the ONNX file, on CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = [
        session.run([OUTPUT], {INPUT: np.ascontiguousarray(spectrograms[i : i + batch_size, None], dtype=np.float32)})[
            0
        ]
        for i in range(0, len(spectrograms), batch_size)
    ]
    return np.concatenate(out)
