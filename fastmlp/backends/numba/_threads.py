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
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


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
