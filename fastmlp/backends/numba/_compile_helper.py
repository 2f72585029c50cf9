"""A second process that compiles what a first fused epoch calls while this one compiles it.

With numba's cache empty, a first epoch compiles its worker, then, as the worker
is first called, the kernels it calls at their addresses (``_kernels.Compiled``:
the products, the update, the loss, the softmax, the transposition), and after
the epoch the forward pass that scores it: one after the other, as numba
compiles under one lock per process, while a second core idles. None of them
needs another compiled first, only its signature. So when numba starts to
compile the worker, a second process compiles the others into numba's on-disk
cache, and this one loads them from there when it needs them (it waits for
the second process first). A first ``fastmlp train --epochs 1`` took 4.2-4.4 s
this way against 5.4-5.9 s, on the project's 2-core Xeon.

It starts only where it can help: numba is compiling the worker (its cache
held none for the call), numba has a cache to share, numba may use two threads
or more, and the executable is Python (not a frozen application).
``FASTMLP_NUMBA_COMPILE_HELPER=0`` turns it off. It changes when kernels
compile, never what they compute; if it fails, this process compiles what it
lacks itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
from numba import get_num_threads
from numba.core import event

from . import _cache

SETTING = "FASTMLP_NUMBA_COMPILE_HELPER"

# How long this process waits for the helper before compiling what it lacks itself
# (the helper takes a few seconds; this bounds a helper that hangs).
WAIT_SECONDS = 120

_lock = threading.Lock()
_job: dict | None = None  # what the next helper compiles (set by request)
_process: subprocess.Popen | None = None  # the helper, while it runs
_started = False  # one helper per process at most


def request(dtype, rule: int, layers: int) -> None:
    """Say what a helper would compile if numba now compiles the worker: the epoch's
    callees for parameters of ``dtype`` and update ``rule``, and the forward pass of
    ``layers`` layers."""
    global _job
    _job = {"dtype": np.dtype(dtype).name, "rule": int(rule), "layers": int(layers)}


def wait() -> None:
    """Wait for a running helper to finish (cheap when none runs): what it compiles is
    then loaded from numba's cache instead of compiled again here."""
    global _process
    process = _process
    if process is None:
        return
    try:
        process.wait(WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with _lock:
        if _process is process:
            _process = None


def _enabled() -> bool:
    return (os.environ.get(SETTING, "1") != "0" and not getattr(sys, "frozen", False)
            and bool(sys.executable) and not _cache.uncached() and get_num_threads() > 1)


def _start() -> None:
    global _process, _started
    with _lock:
        if _started or _job is None or not _enabled():
            return
        _started = True
        job = dict(_job, path=[entry for entry in sys.path if isinstance(entry, str)])
        code = ("import json, sys; job = json.loads(sys.argv[1]); sys.path[:0] = job['path']; "
                "from fastmlp.backends.numba import _compile_helper; _compile_helper.main(job)")
        # (if it cannot start, this process compiles everything itself, as without one)
        with contextlib.suppress(OSError):
            _process = subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(job)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=dict(os.environ, **{SETTING: "0"}))


class _WorkerCompiles(event.Listener):
    """Starts the helper as numba starts to compile the epoch's worker."""

    def __init__(self, worker):
        self.worker = worker

    def on_start(self, event_):
        if event_.data["dispatcher"] is self.worker:
            _start()

    def on_end(self, event_):
        pass


def watch(worker) -> None:
    """Start a helper when numba starts to compile ``worker`` (the epoch's kernel)."""
    event.register("numba:compile", _WorkerCompiles(worker))


@atexit.register
def _stop() -> None:
    # a helper still running when this process ends has nobody to compile for
    process = _process
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def main(job) -> None:
    """The helper's work: compile ``job``'s kernels into numba's cache (see ``request``)."""
    from . import _kernels

    dtype = np.dtype(job["dtype"])
    for compiled in {*_kernels.epoch_callees(dtype, job["rule"]),
                     *_kernels.forward_callees(dtype)}:
        compiled.address  # noqa: B018 - compiles it, or finds it cached
    _kernels.forward_rows.compile(_kernels.forward_argument_types(dtype, job["layers"]))
