"""Several processes (GPUs or machines) training one model with DistributedDataParallel.

The train stage runs distributed when `torchrun` launched it (it sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous variables) with more than one process, or when
`train.processes` > 1 makes the stage launch torchrun itself on this machine. Backends:
NCCL between GPUs (one GPU per process, cuda:LOCAL_RANK), gloo on CPU. Every process
trains on its shard of the training split (src/respiro/training/batches.py); process 0 validates,
keeps the best checkpoint and writes every output, the others write nothing.

BatchNorm: on CUDA the model's BatchNorm layers become SyncBatchNorm, so statistics are
taken over the global batch as in a single-process run; torch's SyncBatchNorm has no CPU
kernel, so on CPU (gloo) each process normalizes with its own part of the batch. Running
statistics are process 0's (DDP broadcasts its buffers at every forward pass).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import cast

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from respiro.training.batches import Shard

# Set by torchrun (torch.distributed.run) for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return all(name in environ for name in TORCHRUN_VARIABLES)


def world_from_env(environ: Mapping[str, str] | None = None) -> tuple[Shard, int]:
    """(this process's shard, its local rank) from torchrun's variables; (Shard(), 0) alone."""
    environ = os.environ if environ is None else environ
    if not launched_by_torchrun(environ):
        return Shard(), 0
    return Shard(int(environ["RANK"]), int(environ["WORLD_SIZE"])), int(environ["LOCAL_RANK"])


def start(device: torch.device, environ: dict[str, str] | None = None) -> tuple[Shard, torch.device]:
    """Join the process group when launched by torchrun with several processes.

    Returns this process's shard and its device: on CUDA each process gets cuda:LOCAL_RANK.
    """
    shard, local_rank = world_from_env(environ)
    if shard.world == 1:
        return shard, device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return shard, device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` for distributed training (DDP; SyncBatchNorm on CUDA), or as it is alone."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside DDP and/or torch.compile wrappers (for inference and saving)."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = cast(nn.Module, model.module)
        elif hasattr(model, "_orig_mod"):
            model = cast(nn.Module, model._orig_mod)
        else:
            return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the weights with plain module keys (no `module.` / `_orig_mod.`)."""
    return {key: value.detach().cpu().clone() for key, value in unwrap(model).state_dict().items()}


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`tensor` reduced over all processes (sum or min), in place; unchanged when alone."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
    return tensor


def torchrun_command(processes: int, module: str) -> list[str]:
    """The command that runs `python -m module` in `processes` processes on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        module,
    ]


def relaunch(processes: int, module: str) -> int:
    """Run `module` again under torchrun with `processes` processes; its exit status."""
    return subprocess.run(torchrun_command(processes, module)).returncode
