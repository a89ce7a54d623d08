"""The training step: one optimizer update on one batch, run eagerly or replayed as a CUDA graph.

A step is batch assembly (the batch's rows of the device-resident split, masked), the
forward pass under the precision, the loss, the backward pass and the optimizer's update.
`make_step` decides from the device how it runs; the arithmetic is the same either way:

- eager (`EagerStep`): each operation launched from Python, as torch runs by default. The
  CPU runs this: no kernel launch costs there to save, and torch.compile did not pay for
  its compile time in training (benchmarks/RESULTS_train.md). So does CUDA under several
  processes (DistributedDataParallel's bucketing and the shards' varying batch sizes do not
  suit a fixed graph) and CUDA with the sgd optimizer (torch's SGD has no capturable mode).
- captured (`GraphStep`, CUDA, one process, adam): on CUDA a step is about a thousand small
  kernels (CBAM's pools and gates above all) and launching them from Python kept the GPU
  busy 16 % of the step. The whole step is recorded once as a CUDA graph and replayed: one
  launch a step. The same kernels run as in the eager step, so the numbers are the eager
  step's, with no compiler in between (torch.compile's bf16 CBAM graph gave NaN on CUDA;
  docs/training-speed.md).

How capture works here (torch.cuda.graphs' whole-network recipe):
- A graph reads and writes fixed addresses, so a step reads its batch from static buffers
  (the rows' indices and SpecAugment bands, copied in before each replay) and the optimizer
  keeps its learning rate in a device tensor (loop.make_optimizer) that the schedule
  updates in place.
- A graph has fixed shapes, so each batch size gets its own: train.batch_size, and the
  epoch's last, shorter batch (training size mod batch_size, the same every epoch). The
  short batch is trained as it is, never padded or dropped: padding would change its
  BatchNorm statistics, dropping it would change which cycles train.
- The first WARMUP_STEPS updates of a size run eagerly on a side stream: they are real
  updates of the training, and they make what the first calls make lazily (cuBLAS and
  cuDNN workspaces, the optimizer's moments) outside the graph. The next update of that
  size is captured, then replayed, as is every later one. So the short last batch runs
  eagerly in the first WARMUP_STEPS epochs and is replayed from then on.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from respiro.core.config import Capture
from respiro.core.errors import StageError
from respiro.training.batches import Batch, TrainBatches
from respiro.training.precision import autocast

LossFn = Callable[[Tensor, Tensor], Tensor]
StepKind = Literal["eager", "cuda graph"]
# Eager updates of each batch size before its capture; torch's recipe warms up with three.
WARMUP_STEPS = 3
# `capture(fn)` records `fn` (no argument, returns the loss) without running it and gives
# back (replay, the loss tensor each replay writes). cuda_graph_capture is the real one.
CaptureFn = Callable[[Callable[[], Tensor]], tuple[Callable[[], None], Tensor]]


class EagerStep:
    """One update per call, launched op by op: `step(batch)` -> the batch's mean loss
    (detached, on the device)."""

    kind: StepKind = "eager"
    # autocast's cache of weight casts, reused within a forward pass. Without it the default
    # bf16 run trained other weights (measured: ICBHI score 0.641 against the lock's 0.617),
    # likely as CBAM's shared MLP, used twice a pass, then has its two gradients cast back
    # apart; so the eager step keeps the cache and the bytes it always had.
    autocast_cache = True

    def __init__(
        self,
        model: nn.Module,
        batches: TrainBatches,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        precision: torch.dtype | None,
    ) -> None:
        self.model, self.batches, self.loss_fn = model, batches, loss_fn
        self.optimizer, self.precision = optimizer, precision

    def update(self, rows: Tensor, bands: Tensor, weight: float) -> Tensor:
        """Assemble the batch of `rows` with `bands`, and train on it."""
        x, y = self.batches.assemble(rows, bands)
        with autocast(x.device, self.precision, cache=self.autocast_cache):
            logits = self.model(x)
        loss = self.loss_fn(logits.float(), y)  # mean over this process's cycles
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        self.optimizer.step()
        return loss.detach()

    def __call__(self, batch: Batch) -> Tensor:
        return self.update(batch.rows, batch.bands, batch.weight)


@dataclass
class _Graph:
    rows: Tensor  # static inputs: the batch's indices and bands, copied in before a replay
    bands: Tensor
    replay: Callable[[], None]
    loss: Tensor  # static output, rewritten by each replay


class GraphStep(EagerStep):
    """The eager step recorded once per batch size and replayed (the module's docstring)."""

    kind: StepKind = "cuda graph"
    # A recording must not keep casts made in it (torch's CUDA graph notes); the warm-up
    # updates go without too, so all of a graph step's updates compute alike.
    autocast_cache = False

    def __init__(
        self,
        model: nn.Module,
        batches: TrainBatches,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        precision: torch.dtype | None,
        capture: CaptureFn | None = None,
    ) -> None:
        super().__init__(model, batches, loss_fn, optimizer, precision)
        if batches.shard.world != 1:
            raise ValueError("a captured step trains in one process (its batches' weights are all 1)")
        self.capture = capture or cuda_graph_capture
        self.graphs: dict[int, _Graph] = {}
        self.eager_updates: Counter[int] = Counter()  # per batch size, before its capture

    def __call__(self, batch: Batch) -> Tensor:
        size = len(batch.rows)
        graph = self.graphs.get(size)
        if graph is None:
            if self.eager_updates[size] < WARMUP_STEPS:
                self.eager_updates[size] += 1
                with side_stream(batch.rows.device):
                    return super().__call__(batch)
            graph = self.graphs[size] = self._record(batch)
        graph.rows.copy_(batch.rows)
        graph.bands.copy_(batch.bands)
        graph.replay()
        return graph.loss

    def _record(self, batch: Batch) -> _Graph:
        rows, bands = torch.empty_like(batch.rows), torch.empty_like(batch.bands)
        # Gradients made inside the recording live in the graph's memory.
        self.optimizer.zero_grad(set_to_none=True)
        try:
            replay, loss = self.capture(lambda: self.update(rows, bands, 1.0))
        except RuntimeError as err:
            raise StageError(
                f"recording the training step as a CUDA graph failed ({err}); set train.capture: off to train eagerly"
            ) from err
        return _Graph(rows, bands, replay, loss)


def cuda_graph_capture(fn: Callable[[], Tensor]) -> tuple[Callable[[], None], Tensor]:
    """Record `fn` into a CUDA graph (it does not run): (the graph's replay, fn's output)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph.replay, out


@contextlib.contextmanager
def side_stream(device: torch.device) -> Iterator[None]:
    """On CUDA, run the block on a new stream ordered after and before the current one's
    work (warm-up before a capture must not run on the stream that later records);
    elsewhere, nothing."""
    if device.type != "cuda":
        yield
        return
    current, side = torch.cuda.current_stream(device), torch.cuda.Stream(device)
    side.wait_stream(current)
    with torch.cuda.stream(side):
        yield
    current.wait_stream(side)


def captures(setting: Capture, device: torch.device, world: int, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the step is a CUDA graph: `train.capture` = `setting` auto, CUDA, one process,
    an optimizer made capturable (loop.make_optimizer does for adam on CUDA)."""
    return (
        setting == "auto"
        and device.type == "cuda"
        and world == 1
        and all(group.get("capturable", False) for group in optimizer.param_groups)
    )


def make_step(
    model: nn.Module,
    batches: TrainBatches,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    precision: torch.dtype | None,
    capture: Capture = "auto",
) -> EagerStep:
    """The fastest correct step for where `batches` live, or eager with `train.capture` =
    `capture` off (the module's docstring)."""
    if captures(capture, batches.device, batches.shard.world, optimizer):
        return GraphStep(model, batches, loss_fn, optimizer, precision)
    return EagerStep(model, batches, loss_fn, optimizer, precision)
