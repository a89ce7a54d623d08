"""The audio stages' work spread over every core, with results in input order.

A stage's work is a loop over independent items (recordings, batches of cycles). `ordered_map`
runs that loop on a pool of worker processes and yields the results in the order of the
items, so a stage writes exactly the bytes of a one-process run, whatever the number of
workers. At most a few items per worker are in flight at any time (not a list of all the
results, as `Pool.map` would build, nor an unbounded queue, as `Pool.imap` fills when the
writer is slower than the workers), so memory does not grow with the corpus.

Workers are forked where the platform allows (Linux): a fork inherits the stage's imports,
where a spawned worker would import them again. Each worker runs its numerical libraries on
one thread (torch, for resample.method torchaudio, and any OpenMP code): the pool already
uses every core, and the audio kernels give the same bytes on one thread as on several
(checked by tests/test_audio_parallel.py), so the worker count never changes an output.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Items in flight per worker: enough to keep every worker busy while the parent writes,
# few enough that memory stays at a handful of recordings or batches per worker.
IN_FLIGHT_PER_WORKER = 4


def worker_count(setting: int) -> int:
    """The processes for `audio.workers`: the setting itself, or for 0 every core this
    process may run on (its CPU affinity, which container limits and `taskset` narrow)."""
    if setting > 0:
        return setting
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _init_worker() -> None:
    # For libraries imported later, lazily (torchaudio's resampler): OpenMP reads it on loading.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch = sys.modules.get("torch")  # already imported by the stage; never imported here
    if torch is not None:
        torch.set_num_threads(1)


def ordered_map(fn: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """`fn(item)` for every item, computed on `workers` processes, yielded in item order.

    `fn` must be a module-level function (or a functools.partial of one) and items and
    results picklable. With `workers` <= 1 it runs in this process, without a pool, on
    one thread like a worker (1 means one core, and no idle threads spinning). An
    exception raised by `fn` is raised here, for its item, after the items before it; a
    worker that dies (killed, out of memory) raises BrokenProcessPool instead of leaving
    the stage waiting for ever. The pool is shut down when the caller stops iterating,
    for whatever reason, after the few items in flight.
    """
    if workers <= 1:
        _init_worker()
        yield from map(fn, items)
        return
    window = IN_FLIGHT_PER_WORKER * workers
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context(_start_method()), initializer=_init_worker
    )
    try:
        pending: deque[Future[Result]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
