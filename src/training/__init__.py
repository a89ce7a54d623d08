"""Training and inference of the classifier.

device.py       where training runs, seeding
precision.py    float32 or bfloat16 autocast (train.precision), native-support detection
batches.py      the training split on the device: seeded batches, SpecAugment, DDP shards
loop.py         one epoch of updates, inference (`predict`), optimizer and schedule
distributed.py  DistributedDataParallel under torchrun; process 0 writes
"""

from src.training.batches import Shard, TrainBatches, apply_mask_bands, draw_mask_bands, spec_augment
from src.training.device import resolve_device, seed_everything
from src.training.distributed import is_main_process, plain_state_dict, unwrap
from src.training.loop import NonFiniteLossError, lr_factor, make_optimizer, predict, train_one_epoch
from src.training.precision import autocast, choose_precision, precision_name, resolve_precision

__all__ = [
    "NonFiniteLossError",
    "Shard",
    "TrainBatches",
    "apply_mask_bands",
    "autocast",
    "choose_precision",
    "draw_mask_bands",
    "is_main_process",
    "lr_factor",
    "make_optimizer",
    "plain_state_dict",
    "precision_name",
    "predict",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
    "spec_augment",
    "train_one_epoch",
    "unwrap",
]
