"""The training loop's guards and helpers: schedules, precision choice, device batches."""

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from respiro.core.errors import ParamsError, StageError
from respiro.core.schemes import SCHEMES
from respiro.training.batches import (
    Sampling,
    Shard,
    TrainBatches,
    apply_mask_bands,
    draw_mask_bands,
)
from respiro.training.device import resolve_device
from respiro.training.fit import EpochResult, Validation, fit
from respiro.training.loop import NonFiniteLossError, lr_factor, make_optimizer, train_one_epoch
from respiro.training.precision import choose_arithmetic, cpu_flags, cpu_has_native_bf16, set_cuda_fp32
from respiro.training.step import EagerStep
from tests.conftest import train_params

FOUR = SCHEMES["four"].classes


def batches_of(n: int, batch_size: int, shard: Shard = Shard(), seed: int = 0, masks: int = 0) -> TrainBatches:
    """A TrainBatches over n cycles (6 bins, 8 frames) whose value is their position (x[i] = i everywhere)."""
    positions = np.arange(n)[shard.rank :: shard.world]
    x = torch.from_numpy(positions.astype(np.float32))[:, None, None, None].expand(-1, 1, 6, 8).clone()
    y = torch.from_numpy(positions % 4)
    return TrainBatches(x, y, n, Sampling(batch_size, time_mask=masks, freq_mask=masks, seed=seed), shard)


def xs(data: TrainBatches, batch) -> torch.Tensor:
    """The assembled spectrograms of `batch`."""
    return data.assemble(batch.rows, batch.bands)[0]


class Assembled(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    weight: float
    step: int


def test_a_nan_loss_stops_training_naming_epoch_and_step():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    calls = []

    def loss_fn(logits, target):  # finite twice, then NaN: the third step must be named
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if len(calls) == 3 else loss

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="epoch 5, step 3"):
        data = batches_of(10, 2)
        train_one_epoch(EagerStep(model, data, loss_fn, optimizer, None), data, epoch=5)
    assert len(calls) == 5  # the epoch ran to its end: the check waits for it, not each step


def test_the_epoch_loss_is_the_mean_per_cycle():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    seen = []

    def loss_fn(logits, target):  # per-batch mean of the labels: the epoch mean is theirs
        seen.append(target.clone())
        return target.float().mean() + 0 * logits.sum()

    data = batches_of(7, 3)
    loss = train_one_epoch(
        EagerStep(model, data, loss_fn, torch.optim.SGD(model.parameters(), lr=0.0), None), data, epoch=1
    )
    labels = torch.cat(seen).float()
    assert len(labels) == 7 and loss == pytest.approx(labels.mean().item())


def test_fit_keeps_the_best_validation_epoch_and_logs_the_loss_of_the_logits():
    torch.manual_seed(6)  # a seed whose best epoch is neither the first nor the last, tied later
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4))
    val_x = torch.randn(40, 1, 6, 8)
    val_y = torch.arange(40) % 4
    val_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(val_x, val_y), batch_size=16)
    loss_fn = torch.nn.functional.cross_entropy
    optimizer = make_optimizer(model, train_params(optimizer="sgd", lr=0.5, weight_decay=0.0))
    seen: list[tuple[EpochResult, dict, float]] = []

    def on_epoch(e: EpochResult) -> None:
        with torch.no_grad():  # what the model gives now, outside fit
            loss = loss_fn(model(val_x), val_y).item()
        seen.append((e, {k: v.clone() for k, v in model.state_dict().items()}, loss))

    train = batches_of(32, 8)
    val, six = Validation(val_loader, FOUR), train_params(epochs=6, schedule="cosine")
    best = fit(EagerStep(model, train, loss_fn, optimizer, None), train, val, six, on_epoch=on_epoch)
    assert [e.epoch for e, _, _ in seen] == list(range(1, 7))
    assert [e.lr for e, _, _ in seen] == pytest.approx([0.5 * lr_factor("cosine", i, 6) for i in range(6)])
    for e, _, loss in seen:  # cross-entropy of the logits, not of log-probabilities clamped
        assert e.val_loss == pytest.approx(loss, rel=1e-5)
    scores = [-1.0 if e.val["icbhi_score"] is None else e.val["icbhi_score"] for e, _, _ in seen]
    first_best = scores.index(max(scores))
    assert 0 < first_best < 5 and scores.count(max(scores)) > 1  # what this seed is for
    assert best is not None and best.epoch == first_best + 1
    assert best.val == seen[first_best][0].val
    assert all(torch.equal(best.state_dict[k], v) for k, v in seen[first_best][1].items())
    assert [e.improved for e, _, _ in seen][first_best] and not any(e.improved for e, _, _ in seen[first_best + 1 :])
    # A process that only trains gets no result and validates nothing.
    assert (
        fit(
            EagerStep(model, train, loss_fn, optimizer, None),
            train,
            None,
            train_params(epochs=1, schedule="constant"),
            on_epoch=on_epoch,
        )
        is None
    )
    assert len(seen) == 6


def test_learning_rate_schedules():
    assert [lr_factor("cosine", e, 4) for e in range(4)] == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-6)
    assert [lr_factor("step", e, 6) for e in range(6)] == [1, 1, 1, 1, 0.1, 0.1]
    assert lr_factor("constant", 5, 6) == 1.0


def test_mask_bands_lie_inside_and_are_applied_where_drawn():
    bands = draw_mask_bands(np.random.default_rng(0), 500, time_mask=16, freq_mask=8, frames=20, bins=10)
    assert (bands[:, 0] + bands[:, 1] <= 20).all() and (bands[:, 2] + bands[:, 3] <= 10).all()
    assert set(bands[:, 1]) == set(range(17)) and set(bands[:, 3]) == set(range(9))
    ones = torch.ones(1, 1, 10, 20)
    x = apply_mask_bands(ones, torch.tensor([[3, 2, 7, 1]]))
    assert (x[0, 0, :, 3:5] == 0).all() and (x[0, 0, 7] == 0).all() and x.sum() == 10 * 20 - 2 * 10 - 18
    assert torch.equal(ones, torch.ones_like(ones))  # the input is untouched
    none = draw_mask_bands(np.random.default_rng(0), 3, time_mask=0, freq_mask=0, frames=20, bins=10)
    assert torch.equal(apply_mask_bands(ones.expand(3, -1, -1, -1), torch.from_numpy(none)), ones.expand(3, -1, -1, -1))


def test_an_epoch_serves_every_cycle_once_in_a_seeded_order():
    data = batches_of(23, 5, masks=0)
    epoch1 = [(xs(data, b)[:, 0, 0, 0].long().tolist(), b.step, b.weight) for b in data.epoch(1)]
    order = [i for items, _, _ in epoch1 for i in items]
    assert sorted(order) == list(range(23)) and [s for _, s, _ in epoch1] == [1, 2, 3, 4, 5]
    assert all(w == 1.0 for _, _, w in epoch1) and data.steps(1) == 5
    again = batches_of(23, 5)
    assert order == [i for b in again.epoch(1) for i in xs(again, b)[:, 0, 0, 0].long().tolist()]  # seeded
    assert order != [i for b in data.epoch(2) for i in xs(data, b)[:, 0, 0, 0].long().tolist()]  # reshuffled per epoch
    batch = next(iter(data.epoch(1)))
    x, y = data.assemble(batch.rows, batch.bands)
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x[:, 0, 0, 0].long() % 4)


@pytest.mark.parametrize("world", [2, 3])
def test_shards_split_each_global_batch_and_their_weights_restore_its_mean(world):
    n, size = 41, 8
    whole = batches_of(n, size, masks=3, seed=7)
    single = [(xs(whole, b)[:, 0].clone(), b.step) for b in whole.epoch(4)]
    shards = [batches_of(n, size, Shard(rank, world), masks=3, seed=7) for rank in range(world)]
    parts = [[Assembled(*data.assemble(b.rows, b.bands), b.weight, b.step) for b in data.epoch(4)] for data in shards]
    assert len({len(p) for p in parts}) == 1
    for step, ranked in enumerate(zip(*parts)):
        assert {b.step for b in ranked} == {step + 1}
        # every process's part: its own cycles (position % world == rank), masks as drawn for them
        for rank, b in enumerate(ranked):
            ids = b.x[:, 0].amax(dim=(1, 2)).long()
            assert len(ids) > 0 and (ids % world == rank).all()
        joined = torch.cat([b.x[:, 0] for b in ranked])
        reference = next(x for x, s in single if s == ranked[0].step)
        key = lambda t: t.amax(dim=(1, 2))  # noqa: E731 - the cycle's position
        assert torch.equal(joined[key(joined).argsort()], reference[key(reference).argsort()])
        # (1/world) sum_r weight_r * mean_r = global mean: weight_r = n_r * world / global batch
        assert [b.weight for b in ranked] == [len(b.y) * world / len(reference) for b in ranked]


def test_precision_choice():
    assert choose_arithmetic("fp32", "cpu", True, False) == "fp32"
    assert choose_arithmetic("strict", "cpu", True, False) == "fp32"
    assert choose_arithmetic("auto", "cpu", True, False) == "bf16"
    assert choose_arithmetic("auto", "cpu", False, False) == "fp32"
    # A GPU: TF32 where it has it (measured faster than bf16, docs/training-speed.md).
    assert choose_arithmetic("auto", "cuda", True, True) == "tf32"
    assert choose_arithmetic("auto", "cuda", False, False) == "fp32"
    assert choose_arithmetic("bf16", "cuda", True, True) == "bf16"
    assert choose_arithmetic("bf16", "cpu", False, False) == "bf16"  # emulated, but asked for
    with pytest.raises(ParamsError, match="train.precision is bf16"):
        choose_arithmetic("bf16", "cuda", False, False)
    with pytest.raises(ParamsError, match="train.precision is tf32, a GPU arithmetic"):
        choose_arithmetic("tf32", "cpu", True, False)
    with pytest.raises(ParamsError, match="train.precision is tf32 but this GPU has no TF32"):
        choose_arithmetic("tf32", "cuda", False, False)


def test_fp32_on_a_gpu_is_ieee_and_tf32_is_asked_for():
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision  # cuDNN's default: TF32 convolutions
    try:
        assert set_cuda_fp32("tf32") == "tf32" and (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
        for arithmetic in ("fp32", "bf16"):
            assert set_cuda_fp32(arithmetic) == "ieee"
            assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def test_native_bf16_from_cpu_flags(tmp_path: Path):
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu sse\n"
    )
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    old = tmp_path / "old"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert "avx512_bf16" in cpu_flags(x86) and "bf16" in cpu_flags(arm)
    assert cpu_has_native_bf16(cpu_flags(x86)) and cpu_has_native_bf16(cpu_flags(arm))
    assert not cpu_has_native_bf16(cpu_flags(old)) and not cpu_has_native_bf16(cpu_flags(tmp_path / "absent"))


def test_cuda_device_without_a_gpu_names_the_key():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(StageError, match="train.device is cuda"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
