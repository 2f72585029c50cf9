"""Running kernels on several cores, safely when several Python threads call at once.

The fused epoch launches two parallel regions per step, so it uses numba's
``prange``, whose launch is cheap. numba's ``workqueue`` threading layer (its
fallback where neither OpenMP nor TBB is available, common on macOS and in
slim containers) aborts the whole process when two threads enter parallel
code at the same time, so ``run_parallel`` lets one caller in at a time
unless the layer is thread-safe (``omp``, ``tbb``). Until a parallel kernel
has run, numba has not picked a layer, so the first call also takes the lock.

``forward`` and ``backward`` split the rows of a large product across a pool
of Python threads instead (``split_rows``): one launch per product, and the
kernels release the GIL, so they run in parallel with no threading layer
involved, and numba does not compile a parallel copy of each kernel.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

THREADSAFE_LAYERS = ("omp", "tbb")

_lock = threading.Lock()
_threadsafe = False


def run_parallel(kernel, *args):
    """``kernel(*args)``, one caller at a time unless the threading layer is thread-safe."""
    global _threadsafe
    if _threadsafe:
        return kernel(*args)
    with _lock:
        result = kernel(*args)
        with contextlib.suppress(ValueError):  # raised while no parallel region has run
            _threadsafe = numba.threading_layer() in THREADSAFE_LAYERS
    return result


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                       thread_name_prefix="fastmlp-numba")
    return _pool


def map_parallel(fn, items) -> list:
    """``[fn(item) for item in items]``: the calling thread runs the first, the pool the rest."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    futures = [_get_pool().submit(fn, item) for item in items[1:]]
    first = fn(items[0])
    return [first] + [future.result() for future in futures]


def split_rows(kernel, n, tasks, *args):
    """``kernel(*args, r0, r1)`` over ``tasks`` ranges of rows ``0:n``, in parallel.

    The calling thread runs the first range; the pool's threads run the rest.
    """
    if tasks <= 1:
        kernel(*args, 0, n)
        return
    size = -(-n // tasks)
    map_parallel(lambda rows: kernel(*args, *rows),
                 [(r0, min(r0 + size, n)) for r0 in range(0, n, size)])
