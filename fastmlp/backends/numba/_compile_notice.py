"""One line on stderr while numba compiles, so that a first run does not look hung.

numba compiles a kernel on its first call on a machine (about 15 s for the
fused epoch) and later loads it from its on-disk cache (a fraction of a
second). Whichever happens, if a kernel's first call in this process takes
longer than ``DELAY`` seconds, the line is printed, once per process.
"""

from __future__ import annotations

import contextlib
import sys
import threading

DELAY = 1.0
MESSAGE = ("fastmlp: compiling the numba kernels for this machine (first run only; later "
           "runs load them from numba's cache) ...")

_printed = threading.Event()
_done = set()  # kernels whose first call here has returned


def _print_once():
    if not _printed.is_set():
        _printed.set()
        print(MESSAGE, file=sys.stderr, flush=True)


def _settled(kernel) -> bool:
    """Whether a call of ``kernel`` needs no watching: it has run here, or the notice is out.

    A set lookup: asking numba for ``kernel.signatures`` costs several
    microseconds, as much as a small product.
    """
    return kernel in _done or _printed.is_set()


@contextlib.contextmanager
def compile_notice(kernel):
    """Around a call of ``kernel``: print the notice if its first call here runs long."""
    if _settled(kernel):
        yield
        return
    timer = threading.Timer(DELAY, _print_once)
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
