"""A second process that compiles what a first fused epoch calls while this one compiles it.

With numba's cache empty, a first epoch compiles its worker, then, as the worker
is first called, the kernels it calls at their addresses (``_kernels.Compiled``:
the products and their epilogue, the update, the softmax, the transposition,
the loss), and after the epoch the forward pass that scores it: one after the
other, as numba compiles under one lock per process, while a second core idles.
None of them needs another compiled first, only its signature. So when numba
starts to compile the worker, a second process compiles the others into
numba's on-disk cache (``HELPED``, in that order, then the forward pass),
telling this one as each is done, and this one loads each of them from the
cache once the helper has finished it. A first ``fastmlp train --epochs 1``
took 3.8-4.1 s this way against 5.9-6.1 s, alternating runs on the project's
2-core Xeon (3.7-3.9 s since a run compiles only the callees it calls: the
worker took 2.2 s here, the callees 1.8 s and the forward pass 0.3 s there).

The two share the work: each kernel is compiled by the process that claims it
first (``_claim``: a file created in a directory of claims, which only one
process can create). The helper takes them in order; this one, once its worker
is compiled and while it waits for a kernel the helper is compiling, takes the
last the helper has not begun (``_steal``), the forward pass first, instead of
idling: on the 2-core Zen 4 EPYC, where the worker compiled in 3 s and the
helper took 0.45 s to start and 3.6 s for its list, the helper alone finished
about a second after the worker.

It starts only where it can help: numba is compiling the worker (its cache
held none for the call), or, told ahead of the epoch (``start_early``, which
``fastmlp train`` calls before it reads its data), its cache holds no compiled
worker at all; numba has a cache to share, a second core is idle now
(``_core_free``), and the executable is Python (not a frozen application).
``FASTMLP_NUMBA_COMPILE_HELPER=0`` turns it off, ``1`` starts it whatever the
load (where numba caches and the executable is Python). It changes when kernels
compile, never what they compute; if it fails, this process compiles what it
lacks itself.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from numba.core import event

from . import _cache
from ._threads import num_threads

SETTING = "FASTMLP_NUMBA_COMPILE_HELPER"

# The epoch's callees (fields of _kernels.EpochCallees) that a helper compiles, in
# this order, before the forward pass: all of them (the worker takes them all at
# once), unless the epoch does not call them (_kernels.Uncalled).
HELPED = ("gemm_into", "epilogue_rows", "update_slice", "softmax_rows",
          "softmax_cross_entropy_rows", "output_loss_rows", "squared_weights_chunks",
          "transpose_rows", "rows_into_panels")
FORWARD = "forward_rows"

# How long this process waits for a kernel of the helper's before compiling it
# itself (the helper takes a few seconds; this bounds a helper that hangs).
WAIT_SECONDS = 120
# How long this process, ending, lets a helper still at work finish.
EXIT_SECONDS = 10

_changed = threading.Condition()  # guards everything below
_job: dict | None = None  # what a helper would compile (set by request)
_early = False  # a helper started by start_early, before the epoch's request
_started = False  # one helper per process at most
_process: subprocess.Popen | None = None  # the helper
_promised: dict = {}  # kernels the helper compiles, in its order: py_func name -> compile it
_finished: set[str] = set()  # ... of those, the ones it has compiled
_mine: set[str] = set()  # ... of those, the ones this process claimed and compiles
_claims: str | None = None  # the directory of claims (None: the helper compiles all)
_stealing = threading.Lock()  # one thread of this process steals at a time
_exited = False  # the helper has ended
_waiting = 0  # threads of this process in wait_for, waiting for the helper


def request(dtype, rule: int, codes, labels: bool, layers: int) -> None:
    """Say what a helper would compile if numba now compiles the worker: the epoch's
    callees for parameters of ``dtype``, update ``rule``, the network of ``codes``
    (activation, output) and the loss by ``labels`` (``_kernels.epoch_callees``), and
    the forward pass of ``layers`` layers."""
    global _job, _early
    job = {"dtype": np.dtype(dtype).name, "rule": int(rule),
           "codes": [int(code) for code in codes], "labels": bool(labels),
           "layers": int(layers)}
    with _changed:
        # a helper started early (start_early) for another epoch than this first one
        # compiles nothing it needs
        stale = _early and job != _job
        _early = False
        _job = job
        if stale:
            _promised.clear()
    if stale:
        _stop()


def start_early(dtype, rule: int, codes, labels: bool, layers: int, worker) -> bool:
    """Start a helper now, for the epoch of ``request``'s arguments, where numba's cache
    holds no compiled ``worker`` at all (the first run on a machine), rather than when
    numba begins to compile the worker: it then compiles while this process still reads
    its data. A first ``fastmlp train`` reads MNIST and scales it for about 0.5 s, and
    a helper takes about as long to start. Whether a helper started."""
    global _early
    cache = getattr(worker, "_cache", None)  # (numba's own where ours could not be made)
    if _started or not isinstance(cache, _cache._RecoveringCache) or cache.indexed():
        return False
    request(dtype, rule, codes, labels, layers)
    _start()
    with _changed:
        _early = _process is not None
        return _early


def wait_for(name: str) -> None:
    """Wait until the helper, if it is compiling kernel ``name`` (its Python function's
    name), has it in numba's cache, or has ended, compiling here meanwhile what it has
    not begun (``_steal``); if it has not begun ``name`` itself, claim it: the caller
    compiles it. Cheap when there is no helper."""
    global _waiting
    with _changed:
        if name not in _promised or name in _mine or name in _finished:
            return
    if _take(name):  # the helper has not begun it: the caller compiles it
        return
    while _steal():  # the helper has: compile here what it has not begun meanwhile
        with _changed:
            if name in _finished or _exited:
                return
    with _changed:
        _waiting += 1
        try:
            done = _changed.wait_for(lambda: name in _finished or _exited, WAIT_SECONDS)
        finally:
            _waiting -= 1
    if not done:
        _stop()


def _claim(directory: str | None, name: str) -> bool | None:
    """Claim kernel ``name`` in the ``directory`` of claims: True if this process is the
    first to claim it (and so compiles it), False if another did; None where no claim can
    be made (no directory, or none can be written there)."""
    if directory is None:
        return None
    try:
        os.close(os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    except OSError:
        return None
    return True


def _take(name: str) -> bool:
    """Whether this process claimed kernel ``name`` now (``_claim``), and so compiles it."""
    if not _claim(_claims, name):
        return False
    with _changed:
        _mine.add(name)
    return True


def _steal() -> bool:
    """Compile in this process the last of the helper's kernels that neither process has
    claimed yet, if any and if no other thread of this process is at it; whether one
    was compiled."""
    if not _stealing.acquire(blocking=False):
        return False
    try:
        for name, compile_it in reversed(_promised.items()):
            with _changed:
                taken = name in _mine or name in _finished
            if not taken and _take(name):
                compile_it()
                return True
        return False
    finally:
        _stealing.release()


def waiting() -> bool:
    """Whether a thread of this process is waiting for the helper's compiling (for
    ``_compile_notice``, to which that is compiling too)."""
    return _waiting > 0


# How long _core_free watches the cores before it decides.
IDLE_SECONDS = 0.05


def _idle_cores(seconds: float = IDLE_SECONDS) -> float | None:
    """How many of the cores this process may run on were idle over the next ``seconds``
    (Linux's ``/proc/stat``: idle and waiting ticks over all ticks, times the cores);
    None where that cannot be read."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def ticks():
        idle = total = cores = 0
        with open("/proc/stat") as stat:
            for line in stat:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                if allowed is not None and int(name[3:]) not in allowed:
                    continue
                values = [int(value) for value in fields[:8]]
                idle += values[3] + values[4]
                total += sum(values)
                cores += 1
        return idle, total, cores

    try:
        idle0, total0, _ = ticks()
        time.sleep(seconds)
        idle1, total1, cores = ticks()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0 or cores == 0:
        return None
    return (idle1 - idle0) / (total1 - total0) * cores


def _core_free() -> bool:
    """Whether another core is likely free for a helper: the kernels may use two threads
    or more (``_threads.num_threads``), and half a core of them is idle now, watched for
    ``IDLE_SECONDS`` (this process compiling on one). A helper on a busy core costs its
    start, about a second of processor time, and saves nothing: 5.6-5.9 s alone against
    6.8 s helped, load average 2-2.7 on the project's 2-core Xeon. The cores are watched,
    not the 1-minute load average, which stays high for a minute after the machine's
    work ended: after 90 s of both cores busy, load 1.9, the first ``fastmlp train
    --epochs 1`` took 7.5 s without the helper it then refused. Where the cores cannot be
    watched, the load average decides (at most ``threads - 0.5``)."""
    threads = num_threads()
    if threads <= 1:
        return False
    idle = _idle_cores()
    if idle is not None:
        return idle >= 0.5
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform: threads alone decide
        load = 0.0
    return load <= threads - 0.5


def _enabled() -> bool:
    setting = os.environ.get(SETTING, "")
    return (setting != "0" and not getattr(sys, "frozen", False) and bool(sys.executable)
            and not _cache.uncached() and (setting == "1" or _core_free()))


def _start() -> None:
    global _started, _process, _claims
    with _changed:
        if _started or _job is None or not _enabled():
            return
        _started = True
        try:
            _claims = tempfile.mkdtemp(prefix="fastmlp-compile-")
        except OSError:  # no claims: the helper compiles all it was given
            _claims = None
        job = dict(_job, claims=_claims,
                   path=[entry for entry in sys.path if isinstance(entry, str)])
        code = ("import json, sys; job = json.loads(sys.argv[1]); sys.path[:0] = job['path']; "
                "from fastmlp.backends.numba import _compile_helper; _compile_helper.main(job)")
        try:
            _process = subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(job)], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=dict(os.environ, **{SETTING: "0"}))
        except OSError:
            return  # this process compiles everything itself, as without a helper
        _promised.update(_kernels_of(job))
    threading.Thread(target=_follow, args=(_process,), name="fastmlp-compile-helper",
                     daemon=True).start()


def _kernels_of(job) -> dict:
    """``{name: compile it}`` of the kernels the helper compiles for ``job``, in its order:
    each one's Python function's name, and a function that compiles it in this process
    (or loads it from numba's cache)."""
    from . import _kernels

    dtype = np.dtype(job["dtype"])
    callees = _kernels.epoch_callees(dtype, job["rule"], *job["codes"], job["labels"])
    helped = [getattr(callees, field) for field in _helped(callees)]
    work = {compiled.kernel.py_func.__name__: lambda compiled=compiled: compiled.address
            for compiled in helped}
    types = _kernels.forward_argument_types(dtype, job["layers"])
    return {**work, FORWARD: lambda: _kernels.forward_rows.compile(types)}


def _helped(callees) -> list[str]:
    # the fields of HELPED that the epoch calls (the loss it does not is Uncalled)
    from . import _kernels

    return [field for field in HELPED
            if not isinstance(getattr(callees, field), _kernels.Uncalled)]


def _follow(process) -> None:
    # the helper prints each kernel's name as it has compiled it
    global _exited
    with process.stdout:
        for line in process.stdout:
            with _changed:
                _finished.add(line.strip())
                _changed.notify_all()
    process.wait()
    with _changed:
        _exited = True
        _changed.notify_all()


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


def _stop() -> None:
    # a helper that hangs compiles for nobody
    process = _process
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


@atexit.register
def _finish() -> None:
    # a helper still compiling as this process ends (the forward pass, say) finishes
    # for the next run, briefly, rather than leave a half-written file in the cache;
    # one started early for an epoch that never came (the data could not be read) is
    # stopped: waiting for it kept a first `fastmlp train` with a wrong --data-dir
    # 4.6 s from exiting after its one-line error
    process = _process
    if process is not None:
        if _early:
            _stop()
        try:
            process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            _stop()
    if _claims is not None:
        shutil.rmtree(_claims, ignore_errors=True)


def main(job) -> None:
    """The helper's work: compile ``job``'s kernels into numba's cache (see ``request``),
    those that the process it helps has not claimed, printing each one's name as it is
    done."""
    for name, compile_it in _kernels_of(job).items():
        if _claim(job.get("claims"), name) is not False:
            compile_it()
            print(name, flush=True)
