"""One notice while numba compiles, so that a first run does not look hung.

numba compiles a kernel on its first call on a machine and later loads it from
its on-disk cache (a fraction of a second). With an empty cache, a whole
``fastmlp train --epochs 1`` took 3.9 to 4.1 s on the project's 2-core Xeon,
about 3 s of it the first epoch, whose fused kernels compile then.
Whichever happens, if a kernel's first call in this process takes longer than
``DELAY`` seconds, the notice is logged, once per process.

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

from . import _cache

DELAY = 1.0
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


@contextlib.contextmanager
def compile_notice(kernel):
    """Around a call of ``kernel``: log the notice if its first call here runs long."""
    if _settled(kernel):
        yield
        return
    timer = threading.Timer(DELAY, _log_once)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
    _done.add(kernel)


def noticed_call(kernel, *args):
    """``kernel(*args)`` under ``compile_notice``, for calls too short to pay its
    context manager (about a microsecond) once the kernel has run here."""
    if _settled(kernel):
        return kernel(*args)
    with compile_notice(kernel):
        return kernel(*args)
