"""The Audio Spectrogram Transformer and its front-end: the fbank is AST's own feature
extractor's, the network is transformers' AST run in three steps (so its forward is the
library's), the AudioSet file's tensors land where they should, its attention and Grad-CAM
lie on its patch grid, and its params are checked in one line.

The AudioSet file is made here with the published file's names (transformers 4's, as the
hub's model.safetensors has them) and random values: the real file (346 MB) cannot be
downloaded where the tests run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from respiro.audio.chain import AudioChain
from respiro.audio.fbank import LogMelFbank, fbank_frames
from respiro.core.config import ModelParams, load_params
from respiro.core.errors import ParamsError, PretrainedWeightsError
from respiro.data.acquire.hub import find_local_file
from respiro.inference.maps import attention, attention_and_grad_cam
from respiro.model.ast import PATCH, STRIDE, patch_grid_shape
from respiro.model.pretrained import load_pretrained
from respiro.model.registry import architecture_of, create_model, get_architecture
from respiro.training.loop import make_optimizer, set_epoch_lr
from tests.conftest import ROOT, train_params

ARCH = get_architecture("ast")


def params(**ast) -> ModelParams:
    size = {"dim": 32, "layers": 2, "heads": 4, "position_bins": 128, "position_frames": 1024, **ast}
    return ModelParams(arch="ast", cbam=False, cbam_reduction=16, pretrained="none", ast=size)


def small(seed: int = 0, **ast) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(params(**ast), 4).eval()


# --- the front-end -----------------------------------------------------------------------------


def test_the_fbank_front_end_is_asts_own_feature_extractors():
    from transformers import ASTFeatureExtractor

    signals = (np.random.default_rng(0).standard_normal((2, 32000)) * 0.1).astype(np.float32)
    ours = LogMelFbank(16000, 400, 160, 128)(signals)
    assert ours.shape == (2, 128, fbank_frames(32000, 400, 160)) == (2, 128, 198)
    # The extractor pads every clip to 1024 frames: the first 198 are the signal's.
    theirs = ASTFeatureExtractor()(list(signals), sampling_rate=16000, return_tensors="np")["input_values"]
    np.testing.assert_array_equal(ours, theirs[:, :198].transpose(0, 2, 1))


def test_a_cycles_fbank_does_not_depend_on_its_batch():
    signals = (np.random.default_rng(1).standard_normal((5, 4000)) * 0.1).astype(np.float32)
    fbank = LogMelFbank(4000, 100, 40, 32)
    whole = fbank(signals)
    assert whole.tobytes() == np.concatenate([fbank(signals[:2]), fbank(signals[2:])]).tobytes()


@pytest.mark.parametrize("rate", [4000, 8000, 16000, 22050, 44100])
@pytest.mark.parametrize("n_fft, hop", [(400, 160), (256, 256), (441, 147), (100, 40)])
def test_kaldi_gets_back_the_whole_samples_it_is_given_in_milliseconds(rate, n_fft, hop):
    signal = np.random.default_rng(2).standard_normal((1, 3 * n_fft)).astype(np.float32)
    assert LogMelFbank(rate, n_fft, hop, 16)(signal).shape == (1, 16, fbank_frames(3 * n_fft, n_fft, hop))


def test_the_predict_chain_makes_asts_input_shape():
    raw = load_params(ROOT / "params.yaml").as_dict()
    raw["resample"]["rate"] = 16000
    raw["stft"].update(frontend="fbank", n_fft=400, hop_length=160)
    chain = AudioChain.from_params(raw)
    assert chain.shape == (128, 798)  # an 8 s cycle: 128 x 798, as AST's recipe
    cycles = np.random.default_rng(3).standard_normal((2, chain.cycle_samples)).astype(np.float32) * 0.1
    assert chain.spectrograms(cycles).shape == (2, 128, 798)


# --- the network ---------------------------------------------------------------------------------


def test_the_forward_is_transformers_ast_on_the_layout_it_was_built_for():
    """On the input its positions are laid out for, the three-step forward is the library's
    own (`ASTModel.forward`, eager attention), and the attention view is its last layer's
    attention from the two tokens to the patches."""
    model = small(position_bins=48, position_frames=96)
    x = torch.randn(2, 1, 48, 96)
    with torch.no_grad():
        out = model.ast(x[:, 0].transpose(1, 2), output_attentions=True)
        expected = model.head(out.pooler_output)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
    h, w = patch_grid_shape(48, 96)
    maps = out.attentions[-1][:, :, :2, 2:].mean(dim=(1, 2)).reshape(2, h, w)
    expected_view = (maps / maps.amax(dim=(1, 2), keepdim=True)).numpy()
    np.testing.assert_allclose(attention(ARCH, model, x), expected_view, rtol=1e-5)


@pytest.mark.parametrize("size", [(128, 798), (129, 126), (48, 16), (10, 5), (1, 1)])
def test_any_input_size_goes_in_and_the_grid_follows_it(size):
    model = small()
    x = torch.randn(2, 1, *size)
    view, cam = attention_and_grad_cam(ARCH, model, x, torch.tensor([0, 3]))
    grid = patch_grid_shape(*size)
    assert view is not None and view.shape == cam.shape == (2, *grid)
    assert np.isclose(view.max(axis=(1, 2)), 1).all() and (view >= 0).all()


def test_one_grid_cell_covers_its_patch_centred_where_the_architecture_says():
    """With one layer the Grad-CAM layer's cell (i, j) is patch (i, j) embedded: its input
    gradient is exactly the 16 x 16 patch at 10 i, 10 j, centred on offset + stride * i."""
    model = small(layers=1)
    outputs: list[torch.Tensor] = []
    hook = ARCH.cam_layer(model).register_forward_hook(lambda _m, _i, out: outputs.append(out))
    x = torch.randn(1, 1, 128, 200, requires_grad=True)
    model(x)
    hook.remove()
    i, j = 3, 7
    outputs[-1][0, :, i, j].sum().backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (
        STRIDE * i,
        STRIDE * i + PATCH - 1,
        STRIDE * j,
        STRIDE * j + PATCH - 1,
    )
    centre = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    assert centre == (ARCH.feature_offset + ARCH.feature_stride * i, ARCH.feature_offset + ARCH.feature_stride * j)


def test_grad_cam_weighs_the_patch_tokens_entering_the_last_layer_of_the_librarys_forward():
    """Grad-CAM on the AST is relu(sum_k mean_ij(d logit / d A_k) A_k) with A the patch tokens
    that enter the last layer, read here from transformers' own forward (its hidden states)."""
    model = small(layers=3, position_bins=48, position_frames=96)
    x = torch.randn(2, 1, 48, 96)
    classes = torch.tensor([2, 0])
    _, cam = attention_and_grad_cam(ARCH, model, x, classes)
    out = model.ast(x[:, 0].transpose(1, 2), output_hidden_states=True)
    entering = out.hidden_states[-2]  # (B, 2 + h*w, D): the input of the last layer
    logits = model.head(out.pooler_output)
    (grads,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), entering)
    h, w = patch_grid_shape(48, 96)
    tokens, grads = (t[:, 2:].transpose(1, 2).reshape(2, -1, h, w) for t in (entering.detach(), grads))
    expected = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * tokens).sum(dim=1))
    expected = expected / expected.amax(dim=(1, 2), keepdim=True)
    np.testing.assert_allclose(cam, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_one_training_step_reaches_every_parameter_and_the_groups_cover_them():
    model = small().train()
    model(torch.randn(2, 1, 64, 64)).sum().backward()
    names = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert names == []
    groups = {n: ARCH.param_group(n) for n, _ in model.named_parameters()}
    assert {n for n, g in groups.items() if g == "new"} == {n for n in groups if n.startswith("head.")}
    early = {n for n, g in groups.items() if g == "early"}
    assert early == {n for n in groups if n.startswith(("ast.embeddings.", "ast.layers.0."))}
    fine_tuning = train_params(optimizer="adam", lr=1e-3, weight_decay=0.0, backbone_lr_factor=0.1, freeze_epochs=1)
    optimizer = make_optimizer(model, fine_tuning, pretrained=ARCH)
    set_epoch_lr(optimizer, 1.0, 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer.zero_grad()
    model(torch.randn(2, 1, 64, 64)).square().mean().backward()
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert early.isdisjoint(moved) and moved  # the early group is frozen in epoch 1


def test_the_same_seed_builds_the_same_network():
    a, b = small(seed=5).state_dict(), small(seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- the AudioSet weights ------------------------------------------------------------------------

# Ours -> the published file's names (transformers 4's modules), written out here on their own.
PUBLISHED = [
    (r"^ast\.", "audio_spectrogram_transformer."),
    (r"\.layers\.", ".encoder.layer."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
    (r"^head\.", "classifier."),
]


def audioset_file(folder: Path, rows_only: bool = False, **ast) -> tuple[Path, dict[str, torch.Tensor]]:
    """A model.safetensors with the published file's names and AudioSet's layout (128 x 1024,
    12 x 101 patches, a 527-class head), random values, in `folder`; with `rows_only` the
    position embeddings of the patches vary by bin row only (the same along the frames)."""
    torch.manual_seed(11)
    source = create_model(params(**ast), 527)
    state = {}
    for key, tensor in source.state_dict().items():
        for pattern, replacement in PUBLISHED:
            key = re.sub(pattern, replacement, key)
        state[key] = torch.randn_like(tensor)
    assert "audio_spectrogram_transformer.encoder.layer.1.attention.attention.query.weight" in state
    positions = state["audio_spectrogram_transformer.embeddings.position_embeddings"]
    assert positions.shape[1] == 2 + 12 * 101
    if rows_only:
        positions[0, 2:] = positions[0, 2:].reshape(12, 101, -1)[:, :1].expand(12, 101, -1).reshape(1212, -1)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, folder / "model.safetensors")
    return folder / "model.safetensors", state


def test_the_audioset_files_tensors_land_where_they_should_and_the_head_keeps_its_init(tmp_path):
    path, published = audioset_file(tmp_path)
    model = small(seed=3)
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    loaded = load_pretrained(ARCH, model, path)
    ours = model.state_dict()
    assert len(loaded) == len(ours) - len(head)
    assert all(torch.equal(ours[k], v) for k, v in head.items())
    q = "ast.layers.1.attention.q_proj.weight"
    assert torch.equal(
        ours[q], published["audio_spectrogram_transformer.encoder.layer.1.attention.attention.query.weight"]
    )
    fc2 = "ast.layers.0.mlp.fc2.bias"
    assert torch.equal(ours[fc2], published["audio_spectrogram_transformer.encoder.layer.0.output.dense.bias"])
    positions = "audio_spectrogram_transformer.embeddings.position_embeddings"
    assert torch.equal(ours["ast.embeddings.position_embeddings"], published[positions])


def test_the_audioset_positions_are_interpolated_to_another_layout(tmp_path):
    path, published = audioset_file(tmp_path, rows_only=True)
    model = small(position_frames=798)  # an 8 s cycle's frames: 12 x 79 patches
    load_pretrained(ARCH, model, path)
    positions = model.state_dict()["ast.embeddings.position_embeddings"]
    given = published["audio_spectrogram_transformer.embeddings.position_embeddings"]
    assert positions.shape == (1, 2 + 12 * 79, 32)
    assert torch.equal(positions[:, :2], given[:, :2])  # the tokens' own: not on the grid
    # Along the frames only the length changes: each bin row keeps its (constant) embedding.
    rows = given[0, 2:].reshape(12, 101, 32)[:, :1].expand(12, 79, 32)
    torch.testing.assert_close(positions[0, 2:].reshape(12, 79, 32), rows, rtol=1e-6, atol=1e-6)


def test_a_file_of_another_size_stops_with_one_line_naming_it(tmp_path):
    path, _ = audioset_file(tmp_path, dim=64)
    with pytest.raises(PretrainedWeightsError, match=rf"^{path}: .*model.ast must be the file's size") as err:
        load_pretrained(ARCH, small(), path)
    assert "\n" not in str(err.value)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PretrainedWeightsError, match=rf"^{tmp_path}/bad.safetensors: not a safetensors file"):
        load_pretrained(ARCH, small(), tmp_path / "bad.safetensors")


def test_the_audioset_file_comes_from_pretrained_path_only_and_is_hash_checked(tmp_path):
    name = ARCH.weights_file("audioset")
    what = "audioset AST, for model.pretrained=audioset"
    with pytest.raises(PretrainedWeightsError, match=r"^model.safetensors .* never downloaded.*set pretrained.path"):
        find_local_file(name, what, None, None)
    with pytest.raises(PretrainedWeightsError, match=rf"^pretrained.path={tmp_path}: no model.safetensors there"):
        find_local_file(name, what, str(tmp_path), None)
    path, _ = audioset_file(tmp_path / "snapshot")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for given in (tmp_path / "snapshot", path):  # the hub's snapshot folder, or the file
        found = find_local_file(name, what, str(given), digest)
        assert (found.path, found.sha256, found.source) == (path, digest, "pretrained.path")
    with pytest.raises(PretrainedWeightsError, match=rf"^{path}: SHA-256 {digest[:16]}\.\.\. is not pretrained.sha256"):
        find_local_file(name, what, str(path), "0" * 64)


# --- its params ----------------------------------------------------------------------------------


def test_its_params_are_checked_in_one_line():
    with pytest.raises(ParamsError, match=r"^model.ast.dim: must be a multiple of heads \(4\); got 30$"):
        architecture_of(params(dim=30))
    bare = ModelParams(arch="ast", cbam=False, cbam_reduction=16, pretrained="none")
    with pytest.raises(ParamsError, match=r"^missing key model.ast.dim$"):
        architecture_of(bare)
    with pytest.raises(ParamsError, match=r"^model.cbam: ast has no CBAM placement; set model.cbam to false$"):
        architecture_of(ModelParams(**{**params().model_dump(), "cbam": True}))
    with pytest.raises(
        ParamsError, match=r"^model.pretrained: resnet34 has no audioset weights; it takes none, imagenet$"
    ):
        architecture_of(ModelParams(arch="resnet34", cbam=True, cbam_reduction=16, pretrained="audioset"))
    with pytest.raises(ParamsError, match=r"^model.resnet99: no network of that name has settings; known: resnet18"):
        architecture_of(ModelParams(arch="resnet34", cbam=True, cbam_reduction=16, pretrained="none", resnet99={}))
    with pytest.raises(ParamsError, match=r"^unknown key model.layers; model takes arch, cbam"):
        from respiro.core.config import validate_group

        validate_group("model", {**params().model_dump(), "layers": 2})
