"""The training loop's guards and helpers."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.params import TrainParams
from src.training import NonFiniteLossError, lr_factor, resolve_device, spec_augment, train_one_epoch


def params(**kw) -> TrainParams:
    base = dict(epochs=3, batch_size=2, optimizer="adam", lr=1e-3, schedule="cosine", weight_decay=0.0, val_fraction=0.2,
                time_mask=0, freq_mask=0, seed=0, device="cpu", workers=0)
    return TrainParams(**{**base, **kw})


def test_a_nan_loss_stops_training_naming_epoch_and_step():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    data = DataLoader(TensorDataset(torch.randn(6, 1, 3, 4), torch.tensor([0, 1, 2, 3, 0, 1])), batch_size=2)
    calls = []

    def loss_fn(logits, target):  # finite twice, then NaN: the third step must be named
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if len(calls) == 3 else loss

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="epoch 5, step 3"):
        train_one_epoch(model, data, loss_fn, optimizer, torch.device("cpu"), params(), torch.Generator().manual_seed(0), epoch=5)


def test_learning_rate_schedules():
    assert [lr_factor("cosine", e, 4) for e in range(4)] == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-6)
    assert [lr_factor("step", e, 6) for e in range(6)] == [1, 1, 1, 1, 0.1, 0.1]
    assert lr_factor("constant", 5, 6) == 1.0


def test_spec_augment_masks_one_band_per_axis_and_is_seeded():
    x = torch.ones(4, 1, 20, 30)
    a = spec_augment(x, time_mask=5, freq_mask=4, generator=torch.Generator().manual_seed(1))
    b = spec_augment(x, time_mask=5, freq_mask=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(x, torch.ones_like(x))  # seeded; input untouched
    for item in a[:, 0]:
        zero_cols = (item == 0).all(dim=0).sum().item()  # masked time frames span every bin
        zero_rows = (item == 0).all(dim=1).sum().item()
        assert zero_cols <= 5 and zero_rows <= 4
    assert spec_augment(x, 0, 0, torch.Generator()).equal(x)


def test_cuda_device_without_a_gpu_names_the_key():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="train.device is cuda"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
