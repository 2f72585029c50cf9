"""numba's one-time preparation to load or compile anything, started on a thread early.

The first compiled function a process loads from numba's cache, or compiles,
makes numba import and install its typing and lowering registries (its BLAS
check imports ``scipy.linalg`` where SciPy is installed): about 0.45 s of
Python imports on a 2-core Xeon, before a kernel's own machine code loads.
``start`` runs that preparation on a daemon thread, under numba's compiler
lock, while the caller does work that mostly leaves the GIL free (reading and
checking a data set); the first kernel call then waits for the lock instead
of doing the work itself. It changes what runs when, never what is computed.
"""

from __future__ import annotations

import threading

_started = threading.Event()
_lock = threading.Lock()


def _prepare():
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.registry import cpu_target

        with global_compiler_lock:
            cpu_target.typing_context.refresh()
            cpu_target.target_context.refresh()
    except Exception:  # noqa: BLE001 - the first kernel call does it, and reports any error
        pass


def start() -> threading.Thread | None:
    """Start the preparation on a daemon thread, once per process; that thread or None."""
    with _lock:  # two callers at once start one thread
        if _started.is_set():
            return None
        _started.set()
    thread = threading.Thread(target=_prepare, name="fastmlp-numba-warm", daemon=True)
    thread.start()
    return thread
