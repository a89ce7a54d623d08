"""Training and inference of the classifier.

fit.py          the epochs: schedule, validation, the best epoch on validation only
loop.py         one epoch of updates, inference (`predict`, `validate`), optimizer and schedule
checkpoint.py   the checkpoint format: written by the train stage, read by everything else
device.py       where training runs, seeding
precision.py    float32 or bfloat16 autocast (train.precision), native-support detection
batches.py      the training split on the device: seeded batches, SpecAugment, DDP shards
distributed.py  DistributedDataParallel under torchrun; process 0 writes
"""
