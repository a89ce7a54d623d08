"""Every architecture of the registry keeps what it declares: the network's shapes, where CBAM
goes, its weights from a local file, its parameter groups, and Grad-CAM on its grid.

The weights files are made here with the keys and shapes of the published ones (torchvision's
own networks, randomly initialised, saved under a hash-prefixed name): the real files cannot
be downloaded where the tests run, and random values show a tensor landing in the wrong place.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from respiro.core.config import ModelParams
from respiro.core.errors import ParamsError, PretrainedWeightsError
from respiro.data.acquire.hub import hash_prefix
from respiro.inference.maps import attention, attention_and_grad_cam
from respiro.model.cbam import CBAM
from respiro.model.efficientnet import STAGE_WIDTHS, EfficientNetB0Architecture
from respiro.model.pretrained import load_pretrained
from respiro.model.registry import ARCHITECTURES, architecture_of, create_model, get_architecture, upgrade_model_group
from respiro.training.loop import make_optimizer, set_epoch_lr
from tests.conftest import train_params

NAMES = list(ARCHITECTURES)
CNNS = [n for n in NAMES if ARCHITECTURES[n].cbam_placement is not None]


# A small AST (the base size, 86 M parameters, is not needed to test what it declares).
SMALL_AST = {"dim": 32, "layers": 2, "heads": 4, "position_bins": 128, "position_frames": 1024}


def params(arch: str, cbam: bool = False, pretrained: str = "none") -> ModelParams:
    """model.* for `arch`, CBAM where asked and the network has a place for it."""
    cbam = cbam and (arch not in ARCHITECTURES or ARCHITECTURES[arch].cbam_placement is not None)
    return ModelParams(arch=arch, cbam=cbam, cbam_reduction=16, pretrained=pretrained, ast=SMALL_AST)


@functools.cache
def shared(name: str, cbam: bool) -> nn.Module:
    """One network per (architecture, cbam) in eval mode, for the tests that only run it forward."""
    torch.manual_seed(0)
    return create_model(params(name, cbam), 4).eval()


def torchvision_file(folder: Path, name: str, seed: int = 0) -> Path:
    """A file with the keys and shapes of torchvision's ImageNet weights of `name` (3-channel
    stem, 1000-class head), random values, under a torchvision-style hash-prefixed name."""
    import torchvision.models

    torch.manual_seed(seed)
    network = getattr(torchvision.models, name)(num_classes=1000)
    state = {k: v.clone() for k, v in network.state_dict().items()}
    for tensor in state.values():  # BN's unit weights and zero biases would hide a swap
        if tensor.is_floating_point():
            tensor.normal_()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "weights.tmp"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"{name}-{digest[:8]}.pth")


# --- the registry ------------------------------------------------------------------------------


def test_the_registry_names_each_network_once_and_refuses_others_in_one_line():
    assert NAMES[:2] == ["resnet18", "resnet34"] and "efficientnet_b0" in NAMES
    assert len({a.short for a in ARCHITECTURES.values()}) == len(NAMES)
    assert all(get_architecture(n).name == n for n in NAMES)
    with pytest.raises(ParamsError, match=r"^model.arch: unknown architecture 'resnet50'; known: resnet18, resnet34, "):
        get_architecture("resnet50")
    with pytest.raises(
        ParamsError, match=r"^model.pretrained: resnet34 has no audioset weights; it takes none, imagenet"
    ):
        get_architecture("resnet34").check(
            ModelParams.model_construct(arch="resnet34", cbam=True, pretrained="audioset")
        )


def test_an_architecture_without_a_cbam_placement_refuses_model_cbam():
    class NoPlace(EfficientNetB0Architecture):
        name, cbam_placement = "plain", None

    NoPlace().check(params("plain"))
    with pytest.raises(ParamsError, match=r"^model.cbam: plain has no CBAM placement; set model.cbam to false$"):
        NoPlace().check(params("plain", cbam=True))


def test_old_model_groups_name_their_network_by_depth():
    assert upgrade_model_group({"depth": 34, "cbam": True}) == {"arch": "resnet34", "cbam": True}
    assert upgrade_model_group({"depth": 18, "cbam": False})["arch"] == "resnet18"
    assert upgrade_model_group({"arch": "efficientnet_b0", "cbam": True}) == {"arch": "efficientnet_b0", "cbam": True}
    assert "arch" not in upgrade_model_group({"depth": 50})  # left for the schema to name


# --- the network -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cbam", [False, True])
@pytest.mark.parametrize("size", [(129, 126), (129, 20), (33, 32), (1, 1)])
def test_output_shape_for_any_spectrogram_size(name, cbam, size):
    torch.manual_seed(0)
    with torch.no_grad():
        out = shared(name, cbam)(torch.randn(3, 1, *size))
    assert out.shape == (3, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_the_class_count_is_the_schemes(name):
    assert create_model(params(name), 7).eval()(torch.randn(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(params(name, cbam=True), 4).train()
    model(torch.randn(2, 1, 33, 32)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_efficientnet_cbam_sits_after_each_mbconv_stage():
    model = shared("efficientnet_b0", True)
    cbams = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(cbams) == 7 and not any(isinstance(m, CBAM) for m in shared("efficientnet_b0", False).modules())
    assert [c.channel.mlp[0].in_channels for c in cbams] == list(STAGE_WIDTHS)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.features[3].register_forward_hook(lambda m, i, o: seen.__setitem__("stage", o)),
        model.attn[2].register_forward_hook(lambda m, i, o: seen.__setitem__("attn", (i[0], o))),
        model.features[4].register_forward_hook(lambda m, i, o: seen.__setitem__("next", i[0])),
    ]
    with torch.no_grad():
        model(torch.randn(2, 1, 64, 64))
    for hook in hooks:
        hook.remove()
    assert seen["attn"][0] is seen["stage"]  # the stage's output goes into its CBAM
    assert seen["next"] is seen["attn"][1]  # and CBAM's output into the next stage
    assert not torch.equal(seen["attn"][0], seen["attn"][1])


def test_efficientnet_plain_has_torchvisions_parameters_but_one_channel_in():
    import torchvision.models

    reference = torchvision.models.efficientnet_b0(num_classes=4)
    ours = shared("efficientnet_b0", False)
    # 3 x 3 x 32 stem weights fewer: 2 of its 3 input channels.
    assert sum(p.numel() for p in reference.parameters()) - sum(p.numel() for p in ours.parameters()) == 2 * 9 * 32
    assert {k for k in reference.state_dict()} == set(ours.state_dict())


# --- pretrained weights from a local file -------------------------------------------------------


@pytest.mark.parametrize("name", CNNS)
def test_weights_from_a_local_file_land_where_they_should_and_new_parts_keep_their_init(tmp_path, name):
    arch = get_architecture(name)
    published = arch.weights_file("imagenet")
    assert hash_prefix(published) is not None
    path = torchvision_file(tmp_path, name)
    file = torch.load(path, weights_only=True)
    torch.manual_seed(3)
    model = arch.build(4, params(name, True))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = load_pretrained(arch, model, path)
    after = model.state_dict()
    assert loaded and all(arch.param_group(k) != "new" for k in loaded)
    stem = next(k for k in loaded if file[k].ndim == 4 and file[k].shape[1] == 3)
    for key, tensor in after.items():
        if arch.param_group(key) == "new":  # CBAM and the head: the init a from-scratch run has
            assert torch.equal(tensor, before[key]), key
        elif key == stem:
            assert torch.equal(tensor, file[key].sum(dim=1, keepdim=True))
        else:
            assert torch.equal(tensor, file[key]), key


def test_efficientnet_names_torchvisions_published_file():
    from torchvision.models import EfficientNet_B0_Weights

    name = get_architecture("efficientnet_b0").weights_file("imagenet")
    assert EfficientNet_B0_Weights.IMAGENET1K_V1.url.endswith("/" + name)
    assert hash_prefix(name) == "7f5810bc"


def test_another_networks_file_stops_with_one_line_naming_it(tmp_path):
    resnet_file = torchvision_file(tmp_path, "resnet18")
    arch = get_architecture("efficientnet_b0")
    with pytest.raises(PretrainedWeightsError, match=rf"^{resnet_file}: does not fit EfficientNet-B0 \(") as err:
        load_pretrained(arch, arch.build(4, params("efficientnet_b0")), resnet_file)
    assert "\n" not in str(err.value)


# --- parameter groups -------------------------------------------------------------------------


@pytest.mark.parametrize("name", CNNS)
def test_parameter_groups_cover_the_network_and_freezing_holds_exactly_the_early_group(name):
    arch = get_architecture(name)
    torch.manual_seed(0)
    model = arch.build(4, params(name, True))
    groups = {
        kind: {n for n, _ in model.named_parameters() if arch.param_group(n) == kind}
        for kind in ("early", "backbone", "new")
    }
    assert all(groups.values())
    # New is exactly what the published weights do not give: absent from them (CBAM), or of
    # another shape (the 1000-class head).
    import torchvision.models

    published = getattr(torchvision.models, name)(num_classes=1000).state_dict()
    ours = model.state_dict()
    for key in ours:
        fits = key in published and (published[key].shape == ours[key].shape or published[key].shape[1:2] == (3,))
        assert fits == (arch.param_group(key) != "new"), key
    fine_tuning = train_params(optimizer="adam", lr=1e-3, weight_decay=0.0, backbone_lr_factor=0.1, freeze_epochs=1)
    optimizer = make_optimizer(model, fine_tuning, pretrained=arch)
    set_epoch_lr(optimizer, 1.0, 1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, pytest.approx(1e-4), 1e-3]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    model(torch.randn(4, 1, 33, 32)).square().mean().backward()
    optimizer.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n in groups["early"]), n


# --- Grad-CAM and the attention view -----------------------------------------------------------


def positive(name: str, constant: bool) -> nn.Module:
    """The network with no bias and every weight non-negative: `constant` makes each kernel
    flat (1 / fan-in), symmetric about its centre; otherwise the weights' magnitudes. Class 2's
    head row is negated: every feature speaks against it."""
    torch.manual_seed(0)
    model = create_model(params(name), 4).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(module.weight.abs() if not constant else 1 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        head.weight[2].neg_()
    return model


@pytest.mark.parametrize("name", CNNS)
def test_every_strided_layer_keeps_its_kernel_centred_and_the_strides_make_the_declared_one(name):
    """What `feature_stride` (and offset 0) rests on for a CNN: each strided layer before the
    Grad-CAM layer has an odd kernel and padding k // 2, so its cell i is centred on input 2i."""
    arch = get_architecture(name)
    model = shared(name, False)
    layer = arch.cam_layer(model)
    for module in model.modules():
        if module is layer:
            break
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            stride, kernel, padding = (
                v if isinstance(v, int) else v[0] for v in (module.stride, module.kernel_size, module.padding)
            )
            if stride > 1:
                assert kernel % 2 == 1 and padding == kernel // 2, module
    outputs: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    with torch.no_grad():
        model(torch.zeros(1, 1, 257, 1 + 3 * arch.feature_stride))
    hook.remove()
    # Centres 0, stride, 2 stride, ...: a side of 1 + n stride samples holds n + 1 of them.
    assert outputs[-1].shape[2:] == (1 + 256 // arch.feature_stride, 4) and arch.feature_offset == 0.0


# ResNet-34's effective receptive field is too flat for its input gradient's peak to say
# more than the structure test above.
@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
@pytest.mark.parametrize("cell", [(2, 5), (5, 2), (1, 6)])
def test_each_grid_cell_is_centred_where_the_architecture_says(name, cell):
    """The input gradient of one cell of the Grad-CAM layer, with symmetric kernels, peaks on
    the cell's centre `offset + stride * i` (what `upsample` puts each cell on), not half a
    cell away."""
    arch = get_architecture(name)
    model = positive(name, constant=True)
    outputs: list[torch.Tensor] = []
    hook = arch.cam_layer(model).register_forward_hook(lambda _m, _i, out: outputs.append(out))
    gradient = torch.zeros(257, 257)
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):  # random inputs: a max pool's ties would pick one side
        x = torch.rand(1, 1, 257, 257, generator=generator, requires_grad=True)
        model(x)
        outputs[-1][0, :, cell[0], cell[1]].sum().backward()
        gradient += x.grad[0, 0].abs()
    hook.remove()
    smooth = torch.nn.functional.avg_pool2d(gradient[None, None], 9, 1, 4, count_include_pad=False)[0, 0]
    found = np.unravel_index(int(smooth.argmax()), smooth.shape)
    expected = [arch.feature_offset + arch.feature_stride * i for i in cell]
    tolerance = arch.feature_stride / 8  # half a cell off would be 16
    assert abs(found[0] - expected[0]) <= tolerance and abs(found[1] - expected[1]) <= tolerance, (found, expected)


@pytest.mark.parametrize("name", CNNS)
def test_grad_cam_is_on_the_grid_and_zero_for_a_class_no_feature_supports(name):
    arch = get_architecture(name)
    model = positive(name, constant=True)  # weights' magnitudes would overflow ResNet-34's features
    F, T = 129, 251
    x = torch.zeros(1, 1, F, T)
    x[0, 0, 90:103, 154:167] = 1.0
    view, cam = attention_and_grad_cam(arch, model, x, torch.tensor([1]))
    assert view is None  # no CBAM, no attention view
    assert cam.shape == (1, -(-F // arch.feature_stride), -(-T // arch.feature_stride))
    assert cam.max() == pytest.approx(1.0) and cam.min() >= 0
    assert not attention_and_grad_cam(arch, model, x, torch.tensor([2]))[1].any()


@pytest.mark.parametrize("name", CNNS)
def test_with_cbam_the_attention_view_is_the_last_gate_on_the_grad_cam_grid(name):
    arch = get_architecture(name)
    model = shared(name, True)
    x = torch.randn(2, 1, 129, 126)
    view, cam = attention_and_grad_cam(arch, model, x, torch.tensor([0, 3]))
    assert view is not None and view.shape == cam.shape == (2, 5, 4)
    assert ((view > 0) & (view < 1)).all()
    np.testing.assert_allclose(view, attention(arch, model, x), rtol=1e-5)


def test_architecture_of_checks_the_params():
    assert architecture_of(params("efficientnet_b0", cbam=True, pretrained="imagenet")).name == "efficientnet_b0"


def test_no_code_outside_the_networks_modules_names_a_network():
    """The registry is the one place a network is named: no string or name in src/ or stages/
    outside src/respiro/model/ is a model.arch (comments and docstrings aside)."""
    import ast

    from tests.conftest import ROOT

    names = set(ARCHITECTURES)
    found = []
    files = [*(ROOT / "src/respiro").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]
    for path in files:
        if (ROOT / "src/respiro/model") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = (
                node.value
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                else node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {value!r}")
    assert found == []


@pytest.mark.parametrize("name", NAMES)
def test_each_network_names_its_weights_files_in_one_table(name):
    """`weights_files` is the one place a network names its published files: the choices
    model.pretrained takes and each file come from it; a choice it lacks is refused by name."""
    arch = ARCHITECTURES[name]
    assert arch.weights_choices == tuple(arch.weights_files) and arch.weights_choices
    for choice, file in arch.weights_files.items():
        assert arch.weights_file(choice) == file
    with pytest.raises(ValueError, match=f"{name} has no nowhere weights"):
        arch.weights_file("nowhere")
