"""Every architecture downstream of training: a checkpoint of it loads, `predict --report` draws
its maps, `export` writes an ONNX file that gives PyTorch's probabilities.

The checkpoints are written by the train stage's own writer with untrained weights (the
downstream code does not depend on what a network learnt), on 2-second cycles so that the
exports stay quick; the whole pipeline per architecture runs in the slow tier
(tests/test_architectures_pipeline.py).
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from respiro.commands.predict import main as predict
from respiro.core.config import ModelParams
from respiro.core.errors import CheckpointError
from respiro.core.schemes import FOUR_CLASSES as CLASS_NAMES
from respiro.inference.onnx import export_onnx, onnx_probabilities
from respiro.inference.recording import classify_spectrograms
from respiro.inference.report import unit_maps
from respiro.model.registry import ARCHITECTURES, create_model
from respiro.training.checkpoint import load_checkpoint
from tests.conftest import ROOT, write_untrained_checkpoint
from tests.test_report import make_recordings

# The networks whose downstream is not covered by the ResNet-18 checkpoints of the other tests.
NAMES = [n for n in ARCHITECTURES if n != "resnet18"]


# A network's own settings where it takes them: a small AST on its own front-end.
OWN = {
    "ast": {
        "model": {"ast": {"dim": 32, "layers": 2, "heads": 4, "position_bins": 128, "position_frames": 1024}},
        "resample": {"rate": 16000},
        "stft": {"frontend": "fbank", "n_fft": 400, "hop_length": 160},
    }
}


def make_checkpoint(path: Path, arch: str, cbam: bool = True) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(arch=arch, cbam=cbam and ARCHITECTURES[arch].cbam_placement is not None)
    params["segment"]["duration"] = 2.0
    for group, values in OWN.get(arch, {}).items():
        params[group].update(values)
    torch.manual_seed(0)
    model = create_model(ModelParams(**params["model"]), len(CLASS_NAMES))
    with torch.no_grad():  # every unit Crackle: the report draws maps of the abnormal ones
        [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].bias.copy_(torch.tensor([0.0, 6.0, 0, 0]))
    write_untrained_checkpoint(path, model, params, CLASS_NAMES)
    return path


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_of_each_network_loads_and_says_what_it_is(tmp_path, name):
    trained = load_checkpoint(make_checkpoint(tmp_path / "model.pt", name))
    arch = ARCHITECTURES[name]
    cbam = arch.cbam_placement is not None
    assert trained.arch is arch and trained.describe().startswith(f"{arch.label(cbam)} (focal loss, epoch 1)")
    # Its weights under another network's name are refused in one line naming the file.
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    other = "resnet18" if name != "resnet18" else "efficientnet_b0"
    checkpoint["params"]["model"]["arch"] = other
    torch.save(checkpoint, tmp_path / "other.pt")
    with pytest.raises(
        CheckpointError,
        match=rf"^{tmp_path}/other.pt: its weights do not fit {re.escape(ARCHITECTURES[other].label(cbam))}",
    ):
        load_checkpoint(tmp_path / "other.pt")
    checkpoint["params"]["model"]["arch"] = "vgg16"
    torch.save(checkpoint, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match=r"its params: model.arch: unknown architecture 'vgg16'; known: resnet18"):
        load_checkpoint(tmp_path / "unknown.pt")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cbam", [True, False])
def test_the_reports_maps_are_on_the_spectrograms_grid(tmp_path, name, cbam):
    trained = load_checkpoint(make_checkpoint(tmp_path / "model.pt", name, cbam))
    specs = np.random.default_rng(0).normal(-9.0, 3.0, size=(3, *trained.chain.shape)).astype(np.float32)
    attention, cams = unit_maps(trained, specs, np.array([1, 2, 3]))
    assert cams.shape == specs.shape and (cams >= 0).all() and (cams <= 1).all()
    if name == "ast":  # its attention view is the last layer's, with or without CBAM
        assert attention is not None and attention.shape == specs.shape and (attention >= 0).all()
    elif cbam:
        assert attention is not None and attention.shape == specs.shape and ((attention > 0) & (attention < 1)).all()
    else:
        assert attention is None


@pytest.mark.parametrize("name", NAMES)
def test_predict_report_draws_each_networks_maps(tmp_path, name):
    model = make_checkpoint(tmp_path / "model.pt", name)
    recordings = make_recordings(tmp_path / "recordings")
    page = tmp_path / "report.html"
    predict([str(recordings), "--model", str(model), "--out", str(tmp_path / "p.csv"), "--report", str(page)])
    html = unescape(page.read_text())  # the text a reader sees: the page escapes every apostrophe
    arch = ARCHITECTURES[name]
    assert arch.label(arch.cbam_placement is not None) in html
    assert (
        "Where the model looked" in html and "CBAM's spatial attention" not in html.split("Where the model looked")[0]
    )
    if arch.cbam_placement is None:  # a network with an attention view of its own names it
        text = arch.attention_text
        assert f"{text[0].upper()}{text[1:]} and Grad-CAM" in html


@pytest.mark.parametrize("name", NAMES)
def test_the_onnx_export_of_each_network_gives_pytorchs_probabilities(tmp_path, name):
    trained = load_checkpoint(make_checkpoint(tmp_path / "model.pt", name))
    export_onnx(trained, tmp_path / "model.onnx")
    specs = np.random.default_rng(1).normal(-9.0, 3.0, size=(5, *trained.chain.shape)).astype(np.float32)
    reference = classify_spectrograms(trained, specs, 64)
    assert np.abs(onnx_probabilities(tmp_path / "model.onnx", specs, 2) - reference).max() <= 1e-4
