"""Training and inference of the classifier.

device.py       where training runs, seeding
precision.py    float32 or bfloat16 autocast (train.precision), native-support detection
batches.py      the training split on the device: seeded batches, SpecAugment, DDP shards
loop.py         one epoch of updates, inference (`predict`), optimizer and schedule
distributed.py  DistributedDataParallel under torchrun; process 0 writes
"""
