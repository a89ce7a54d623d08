"""Each network of the registry through the whole pipeline: `dvc exp run -S model.arch=...` on
the tiny default data, then `respiro predict --report` and `respiro export` on its model."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from respiro.model.registry import ARCHITECTURES
from tests.conftest import FinishedRun, copy_project, run

# ResNet-18 is the tiny baseline's own network (TINY_PARAMS): every other runs here.
OTHERS = [name for name in ARCHITECTURES if name != "resnet18"]


# What each network is run with besides model.arch, and the stages that then run. The AST
# takes its own front-end (16 kHz, 128-bin log-mel fbank, its normalisation kept), which
# reruns the audio stages from resample on; a small AST keeps the test quick.
AST_SETTINGS = [
    "model.cbam=false", "resample.rate=16000", "stft.frontend=fbank", "stft.n_fft=400", "stft.hop_length=160",
    "train.standardize=frontend", "model.ast.dim=32", "model.ast.layers=2", "model.ast.heads=4",
]  # fmt: skip
RUNS = {
    "efficientnet_b0": ([], ["errors", "evaluate", "pretrained", "train"]),
    "ast": (AST_SETTINGS, ["errors", "evaluate", "normalize", "pretrained", "resample", "segment", "stft", "train"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_a_network_of_the_registry_runs_end_to_end_and_its_model_predicts_and_exports(
    tiny_baseline: FinishedRun, tmp_path: Path, name: str
) -> None:
    assert name in OTHERS
    settings, stages = RUNS[name]
    project = copy_project(tiny_baseline.project, tmp_path / "project")
    result = run(["dvc", "exp", "run", "-S", f"model.arch={name}", *(a for s in settings for a in ("-S", s))], project)
    output = result.stdout + result.stderr
    # model.arch reaches the small pretrained stage (which file), train and evaluate; no audio
    # work unless the network's settings change the front-end.
    assert sorted(set(re.findall(r"Running stage '(\w+)'", output))) == stages
    label = ARCHITECTURES[name].label("model.cbam=false" not in settings)
    assert f"train: {label}, focal loss" in output
    checkpoint = torch.load(project / "models/model.pt", weights_only=True)
    assert checkpoint["params"]["model"]["arch"] == name
    details = json.loads((project / "data/reports/evaluation.json").read_text())
    assert details["arch"] == name and 0 <= details["accuracy"] <= 1
    assert label in (project / "data/reports/errors.html").read_text()

    recordings = sorted((project / "data/raw").rglob("*.wav"))[:2]
    assert recordings
    predicted = run(
        [sys.executable, "-m", "respiro", "predict", *map(str, recordings), "--out", "p.csv", "--report", "r.html"],
        project,
    )
    assert label in predicted.stderr and (project / "r.html").is_file() and (project / "p.csv").is_file()
    exported = run([sys.executable, "-m", "respiro", "export", "--out", "model.onnx", "--check", "16"], project)
    assert re.search(r"onnxruntime vs PyTorch on 16 spectrograms: max difference", exported.stdout + exported.stderr)
    assert (project / "model.onnx").stat().st_size > 100_000
