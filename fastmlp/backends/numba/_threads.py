"""Calling parallel kernels from several Python threads at once.

numba's ``workqueue`` threading layer (its fallback where neither OpenMP nor
TBB is available, common on macOS and in slim containers) aborts the whole
process when two threads enter parallel code at the same time. The ``omp``
and ``tbb`` layers are thread-safe. Until a parallel kernel has run, numba
has not picked a layer, so the first call also takes the lock.
"""

from __future__ import annotations

import contextlib
import threading

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
