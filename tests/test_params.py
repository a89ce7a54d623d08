"""params.yaml: documented, and every invalid value stops with an error naming its key."""

import copy
import re

import pytest
import yaml

from respiro.core.errors import ParamsError
from respiro.core.config import parse_params
from tests.conftest import ROOT

DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_every_key_has_a_comment_right_above_it():
    lines = (ROOT / "params.yaml").read_text().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"^\s+[a-z_0-9]+:", line):
            assert lines[n - 1].strip().startswith("#"), f"params.yaml:{n + 1}: {line.strip()} has no comment above it"


def with_value(group, key, value):
    raw = copy.deepcopy(DEFAULTS)
    raw[group][key] = value
    return raw


@pytest.mark.parametrize(
    "group,key,value,message",
    [
        ("model", "depth", 50, r"model.depth must be one of 18, 34; got 50"),
        ("model", "cbam", "yes", r"model.cbam must be true or false"),
        ("loss", "gamma", -1, r"loss.gamma must be >= 0"),
        ("loss", "alpha", [0.25, 0.25, 0.5], r"loss.alpha .* 4 weights .*got 3"),
        ("loss", "alpha", 1.5, r"loss.alpha must be <= 1"),
        ("loss", "name", "dice", r"loss.name must be one of focal, ce"),
        ("segment", "duration", -8, r"segment.duration must be > 0"),
        ("segment", "pad", "mirror", r"segment.pad must be one of repeat, zero"),
        ("split", "method", "kfold", r"split.method must be one of official, patient, folds, random"),
        ("split", "fold", 5, r"split.fold must be <= 4"),
        ("data", "source", "kaggle", r"data.source must be one of synthetic, icbhi, local"),
        ("data", "sha256", "abc", r"data.sha256 must be null or 64 hex digits"),
        ("stft", "hop_length", 512, r"stft.hop_length must be <= 256"),
        ("normalize", "method", "lufs", r"normalize.method must be one of rms, peak, none"),
        ("train", "epochs", 0, r"train.epochs must be >= 1"),
        ("train", "lr", "fast", r"train.lr must be a number"),
        ("synthetic", "recordings", 3, r"synthetic.recordings must be an integer >= synthetic.patients \(40\); got 3"),
        ("table3", "seeds", [1, 1], r"table3.seeds must be distinct"),
    ],
)
def test_invalid_values_name_the_key(group, key, value, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(with_value(group, key, value))


def test_unknown_and_missing_keys_are_errors():
    with pytest.raises(ParamsError, match=r"unknown key model.dept\b"):
        parse_params(with_value("model", "dept", 18))
    raw = copy.deepcopy(DEFAULTS)
    del raw["loss"]["gamma"]
    with pytest.raises(ParamsError, match="missing key loss.gamma"):
        parse_params(raw)
    with pytest.raises(ParamsError, match="unknown group 'modle'"):
        parse_params({**DEFAULTS, "modle": {}})


def test_alpha_list_becomes_a_tuple():
    params = parse_params(with_value("loss", "alpha", [1, 2, 3, 4]))
    assert params.loss.alpha == (1, 2, 3, 4)
