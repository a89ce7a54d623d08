"""ImageNet initialisation, offline: files in torchvision's layout made here, never the real ones.

The real weights cannot be downloaded where the tests run. The files below have the keys
and shapes of torchvision's resnet18/resnet34 state dicts (our plain ResNet's tensors, whose
names are torchvision's, with torchvision's 3-channel stem and 1000-class head; the key
count is checked against the architecture independently) and random values, so a tensor
landing in the wrong place shows. They are served from 127.0.0.1, put in a temporary
TORCH_HOME or given by path.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from respiro.core.config import load_params, validate_group
from respiro.core.errors import DamagedArtifactError, ParamsError, PretrainedWeightsError
from respiro.data.acquire.http import Retries
from respiro.data.acquire.hub import find_hub_file, hash_prefix, hub_checkpoint
from respiro.evaluation.table3 import (
    ALL_CONFIGS,
    CONFIGS,
    Config,
    aggregate,
    run_from_files,
    to_csv,
    to_markdown,
)
from respiro.model import resnet
from respiro.model.pretrained import adapt_stem, init_record, load_pretrained, read_init
from respiro.model.registry import get_architecture
from respiro.model.resnet import DEPTHS, build_model
from respiro.training.checkpoint import upgrade_params
from respiro.training.loop import make_optimizer, set_epoch_lr
from tests.conftest import DVC_ENV, ROOT, FinishedRun, copy_project, run, set_params, train_params
from tests.test_acquire import FileServer

# --- files in torchvision's layout -------------------------------------------------------------


def arch(depth: int):
    return get_architecture(f"resnet{depth}")


def is_new(key: str) -> bool:
    return arch(34).param_group(key) == "new"


def torchvision_layout(depth: int, seed: int = 0, counters: bool = True) -> dict[str, torch.Tensor]:
    """A state dict with the keys and shapes of torchvision's resnet<depth>, random values.

    `counters`: with BatchNorm's num_batches_tracked (saved since PyTorch 0.4.1), or without
    (older files); we could not check which the published files have, so both are tested.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in build_model(depth, cbam=False).state_dict().items():
        if key.endswith("num_batches_tracked"):
            if counters:
                state[key] = torch.tensor(int(torch.randint(0, 10**6, (), generator=generator)))
            continue
        shape = {"conv1.weight": (64, 3, 7, 7), "fc.weight": (1000, 512), "fc.bias": (1000,)}.get(
            key, tuple(tensor.shape)
        )
        state[key] = torch.randn(shape, generator=generator)
    # Independent check of the layout: torchvision's BasicBlock ResNet has per block two convs
    # and two BNs (12 tensors with counters), a downsample (conv + BN, 6) in the first block
    # of stages 2-4, a stem (conv + BN, 6) and a head (2).
    blocks = sum(DEPTHS[depth])
    per_bn = 5 if counters else 4
    assert len(state) == blocks * (2 + 2 * per_bn) + 3 * (1 + per_bn) + (1 + per_bn) + 2
    return state


def save_hub_file(folder: Path, depth: int, seed: int = 0, counters: bool = True) -> Path:
    """The layout saved with torch.save under a torchvision-style name: resnet<depth>-<prefix>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "weights.tmp"
    torch.save(torchvision_layout(depth, seed, counters), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"resnet{depth}-{digest[:8]}.pth")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def changed_copy(path: Path, dest: Path) -> Path:
    """`path` with one byte of its last tensor changed, saved at `dest`."""
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(data))
    return dest


# --- mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth,counters", [(34, True), (34, False), (18, True)])
def test_every_tensor_lands_where_it_should_and_the_new_parts_keep_their_init(tmp_path, depth, counters):
    path = save_hub_file(tmp_path, depth, counters=counters)
    file = torch.load(path, weights_only=True)
    torch.manual_seed(3)
    model = build_model(depth, cbam=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = load_pretrained(arch(depth), model, path)
    after = model.state_dict()

    assert set(loaded) == set(file) - {"fc.weight", "fc.bias"}
    for key, tensor in after.items():
        if is_new(key):  # CBAM and the head: exactly the init a from-scratch run has
            assert torch.equal(tensor, before[key]), key
        elif key == "conv1.weight":
            assert torch.equal(tensor, file[key].sum(dim=1, keepdim=True))
        elif key in file:
            assert torch.equal(tensor, file[key]), key
        else:  # a counter the file lacks keeps its own value
            assert key.endswith("num_batches_tracked") and not counters and torch.equal(tensor, before[key])
    assert any(".attn." in k for k in after) and any(k.startswith("layer4.2.") or depth == 18 for k in loaded)


def test_the_one_channel_stem_responds_as_the_rgb_stem_to_a_grey_image():
    """What adapt_stem's docstring promises: the summed kernel on x is the RGB kernel on (x, x, x)."""
    rgb = torch.randn(64, 3, 7, 7, dtype=torch.float64)
    x = torch.randn(2, 1, 40, 30, dtype=torch.float64)
    as_rgb = torch.nn.functional.conv2d(x.expand(-1, 3, -1, -1), rgb, stride=2, padding=3)
    as_grey = torch.nn.functional.conv2d(x, adapt_stem(rgb), stride=2, padding=3)
    assert adapt_stem(rgb).shape == (64, 1, 7, 7)
    torch.testing.assert_close(as_grey, as_rgb)


def test_a_file_of_another_depth_or_shape_stops_with_one_line_naming_it(tmp_path):
    r18 = save_hub_file(tmp_path / "a", 18)
    with pytest.raises(PretrainedWeightsError, match=rf"^{r18}: does not fit ResNet-34 .*missing") as err:
        load_pretrained(arch(34), build_model(34, cbam=True), r18)
    assert "\n" not in str(err.value)

    state = torchvision_layout(34)
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(
        PretrainedWeightsError,
        match=rf"^{bad}: layer2.0.conv1.weight has shape \(128, 64, 5, 5\), ResNet-34 needs \(128, 64, 3, 3\)$",
    ):
        load_pretrained(arch(34), build_model(34, cbam=False), bad)

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedWeightsError, match=rf"^{junk}: not a weights file"):
        load_pretrained(arch(34), build_model(34, cbam=False), junk)


# --- finding and checking the file -------------------------------------------------------------


def test_a_file_in_torch_home_is_used_without_any_network(tmp_path, torch_home):
    made = save_hub_file(tmp_path / "made", 34)
    cached = hub_checkpoint(made.name)
    assert cached == torch_home / "hub" / "checkpoints" / made.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(made.read_bytes())
    found = find_hub_file(made.name, "test", None, "http://127.0.0.1:9/")  # port 9: nothing listens
    assert (found.path, found.source) == (cached, "TORCH_HOME")
    assert found.sha256 == hashlib.sha256(made.read_bytes()).hexdigest() and found.sha256.startswith(
        hash_prefix(made.name)
    )


def test_download_from_a_local_server_into_torch_home_resuming_a_broken_transfer(tmp_path, torch_home):
    made = save_hub_file(tmp_path / "made", 18)
    server = FileServer({made.name: made.read_bytes()})
    server.drop_once = True  # the first transfer breaks halfway; the downloader resumes it
    try:
        found = find_hub_file(
            made.name, "test", None, server.url(""), retry=Retries(retries=3, backoff=0.01), progress=False
        )
    finally:
        server.close()
    assert found.source == "download" and found.path == torch_home / "hub" / "checkpoints" / made.name
    assert found.path.read_bytes() == made.read_bytes()
    assert [r for _, r in server.requests][1].startswith("bytes=")  # the second request resumed


def test_the_hash_check_refuses_a_changed_file_from_every_source(tmp_path, torch_home):
    made = save_hub_file(tmp_path / "made", 18)
    # Given by path: checked against the prefix in its name.
    changed = changed_copy(made, tmp_path / "given" / made.name)
    with pytest.raises(
        PretrainedWeightsError, match=rf"^{changed}: SHA-256 \w+\.\.\. does not start with {hash_prefix(made.name)}"
    ):
        find_hub_file(made.name, "test", str(changed), "http://127.0.0.1:9/")
    # A renamed copy is checked against the published name's prefix.
    renamed = changed_copy(made, tmp_path / "given" / "weights.pth")
    with pytest.raises(PretrainedWeightsError, match="does not start with"):
        find_hub_file(made.name, "test", str(renamed), "http://127.0.0.1:9/")
    found = find_hub_file("resnet18-f37072fd.pth", "test", str(made), "http://127.0.0.1:9/")
    assert (found.source, found.name, found.path) == ("pretrained.path", made.name, made)  # known by its own name
    # In TORCH_HOME: refused and left alone (the user's file).
    cached = changed_copy(made, hub_checkpoint(made.name))
    with pytest.raises(PretrainedWeightsError, match=rf"^{cached}: SHA-256"):
        find_hub_file(made.name, "test", None, "http://127.0.0.1:9/")
    assert cached.exists()
    cached.unlink()
    # Downloaded: refused and deleted, so the next run downloads again.
    server = FileServer({made.name: changed.read_bytes()})
    try:
        with pytest.raises(PretrainedWeightsError, match="does not start with"):
            find_hub_file(
                made.name, "test", None, server.url(""), retry=Retries(retries=3, backoff=0.01), progress=False
            )
    finally:
        server.close()
    assert not cached.exists() and not list(cached.parent.iterdir())


def test_offline_without_the_file_says_in_one_line_which_file_to_put_where(tmp_path, torch_home):
    with pytest.raises(PretrainedWeightsError) as err:
        find_hub_file(
            "resnet34-b627a593.pth",
            "ImageNet ResNet-34",
            None,
            "http://127.0.0.1:9/",
            retry=Retries(retries=1, backoff=0.01),
            progress=False,
        )
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        f"resnet34-b627a593.pth (ImageNet ResNet-34) is needed and none is at hand: put it at "
        f"{torch_home}/hub/checkpoints/resnet34-b627a593.pth (or set pretrained.path to it) and rerun"
    )
    with pytest.raises(PretrainedWeightsError, match=r"^pretrained.path=/nowhere/r.pth is not a file"):
        find_hub_file("resnet34-b627a593.pth", "test", "/nowhere/r.pth", "http://127.0.0.1:9/")


def test_the_published_names_carry_torchvisions_hash_prefixes():
    names = {d: arch(d).weights_file("imagenet") for d in (18, 34)}
    assert names == {18: "resnet18-f37072fd.pth", 34: "resnet34-b627a593.pth"}
    assert {d: hash_prefix(n) for d, n in names.items()} == {18: "f37072fd", 34: "b627a593"}


def test_the_train_stage_reads_only_a_record_that_fits_its_params(tmp_path):
    made = save_hub_file(tmp_path / "out", 34)
    digest = hashlib.sha256(made.read_bytes()).hexdigest()
    (tmp_path / "out" / "weights.json").write_text(json.dumps(init_record("imagenet", "resnet34", made.name, digest)))
    assert read_init(tmp_path / "out", "imagenet", "resnet34") == (made, {"file": made.name, "sha256": digest})
    with pytest.raises(
        DamagedArtifactError,
        match=r"made for model.pretrained=imagenet, model.arch=resnet34, not model.pretrained=none",
    ):
        read_init(tmp_path / "out", "none", "resnet34")
    with pytest.raises(
        DamagedArtifactError, match=r"model.arch=resnet34, not model.pretrained=imagenet, model.arch=resnet18"
    ):
        read_init(tmp_path / "out", "imagenet", "resnet18")
    made.write_bytes(made.read_bytes()[:-1])
    with pytest.raises(DamagedArtifactError, match="not the file"):
        read_init(tmp_path / "out", "imagenet", "resnet34")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "weights.json").write_text(json.dumps(init_record("none", "resnet18")))
    assert read_init(tmp_path / "none", "none", "resnet34") is None  # from scratch the network does not matter


# --- fine-tuning controls ----------------------------------------------------------------------


def test_default_optimizer_is_one_group_at_the_plain_rate():
    optimizer = make_optimizer(build_model(18, cbam=True), train_params(optimizer="adam", lr=0.5, weight_decay=1e-4))
    assert len(optimizer.param_groups) == 1
    assert set_epoch_lr(optimizer, 0.74, epoch=1) == optimizer.param_groups[0]["lr"] == 0.37


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_backbone_factor_and_freezing_move_exactly_the_layers_they_name(name):
    torch.manual_seed(0)
    model = build_model(18, cbam=True)
    fine_tuning = train_params(optimizer=name, lr=1e-3, weight_decay=1e-4, backbone_lr_factor=0.1, freeze_epochs=1)
    optimizer = make_optimizer(model, fine_tuning, pretrained=arch(18))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [{names[id(p)] for p in g["params"]} for g in optimizer.param_groups]
    assert all(n.startswith(("conv1.", "bn1.", "layer1.")) for n in groups[0])
    assert all(n.startswith(("layer2.", "layer3.", "layer4.")) and ".attn." not in n for n in groups[1])
    assert all(n.startswith("fc.") or ".attn." in n for n in groups[2])
    assert set().union(*groups) == set(names.values())

    def step(epoch: int) -> dict[str, torch.Tensor]:
        set_epoch_lr(optimizer, 1.0, epoch)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.train()
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(4, 1, 33, 32)).square().mean().backward()
        optimizer.step()
        return before

    before = step(1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, pytest.approx(1e-4), 1e-3]
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n in groups[0]), n  # frozen: exactly unchanged
    before = step(2)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(1e-4), pytest.approx(1e-4), 1e-3]
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])


def test_an_older_checkpoints_params_read_as_from_scratch_at_one_rate():
    """Checkpoints written before these keys existed store none of them: the checkpoint
    reader upgrades them to what they ran with; params.yaml without them is an error."""
    params = load_params(ROOT / "params.yaml").as_dict()
    del params["model"]["pretrained"], params["train"]["backbone_lr_factor"], params["train"]["freeze_epochs"]
    del params["model"]["arch"]
    params["model"] = {"depth": 18, **params["model"]}  # before model.arch, the depth named the network
    with pytest.raises(ParamsError, match=r"^unknown key model\.depth; model takes arch"):
        validate_group("model", params["model"])
    upgraded = upgrade_params(params)
    model = validate_group("model", upgraded["model"])
    assert (model.arch, model.pretrained) == ("resnet18", "none")
    train = validate_group("train", upgraded["train"])
    assert (train.backbone_lr_factor, train.freeze_epochs) == (1.0, 0)


# --- Table 3 with the pretrained rows ----------------------------------------------------------


def evaluation_json(config: Config, seed: int, true: list[int], pred: list[int], init: dict | None) -> dict:
    from respiro.evaluation.metrics import scores_of

    s = scores_of(np.array(true), np.array(pred), ("Normal", "Crackle", "Wheeze", "Both"))
    return {
        **{k: s[k] for k in ("accuracy", "se", "sp", "icbhi_score")},
        "binary": s["binary"],
        "data_source": "synthetic(seed=1)", "synthetic_data": True, "note": "synthetic", "split_method": "official",
        "arch": config.arch, "cbam": config.cbam, "loss": config.loss, "seed": seed,
        "pretrained": "imagenet" if config.pretrained else "none", "init_weights": init,
    }  # fmt: skip


def predictions_csv(true: list[int], pred: list[int]) -> str:
    names = ["Normal", "Crackle", "Wheeze", "Both"]
    rows = [f"{1 + i % 3},{names[t]},{names[p]}" for i, (t, p) in enumerate(zip(true, pred))]
    return "patient,true_label,predicted_label\n" + "\n".join(rows) + "\n"


def test_table3_puts_each_imagenet_row_beside_its_paper_row_with_the_same_statistics():
    assert ALL_CONFIGS[0::2] == CONFIGS and all(c.pretrained for c in ALL_CONFIGS[1::2])
    r34 = Config("resnet34", True, "focal", pretrained=True)
    assert (r34.label, r34.experiment_name(0)) == (
        "ResNet-34 + CBAM + Focal Loss + ImageNet init",
        "t3-r34-cbam-focal-imagenet-s0",
    )
    assert (
        r34.overrides(0)["model.pretrained"] == "imagenet"
        and r34.from_scratch.overrides(0)["model.pretrained"] == "none"
    )
    init = {"file": "resnet34-0123abcd.pth", "sha256": "0123abcd" + "0" * 56}
    true = [0, 0, 0, 1, 2, 3, 0, 1, 2, 0, 0, 1]
    preds = {0: [0, 0, 1, 1, 2, 0, 0, 1, 0, 0, 0, 1], 1: [0, 1, 0, 1, 2, 3, 0, 0, 2, 0, 0, 1]}
    runs = []
    for config, weights in ((r34.from_scratch, None), (r34, init)):
        for seed, pred in preds.items():
            runs.append(run_from_files(evaluation_json(config, seed, true, pred, weights), predictions_csv(true, pred)))
    assert runs[2].config == r34 and runs[2].init_weights == init
    scratch, imagenet = aggregate(runs, 200, 0)
    assert (scratch.config, imagenet.config) == (r34.from_scratch, r34)
    # Same runs' predictions, same statistics: the rows differ only in what they are called.
    assert imagenet.scores == scratch.scores and (imagenet.ci_low, imagenet.ci_high) == (
        scratch.ci_low,
        scratch.ci_high,
    )
    assert imagenet.paper == scratch.paper  # the paper's from-scratch row of the same network
    assert imagenet.init_weights == ("resnet34-0123abcd.pth sha256:" + init["sha256"],) and scratch.init_weights == ()
    markdown = to_markdown([scratch, imagenet], runs[0].provenance, {})
    assert f"- ImageNet init: resnet34-0123abcd.pth sha256:{init['sha256']}" in markdown
    assert (
        "| ResNet-34 + CBAM + Focal Loss + ImageNet init | 2 |" in markdown and "trained from scratch only" in markdown
    )
    lines = to_csv([scratch, imagenet]).splitlines()
    assert lines[0].split(",")[:5] == ["model", "arch", "cbam", "loss", "pretrained"]
    assert lines[1].split(",")[4] == "none" and lines[2].split(",")[4] == "imagenet"
    # An evaluation.json from before model.pretrained existed is a from-scratch run.
    old = evaluation_json(r34.from_scratch, 0, true, preds[0], None)
    del old["pretrained"], old["init_weights"]
    assert run_from_files(old, predictions_csv(true, preds[0])).config == r34.from_scratch


def test_table3_pretrained_queues_the_imagenet_rows_after_fetching_both_files(tmp_path, torch_home, monkeypatch):
    import respiro.commands.table3 as command

    for depth in (18, 34):
        made = save_hub_file(tmp_path / "made", depth, seed=depth)
        monkeypatch.setitem(resnet.IMAGENET, depth, made.name)
        server_files = {made.name: made.read_bytes()}
        # ResNet-18's file waits in TORCH_HOME; ResNet-34's comes from the "mirror" below.
        if depth == 18:
            hub_checkpoint(made.name).parent.mkdir(parents=True, exist_ok=True)
            hub_checkpoint(made.name).write_bytes(made.read_bytes())
    server = FileServer(server_files)
    calls: list[list[str]] = []

    def fake_command(cmd, capture=False):
        calls.append(list(cmd))
        if cmd[:2] == ["git", "rev-parse"]:
            return "0" * 40
        if cmd[:3] == ["dvc", "exp", "show"]:
            return "[]"
        return ""

    monkeypatch.setattr(command, "command", fake_command)
    monkeypatch.setattr(command, "experiments", dict)
    from respiro.core.config import PretrainedParams

    try:
        with pytest.raises(Exception, match="experiments failed"):  # the fake queue leaves no results
            command.run_grid([0], 1, ALL_CONFIGS, PretrainedParams(path=None, url=server.url(""), sha256=None))
    finally:
        server.close()
    assert hub_checkpoint(resnet.IMAGENET[34]).read_bytes() == server_files[resnet.IMAGENET[34]]
    queued = [c for c in calls if c[:4] == ["dvc", "exp", "run", "--queue"]]
    assert [c[c.index("-n") + 1] for c in queued] == [c.experiment_name(0) for c in ALL_CONFIGS]
    assert queued[1][-6:] == ["-S", "loss.name=ce", "-S", "model.pretrained=imagenet", "-S", "train.seed=0"]
    assert "model.pretrained=none" in queued[0]
    with pytest.raises(Exception, match="pretrained.path=/x.pth names one file"):
        command.fetch_imagenet_weights(ALL_CONFIGS, PretrainedParams(path="/x.pth", url=server.url(""), sha256=None))


# --- the pipeline, end to end ------------------------------------------------------------------


def lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())


@pytest.mark.slow
def test_pipeline_trains_from_imagenet_weights_offline_and_records_them(tiny_baseline: FinishedRun, tmp_path):
    weights = save_hub_file(tmp_path / "weights", 18)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    project = copy_project(tiny_baseline.project, tmp_path / "project")  # trained from scratch
    set_params(project, {"pretrained": {"path": None, "url": "http://127.0.0.1:9/"}})  # nothing listens on port 9
    env = {**DVC_ENV, "TORCH_HOME": str(tmp_path / "empty-torch-home")}

    def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["dvc", *args], check=False, cwd=project, env=env, capture_output=True, text=True, timeout=1200
        )
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    run(["git", "commit", "-qam", "offline"], project)
    baseline = torch.load(project / "models/model.pt", weights_only=True)
    assert (
        "init_weights" not in baseline
        and json.loads((project / "metrics/eval/metrics.json").read_text())["init"] == "none"
    )

    # With the file given by path (stem and layer1 frozen for the only epoch, so they must
    # still be the file's): pretrained, train and evaluate rerun, nothing else.
    out = dvc(
        "exp",
        "run",
        "-S",
        "model.pretrained=imagenet",
        "-S",
        f"pretrained.path={weights}",
        "-S",
        "train.freeze_epochs=1",
        "-S",
        "train.backbone_lr_factor=0.1",
    )
    output = out.stdout + out.stderr
    assert sorted(set(re.findall(r"Running stage '(\w+)'", output))) == ["errors", "evaluate", "pretrained", "train"]
    assert f"pretrained: {weights.name} (SHA-256 {digest}) from pretrained.path" in output
    stage = lock(project)["stages"]["pretrained"]
    assert stage["params"]["params.yaml"]["model.pretrained"] == "imagenet"
    assert (project / "models/pretrained" / weights.name).read_bytes() == weights.read_bytes()
    assert json.loads((project / "models/pretrained/weights.json").read_text())["sha256"] == digest
    assert [d["md5"] for d in lock(project)["stages"]["train"]["deps"] if d["path"] == "models/pretrained"] == [
        stage["outs"][0]["md5"]
    ]
    checkpoint = torch.load(project / "models/model.pt", weights_only=True)
    assert checkpoint["init_weights"] == {"file": weights.name, "sha256": digest}
    assert checkpoint["params"]["model"]["pretrained"] == "imagenet"
    file = torch.load(weights, weights_only=True)
    state = checkpoint["state_dict"]
    assert torch.equal(state["conv1.weight"], file["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(state["layer1.1.conv2.weight"], file["layer1.1.conv2.weight"])
    assert not torch.equal(state["layer3.0.conv1.weight"], file["layer3.0.conv1.weight"])  # trained
    metrics = json.loads((project / "metrics/eval/metrics.json").read_text())
    assert metrics["init"] == f"imagenet {weights.name} sha256:{digest}"
    details = json.loads((project / "data/reports/evaluation.json").read_text())
    assert (details["pretrained"], details["init_weights"]) == ("imagenet", {"file": weights.name, "sha256": digest})

    # Offline, nothing in TORCH_HOME, no path: one line says which file to put where.
    failed = dvc("exp", "run", "-S", "model.pretrained=imagenet", "-S", "pretrained.path=null", check=False)
    assert failed.returncode != 0
    lines = [line for line in (failed.stdout + failed.stderr).splitlines() if line.startswith("pretrained: error:")]
    assert len(lines) == 1, failed.stdout + failed.stderr
    assert (
        f"put it at {tmp_path}/empty-torch-home/hub/checkpoints/resnet18-f37072fd.pth (or set pretrained.path to it)"
        in lines[0]
    )
