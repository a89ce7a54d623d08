"""params.yaml: documented, and every invalid value stops with an error naming its key."""

import copy
import re

import pytest
import yaml

from respiro.core.config import load_params, parse_params, validate_group
from respiro.core.errors import MissingInputError, ParamsError
from respiro.data.databases import database_of
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
        ("model", "arch", "", r"model.arch: string should have at least 1 character; got \'\'"),
        ("model", "cbam", "yes", r"model.cbam: input should be a valid boolean; got \'yes\'"),
        ("loss", "gamma", -1, r"loss.gamma: input should be greater than or equal to 0; got -1"),
        ("loss", "alpha", [0.25, 0.25, 0.5], r"loss.alpha: a list needs 4 weights .*got 3"),
        ("loss", "alpha", 1.5, r"loss.alpha: input should be less than or equal to 1; got 1.5"),
        ("loss", "name", "dice", r"loss.name: input should be \'focal\' or \'ce\'; got \'dice\'"),
        ("segment", "duration", -8, r"segment.duration: input should be greater than 0; got -8"),
        ("segment", "pad", "mirror", r"segment.pad: input should be \'repeat\' or \'zero\'"),
        (
            "split",
            "method",
            "kfold",
            r"split.method: input should be \'official\', \'patient\', \'folds\' or \'random\'",
        ),
        ("split", "fold", 5, r"split.fold: must be < split.n_folds \(5\); got 5"),
        ("data", "source", "kaggle", r"data.source: input should be \'synthetic\', \'download\' or \'local\'"),
        ("icbhi", "sha256", "abc", r"icbhi.sha256: string should match pattern"),
        ("icbhi", "size", 0, r"icbhi.size: input should be greater than or equal to 1; got 0"),
        ("data", "database", "kauh", r"data.database: unknown database \'kauh\'; known: icbhi, sprsound"),
        ("stft", "hop_length", 512, r"stft.hop_length: must be <= stft.n_fft \(256\); got 512"),
        ("normalize", "method", "lufs", r"normalize.method: input should be \'rms\', \'peak\' or \'none\'"),
        ("train", "epochs", 0, r"train.epochs: input should be greater than or equal to 1; got 0"),
        ("train", "lr", "fast", r"train.lr: input should be a valid number; got \'fast\'"),
        ("synthetic", "recordings", 3, r"synthetic.recordings: must be >= synthetic.patients \(40\); got 3"),
        ("table3", "seeds", [1, 1], r"table3.seeds: must be distinct"),
    ],
)
def test_invalid_values_name_the_key(group, key, value, message):
    """The pipeline's groups are checked on loading, a database's by the database that owns
    it (every stage that reads the database's files asks for it first)."""
    with pytest.raises(ParamsError, match=message):
        database_of(parse_params(with_value(group, key, value)))


def test_unknown_and_missing_keys_are_errors():
    with pytest.raises(ParamsError, match=r"unknown key model.dept\b"):
        parse_params(with_value("model", "dept", 18))
    raw = copy.deepcopy(DEFAULTS)
    del raw["loss"]["gamma"]
    with pytest.raises(ParamsError, match="missing key loss.gamma"):
        parse_params(raw)
    with pytest.raises(ParamsError, match="unknown group 'modle'"):
        database_of(parse_params({**DEFAULTS, "modle": {}}))
    with pytest.raises(ParamsError, match=r"unknown key icbhi.ulr; icbhi takes url, split_url"):
        database_of(parse_params(with_value("icbhi", "ulr", "x")))


def test_own_classes_go_with_the_own_scheme_only():
    own = {"scheme": "own", "own": ["normal", "crackles", "wheezes"], "mapping": None}
    scheme = parse_params({**DEFAULTS, "classes": own}).classes.class_scheme()
    assert (scheme.name, scheme.classes, scheme.scores) == ("own", ("normal", "crackles", "wheezes"), "icbhi")
    for classes, message in [
        ({"own": None}, r"^classes.own: classes.scheme own needs your classes here"),
        ({"scheme": "four", "own": ["a", "b"]}, r"^classes.own: lists classes for classes.scheme own only"),
        ({"own": ["a", "a"]}, r"^classes.own: the classes must be distinct"),
        ({"own": ["a"]}, r"^classes.own: tuple should have at least 2 items"),
        ({"mapping": {"Crackle": "crackle"}}, r"^classes.mapping: 'Crackle' goes to 'crackle', not a class of"),
    ]:
        with pytest.raises(ParamsError, match=message):
            parse_params({**DEFAULTS, "classes": {**own, **classes}})
    # A database whose labels are not the user's classes refuses them, unless the mapping
    # names every one of its labels.
    with pytest.raises(
        ParamsError, match=r"^classes.scheme: own has no mapping for data.database icbhi .*classes.mapping"
    ):
        database_of(parse_params({**DEFAULTS, "classes": own}))
    every = {"Normal": "normal", "Crackle": "crackles", "Wheeze": "wheezes", "Both": None}
    icbhi = database_of(parse_params({**DEFAULTS, "classes": {**own, "mapping": every}}))
    assert [icbhi.class_of(scheme, label) for label in every] == [0, 1, 2, None]


def test_alpha_list_becomes_a_tuple():
    params = parse_params(with_value("loss", "alpha", [1, 2, 3, 4]))
    assert params.loss.alpha == (1, 2, 3, 4)


def test_a_checkpoints_stored_params_go_through_the_same_schema():
    model = {"arch": "resnet18", "cbam": False, "cbam_reduction": 8, "pretrained": "none"}
    assert validate_group("model", model).arch == "resnet18"
    with pytest.raises(ParamsError, match=r"model.cbam_reduction: input should be greater than or equal to 1; got 0"):
        validate_group("model", {**model, "cbam_reduction": 0})
    with pytest.raises(ParamsError, match=r"unknown key model.depth; model takes arch, cbam"):
        validate_group("model", {**model, "depth": 18})
    with pytest.raises(ParamsError, match=r"unknown key stft.nfft; stft takes frontend, n_fft, hop_length"):
        validate_group("stft", {"nfft": 256})


def _every_key() -> list[tuple[str, str]]:
    """Every key of params.yaml but the settings of networks other than model.arch's (a
    network's own settings are read, and required, only when it is the one chosen)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    arch = raw["model"]["arch"]
    return [
        (group, key)
        for group, values in raw.items()
        for key in values
        if not (group == "model" and isinstance(values[key], dict) and key != arch)
    ]


@pytest.mark.parametrize("group,key", _every_key(), ids=lambda v: v)
def test_deleting_any_key_stops_with_one_line_naming_it(tmp_path, group, key):
    """No defaults in the schema: a key missing from params.yaml is an error, never a value
    chosen silently (what older checkpoints lack is upgraded where they are read)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw[group][key]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError) as err:
        database_of(load_params(path))
    assert str(err.value) == f"missing key {group}.{key}"


def test_strict_is_a_precision_of_one_cpu_process():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert parse_params({**raw, "train": {**raw["train"], "precision": "strict"}}).train.precision == "strict"
    with pytest.raises(
        ParamsError, match=r"^train.precision: strict runs on the CPU; set train.device to auto or cpu$"
    ):
        parse_params({**raw, "train": {**raw["train"], "precision": "strict", "device": "cuda"}})
    with pytest.raises(ParamsError, match=r"^train.precision: strict runs in one process"):
        parse_params({**raw, "train": {**raw["train"], "precision": "strict", "processes": 2}})


def test_tf32_is_a_gpu_precision_and_capture_is_auto_or_off():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert parse_params({**raw, "train": {**raw["train"], "precision": "tf32"}}).train.precision == "tf32"
    with pytest.raises(
        ParamsError, match=r"^train.precision: tf32 is a GPU arithmetic; set train.device to auto or cuda"
    ):
        parse_params({**raw, "train": {**raw["train"], "precision": "tf32", "device": "cpu"}})
    assert parse_params({**raw, "train": {**raw["train"], "capture": "off"}}).train.capture == "off"
    with pytest.raises(ParamsError, match=r"^train.capture"):
        parse_params({**raw, "train": {**raw["train"], "capture": "on"}})


def test_a_missing_params_file_names_it(tmp_path):
    with pytest.raises(MissingInputError, match=r"nothere.yaml: no such params file"):
        load_params(tmp_path / "nothere.yaml")
