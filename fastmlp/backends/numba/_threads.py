"""Running kernels on several cores, safely when several Python threads call at once.

No kernel uses numba's threading layer (``prange``): compiling a parallel
region compiles it and its callees again, and the ``workqueue`` layer aborts
the process when two threads enter parallel code at once. The kernels release
the GIL instead, and Python threads run them side by side.

The fused epoch meets at a barrier twice per step, so it runs on workers of
its own (``run_workers``): one thread each, started per call, each running
the whole epoch's compiled loop. ``forward`` and ``backward`` split the rows
of a large product across a pool of threads (``split_rows``): one hand-over
per product.

How many threads either uses is :func:`num_threads`, the one place that
decides it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from numba import get_num_threads

from ... import backends
from ...machine import usable_cpus


def thread_limits() -> dict[str, int]:
    """Each bound on the threads of fastmlp's kernels, by where it comes from.

    ``"numba"``: numba's thread count in the calling thread
    (``numba.get_num_threads()``: ``NUMBA_NUM_THREADS``, or
    ``numba.set_num_threads``); ``"affinity"``: the CPUs the process may run
    on now (``machine.usable_cpus``); ``"OMP_NUM_THREADS"``: that variable as
    it was when fastmlp was imported (``backends.OMP_NUM_THREADS_AT_IMPORT``),
    only when it held a positive integer (the first of a list such as
    ``"4,2"``, OpenMP's syntax for nested levels). :func:`num_threads` is
    the smallest.
    """
    limits = {"numba": get_num_threads(), "affinity": usable_cpus()}
    variable = _positive_int(backends.OMP_NUM_THREADS_AT_IMPORT or "")
    if variable is not None:
        limits["OMP_NUM_THREADS"] = variable
    return limits


def num_threads() -> int:
    """How many threads fastmlp's numba kernels use when called from this thread now.

    The smallest of

    - numba's thread count in the calling thread: ``NUMBA_NUM_THREADS`` (by
      default the CPUs the process could run on when numba was imported), or
      what ``numba.set_num_threads(n)`` set in this thread, the way to ask
      for fewer;
    - the CPUs in the process's affinity mask at the call
      (``os.sched_getaffinity``), which ``taskset``, cgroup CPU sets, batch
      schedulers and ``os.sched_setaffinity`` restrict, also after numba was
      imported;
    - ``OMP_NUM_THREADS``, as it was when fastmlp was imported, when it holds
      a positive integer: process pools set it in their workers to say how
      many threads native code there may use (joblib's loky, to the CPUs over
      the jobs, with ``NUMBA_NUM_THREADS``; dask's nanny, to 1), and OpenMP,
      BLAS, PyTorch and numexpr follow it. Read once,
      as they read it when they load: a dask ``LocalCluster`` sets it to 1 in
      the process that starts its workers as well, whose own kernels keep
      their threads.

    The fused epoch starts this many workers (no more than the epoch's
    samples); a forward or backward pass splits a large product into this
    many row ranges. ``threadpoolctl.threadpool_limits`` does not reach these
    threads: it controls the BLAS and OpenMP libraries it finds loaded, and
    the kernels are numba's compiled code in no library of their own.

    Only speed depends on it: every element of every product is one chain of
    fused multiply-adds in a fixed order whichever thread computes it, so
    results are the same bits at any thread count.

    Examples
    --------
    >>> from fastmlp.backends.numba import num_threads, thread_limits
    >>> num_threads() == min(thread_limits().values()) >= 1
    True
    """
    return min(thread_limits().values())


def _positive_int(text: str) -> int | None:
    """The first entry of ``text`` ("4" or "4,2") as a positive int; None for anything else."""
    first = text.split(",", 1)[0].strip()
    if not first.isdigit() or int(first) < 1:
        return None
    return int(first)


def run_workers(kernel, workers, sync, abort_slot, *args):
    """``kernel(worker, workers, sync, *args)`` for each worker, each on a new thread.

    Waits for all of them. If one raises, or the waiting thread is interrupted
    (Ctrl-C), ``sync[abort_slot]`` is set: the others leave at their next
    barrier, and the error is raised here once they all have.
    """
    errors = []
    left = [workers]
    lock = threading.Lock()
    done = threading.Event()

    def work(worker):
        try:
            kernel(worker, workers, sync, *args)
        except BaseException as error:
            errors.append(error)
            sync[abort_slot] = 1
        finally:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    threads = [threading.Thread(target=work, args=(w,), name=f"fastmlp-epoch-{w}", daemon=True)
               for w in range(workers)]
    for thread in threads:
        thread.start()
    try:
        while not done.wait(0.1):  # a timed wait: Ctrl-C reaches this thread on every OS
            pass
    except BaseException:
        sync[abort_slot] = 1
        done.wait()
        raise
    if errors:
        raise errors[0]


def run_in_caller(kernel, workers, sync, abort_slot, *args):
    """``kernel(0, 1, sync, *args)``: :func:`run_workers` for one worker, in the calling thread.

    For work too short to pay for a thread: starting and joining one cost 0.28
    ms, half of a fused epoch on scikit-learn's iris. Ctrl-C reaches the caller
    once the kernel returns.
    """
    if workers != 1:
        raise ValueError(f"run_in_caller runs one worker, not {workers}")
    kernel(0, 1, sync, *args)


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
