"""One notice while numba compiles, so that a first run does not look hung.

numba compiles a kernel on its first call on a machine and later loads it from
its on-disk cache (a fraction of a second). With an empty cache, a whole
``fastmlp train --epochs 1`` took 3.9 to 4.1 s on the project's 2-core Xeon,
about 3 s of it the first epoch, whose fused kernels compile then.
Whichever happens, if a kernel's first call in this process is still running
after ``DELAY`` seconds and numba is compiling then or later in the call (a
thread holds numba's compiler lock, or waits for the compile helper's kernels),
the notice is logged, once per process. A first call that
is long only because of its work (an epoch of a wide network, a forward pass of
a large data set, with the kernels loaded from the cache) logs nothing: it used
to say "compiling" on every run.

It goes to the ``logging`` logger of this module (``fastmlp.backends.numba.
_compile_notice``, a child of ``"fastmlp"``) at level WARNING, the level the
logging HOWTO gives an event the caller can do nothing about but should still
see. In a program that configures no logging, Python's last-resort handler
writes WARNING and above to stderr, so a library user sees the notice, as the
bare message; fastmlp attaches no handler of its own (a ``NullHandler`` would
hide it). ``logging.getLogger("fastmlp").setLevel(logging.ERROR)`` silences
it, and handlers route it as any other record; the command line shows it as
``fastmlp: compiling ...`` on stderr (``fastmlp.cli``).
"""

from __future__ import annotations

import contextlib
import logging
import threading

from numba.core.compiler_lock import global_compiler_lock

from . import _cache, _compile_helper

DELAY = 1.0
POLL = 0.1  # seconds between two looks at numba's compiler lock after DELAY
MESSAGE = ("compiling the numba kernels for this machine (first run only; later runs load "
           "them from numba's cache) ...")
# ... where numba has no cache (``_cache`` told why, once): every run compiles
UNCACHED_MESSAGE = "compiling the numba kernels (uncached: every run compiles them) ..."

logger = logging.getLogger(__name__)

_printed = threading.Event()
_done = set()  # kernels whose first call here has returned


def _log_once():
    if not _printed.is_set():
        _printed.set()
        logger.warning(UNCACHED_MESSAGE if _cache.uncached() else MESSAGE)


def _settled(kernel) -> bool:
    """Whether a call of ``kernel`` needs no watching: it has run here, or the notice is out.

    A set lookup: asking numba for ``kernel.signatures`` costs several
    microseconds, as much as a small product.
    """
    return kernel in _done or _printed.is_set()


def compiling() -> bool:
    """Whether a thread of this process holds numba's compiler lock (numba compiles,
    or loads from its cache in milliseconds, under it) or waits for the compile
    helper's kernels. True where numba keeps the lock elsewhere than this looks, so
    that the notice errs on the side of showing."""
    if _compile_helper.waiting():
        return True
    lock = getattr(global_compiler_lock, "_lock", None)
    if lock is None or not hasattr(lock, "acquire"):
        return True
    if global_compiler_lock.is_locked():  # by this thread (the lock is re-entrant)
        return True
    if not lock.acquire(blocking=False):  # by another
        return True
    lock.release()
    return False


def _watch(returned: threading.Event):
    # from DELAY after the call began until it returns, every POLL seconds: the
    # notice as soon as numba is found compiling
    if returned.wait(DELAY):
        return
    while not returned.is_set():
        if compiling():
            _log_once()
            return
        returned.wait(POLL)


@contextlib.contextmanager
def compile_notice(kernel):
    """Around a call of ``kernel``: log the notice if its first call here runs long
    while numba compiles."""
    if _settled(kernel):
        yield
        return
    returned = threading.Event()
    watcher = threading.Thread(target=_watch, args=(returned,), daemon=True,
                               name="fastmlp-compile-notice")
    watcher.start()
    try:
        yield
    finally:
        returned.set()
    _done.add(kernel)


def noticed_call(kernel, *args):
    """``kernel(*args)`` under ``compile_notice``, for calls too short to pay its
    context manager (about a microsecond) once the kernel has run here."""
    if _settled(kernel):
        return kernel(*args)
    with compile_notice(kernel):
        return kernel(*args)
