"""The training step: eager, and recorded once per batch size and replayed (training/step.py).

A CUDA graph cannot be recorded without a GPU, so on the CPU the recording is a stand-in
with the same contract (`record_without_running`: nothing runs while recording; a replay
runs what was recorded on the static buffers and writes one static output). Everything
else, which updates run eagerly, when each batch size is recorded, what the replays read,
the learning rate held in a tensor, is the real code. On a machine with CUDA the last tests
record real graphs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from respiro.core.errors import StageError
from respiro.data.dataset import CycleSet, cycle_loader
from respiro.model.loss import build_loss
from respiro.model.resnet import build_model
from respiro.training.batches import HeldCycles, Sampling, Shard, TrainBatches
from respiro.training.device import to_device
from respiro.training.loop import lr_factor, make_optimizer, set_epoch_lr, train_one_epoch
from respiro.training.prediction import validate
from respiro.training.step import WARMUP_STEPS, EagerStep, GraphStep, captures, make_step
from tests.conftest import train_params

ADAM = train_params(optimizer="adam", lr=1e-3, weight_decay=1e-4)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the real graph capture)")


def small_net() -> torch.nn.Module:
    """Convolution, BatchNorm (running statistics: state a replay must update) and a head."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 4),
    )


def random_batches(n: int, batch_size: int, device: torch.device, shard: Shard = Shard()) -> TrainBatches:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(n, 1, 10, 12, generator=generator)[shard.rank :: shard.world].to(device)
    y = torch.randint(0, 4, (n,), generator=generator)[shard.rank :: shard.world].to(device)
    return TrainBatches(x, y, n, Sampling(batch_size, time_mask=3, freq_mask=2, seed=5), shard)


class RecordWithoutRunning:
    """The stand-in for cuda_graph_capture: records `fn` without running it; a replay runs it
    and writes its loss into the one output tensor, as a graph's replay rewrites its output."""

    def __init__(self) -> None:
        self.recorded = 0

    def __call__(self, fn: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
        self.recorded += 1
        out = torch.empty((), dtype=torch.float32)

        def replay() -> None:
            out.copy_(fn())

        return replay, out


def train(step: EagerStep, batches: TrainBatches, epochs: int) -> list[float]:
    """The epochs' mean losses, under the cosine schedule as fit runs them."""
    losses = []
    for epoch in range(1, epochs + 1):
        set_epoch_lr(step.optimizer, lr_factor("cosine", epoch - 1, epochs), epoch)
        losses.append(train_one_epoch(step, batches, epoch))
    return losses


def tensor_lr_adamw(model: torch.nn.Module) -> torch.optim.AdamW:
    # The rate in a tensor, as make_optimizer gives a capturable AdamW on CUDA (not foreach:
    # torch allows a tensor rate there only when capturable, a CUDA mode).
    return torch.optim.AdamW(model.parameters(), lr=torch.tensor(0.01), weight_decay=1e-4, foreach=False)


def test_a_recorded_step_trains_exactly_as_the_eager_step():
    # 23 cycles in batches of 5: sizes 5 and 3 (the short last batch, once an epoch).
    epochs, data = WARMUP_STEPS + 3, random_batches(23, 5, torch.device("cpu"))
    runs = {}
    for kind in ("eager", "recorded"):
        torch.manual_seed(0)
        model = small_net()
        optimizer = tensor_lr_adamw(model)
        loss_fn = torch.nn.functional.cross_entropy
        recorder = RecordWithoutRunning()
        step = (
            EagerStep(model, data, loss_fn, optimizer, None)
            if kind == "eager"
            else GraphStep(model, data, loss_fn, optimizer, None, capture=recorder)
        )
        runs[kind] = (train(step, data, epochs), model.state_dict(), step, recorder)
    (eager_losses, eager_state, _, _), (losses, state, step, recorder) = runs["eager"], runs["recorded"]
    # The same updates, bit for bit: weights, BatchNorm statistics, epoch losses.
    assert losses == eager_losses
    assert all(torch.equal(eager_state[k], v) for k, v in state.items())
    # One recording per batch size, each after WARMUP_STEPS eager updates of that size: the
    # short batch was recorded in epoch WARMUP_STEPS + 1 and replayed after.
    assert recorder.recorded == 2 and set(step.graphs) == {5, 3}
    assert step.eager_updates == {5: WARMUP_STEPS, 3: WARMUP_STEPS}


def test_replays_read_each_batch_from_the_static_buffers():
    # A recording that kept the first recorded batch's rows would train on it again and again.
    data = random_batches(40, 4, torch.device("cpu"))
    torch.manual_seed(0)
    model = small_net()
    seen = []
    loss_fn = lambda logits, y: (seen.append(y.clone()), torch.nn.functional.cross_entropy(logits, y))[1]  # noqa: E731
    step = GraphStep(model, data, loss_fn, tensor_lr_adamw(model), None, capture=RecordWithoutRunning())
    train_one_epoch(step, data, 1)
    order = [y for b in data.epoch(1) for y in data.assemble(b.rows, b.bands)[1].tolist()]
    assert torch.cat(seen).tolist() == order


def test_a_failed_recording_names_train_capture():
    data = random_batches(12, 4, torch.device("cpu"))
    model = small_net()

    def fails(fn):
        raise RuntimeError("operation not permitted when stream is capturing")

    step = GraphStep(model, data, torch.nn.functional.cross_entropy, tensor_lr_adamw(model), None, capture=fails)
    with pytest.raises(StageError, match="set train.capture: off"):
        train_one_epoch(step, data, 1)  # three batches: the eager warm-up updates
        train_one_epoch(step, data, 2)  # its first batch is recorded


def test_the_schedule_writes_a_tensor_rate_in_place():
    optimizer = tensor_lr_adamw(small_net())
    rate = optimizer.param_groups[0]["lr"]
    assert set_epoch_lr(optimizer, 0.5, epoch=1) == pytest.approx(0.005)
    assert optimizer.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(0.005)
    set_epoch_lr(optimizer, 0.25, epoch=2)  # from the peak, not from the last rate
    assert rate.item() == pytest.approx(0.0025) and optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.01)


def test_which_step_runs_where():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    capturable = torch.optim.AdamW(small_net().parameters(), lr=torch.tensor(0.01), capturable=True)
    plain = torch.optim.SGD(small_net().parameters(), lr=0.01)
    assert captures("auto", cuda, 1, capturable)
    assert not captures("off", cuda, 1, capturable)  # train.capture: off
    assert not captures("auto", cuda, 2, capturable)  # DistributedDataParallel: eager
    assert not captures("auto", cuda, 1, plain)  # sgd: no capturable mode in torch
    assert not captures("auto", cpu, 1, capturable)
    data = random_batches(8, 4, cpu)
    model = small_net()
    optimizer = make_optimizer(model, ADAM)  # on the CPU: foreach AdamW, float rate
    assert isinstance(optimizer.param_groups[0]["lr"], float) and not optimizer.param_groups[0]["capturable"]
    assert make_step(model, data, torch.nn.functional.cross_entropy, optimizer, None).kind == "eager"
    with pytest.raises(ValueError, match="one process"):
        GraphStep(model, random_batches(8, 4, cpu, Shard(0, 2)), torch.nn.functional.cross_entropy, optimizer, None)


def test_validation_on_held_cycles_equals_the_loader():
    rng = np.random.default_rng(0)
    specs, labels = rng.normal(size=(30, 10, 12)).astype(np.float32), rng.integers(0, 4, size=30)
    mean, std = specs.mean((0, 2)).astype(np.float32), specs.std((0, 2)).astype(np.float32)
    index = np.arange(3, 30, 2)
    torch.manual_seed(0)
    model = small_net().eval()
    loss_fn = torch.nn.functional.cross_entropy
    cycles = CycleSet(specs, labels, index, mean, std)
    held = HeldCycles.load(cycles, torch.device("cpu"), 4)
    assert len(held) == 4 and len(list(held)) == 4
    by_loader = validate(model, cycle_loader(cycles, 4), loss_fn, torch.device("cpu"))
    on_device = validate(model, held, loss_fn, torch.device("cpu"))
    assert on_device[0] == by_loader[0]
    assert np.array_equal(on_device[1], by_loader[1]) and np.array_equal(on_device[2], by_loader[2])


@CUDA
@pytest.mark.parametrize("arithmetic", ["fp32", "bf16"])
def test_a_cuda_graph_step_trains_as_the_eager_step_on_a_gpu(arithmetic):
    """The real recording: ResNet-18 + CBAM, focal loss, AdamW made by make_optimizer
    (fused, capturable, tensor rate) on CUDA, batches of 8 with a short last batch of 4.
    The replays run the eager step's kernels (deterministic cuDNN; autocast's cache off in
    both, EagerStep.autocast_cache), so the losses agree to
    float32 rounding; 1e-4 leaves room for an atomics-based kernel's order, far below what a
    wrong replay gives (another batch or a stale rate: visibly different losses)."""
    cuda = torch.device("cuda")
    precision = torch.bfloat16 if arithmetic == "bf16" else None
    data = random_batches(WARMUP_STEPS * 8 + 20, 8, cuda)
    losses = {}
    for kind in ("eager", "graph"):
        torch.manual_seed(0)
        model = to_device(build_model(18, True), cuda)
        optimizer = make_optimizer(model, ADAM, device=cuda)
        loss_fn = build_loss("focal", 1.0, None, 4).to(cuda)
        step = (EagerStep if kind == "eager" else GraphStep)(model, data, loss_fn, optimizer, precision)
        step.autocast_cache = False  # as a graph step computes: like against like
        losses[kind] = train(step, data, WARMUP_STEPS + 2)
    assert all(np.isfinite(losses["graph"]))
    assert losses["graph"] == pytest.approx(losses["eager"], rel=1e-4)
