"""The errors stage's page of wrong test cycles: which errors it keeps, and what it shows.

The selection (evaluation/errors.py) on hand-made predictions; the page (inference/
errors_page.py) from an untrained checkpoint and made-up test cycles, as the errors stage
hands them over (the stage itself runs in the pipeline tests).
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf

from respiro.core.schemes import get_scheme
from respiro.evaluation.errors import most_confident_errors
from respiro.evaluation.reports import evaluation_details, provenance
from respiro.evaluation.test_set import CyclePredictions, SplitCorpus
from respiro.inference.errors_page import WrongCycles, error_page
from respiro.training.checkpoint import load_checkpoint
from tests.test_report import make_checkpoint


def test_each_cell_keeps_its_most_confident_errors_and_right_cycles_none():
    true = np.array([0, 0, 0, 0, 1, 1, 2, 3])
    pred = np.array([1, 1, 1, 0, 0, 1, 0, 3])
    probs = np.full((8, 4), 0.1)
    probs[[0, 1, 2], 1] = [0.5, 0.9, 0.7]
    probs[4, 0] = 0.6
    probs[6, 0] = 0.4
    assert most_confident_errors(true, pred, probs, 2) == {(0, 1): [1, 2], (1, 0): [4], (2, 0): [6]}
    assert most_confident_errors(true, pred, probs, 0) == {}
    assert most_confident_errors(true, true, probs, 3) == {}
    with pytest.raises(ValueError, match="differ in length"):
        most_confident_errors(true, pred[:-1], probs, 1)


def test_the_page_shows_each_kept_error_with_its_audio_and_maps(tmp_path):
    trained = load_checkpoint(make_checkpoint(tmp_path / "model.pt"))  # predicts Crackle (1) everywhere
    rng = np.random.default_rng(0)
    n = 10
    true = np.array([0, 0, 0, 2, 2, 1, 1, 3, 0, 2])
    pred = np.ones(n, np.int64)
    probs = rng.dirichlet(np.ones(4), n)
    cycles = [
        {"recording": f"1{i:02d}_1b1_Al_sc_Meditron", "start": "0.5", "end": f"{1 + i / 4:g}", "patient": str(100 + i % 3),
         "device_corrected": "Meditron" if i % 2 else "LittC2SE"}
        for i in range(n)
    ]  # fmt: skip
    cells = most_confident_errors(true, pred, probs, 2)
    shown = [i for positions in cells.values() for i in positions]
    shape = trained.chain.shape
    specs = {i: rng.normal(-8, 2, shape).astype(np.float32) for i in shown}
    audio = {i: (0.1 * rng.standard_normal(int(4000 * (0.5 + i / 4)))).astype(np.float32) for i in shown}
    predictions = CyclePredictions(np.arange(n), true, pred, probs)
    corpus = SplitCorpus(cycles, np.array(["test"] * n))
    details = evaluation_details(predictions, corpus, get_scheme("four"), provenance(trained.params), 1)
    page = error_page(trained, WrongCycles(predictions, cycles, cells, specs, audio), details)

    assert cells.keys() == {(0, 1), (2, 1), (3, 1)} and len(cells[(0, 1)]) == 2  # 4 Normal -> Crackle, 2 kept
    assert "Annotated Normal, predicted Crackle: 4 cycles" in page
    assert (
        "Annotated Wheeze, predicted Crackle: 3 cycles" in page
        and "Annotated Both, predicted Crackle: 1 cycles" in page
    )
    sounds = re.findall(r'<audio[^>]*src="data:audio/wav;base64,([^"]+)"', page)
    assert len(sounds) == len(shown) == 5
    for i, sound in zip(shown, sounds):  # in cell order, each the cycle's own audio
        samples, rate = sf.read(io.BytesIO(base64.b64decode(sound)))
        assert rate == trained.chain.rate and len(samples) == len(audio[i])
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    assert images[:2] == ["scores per device", "scores per patient"] and len(images) == 2 + len(shown)
    assert "NOT ICBHI 2017 results" in page and not re.search(r"https?://", page)
