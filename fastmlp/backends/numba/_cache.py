"""numba's on-disk cache of the compiled kernels, made safe to lack or to lose.

Every compiled function of this backend is made by `cached_njit`, numba's
``njit(cache=True)`` with three differences:

- **Nowhere to cache** (an install it cannot write, and no home directory for
  numba's user-wide cache: a service account, a container user): numba raises
  ``RuntimeError: cannot cache function ...: no locator available`` at import.
  Here the kernels run uncached instead, and one notice says that every run
  compiles them again and how to set ``NUMBA_CACHE_DIR``.
- **A damaged entry** (a file truncated by a crash or a full disk, or
  overwritten): numba's loader raises ``EOFError`` or ``UnpicklingError`` on
  every later call. Here the function's index is dropped, the kernel is
  compiled again (and cached anew), and one notice says so.
- **A cache that cannot be written** (a full disk, permissions changed since
  the import): the compiled kernel is used all the same, with one notice.

The notices go to the ``fastmlp`` logger at WARNING, so that with no logging
configured Python prints them on stderr, and a program can silence or route
them. Each kind is told once per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading

from numba import njit
from numba.core.caching import FunctionCache

logger = logging.getLogger(__name__)

# Where numba can be told to keep its cache when it finds nowhere by itself.
SETTING = "NUMBA_CACHE_DIR"

_told: set[str] = set()
_told_lock = threading.Lock()


def _tell_once(kind: str, message: str, *args) -> None:
    with _told_lock:
        first = kind not in _told
        _told.add(kind)
    logger.log(logging.WARNING if first else logging.DEBUG, message, *args)


class _RecoveringCache(FunctionCache):
    """numba's cache of one function, which drops a damaged entry instead of failing."""

    def _load_overload(self, sig, target_context):
        try:
            return super()._load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - a damaged file can fail any way
            self._drop()
            _tell_once(
                "damaged",
                "numba's cache in %s held a damaged entry (%s: %s); dropped it, compiling "
                "the kernels again", self._cache_path, type(error).__name__, error)
            return None

    def _save_overload(self, sig, data):
        try:
            super()._save_overload(sig, data)
        except (OSError, EOFError, pickle.UnpicklingError) as error:
            _tell_once(
                "unsaved",
                "cannot write numba's cache in %s (%s); the kernels work, but the next run "
                "compiles them again", self._cache_path, error)

    def _drop(self) -> None:
        """Remove this function's index: its entries are gone, the next save starts anew."""
        with contextlib.suppress(OSError):
            os.unlink(self._cache_file._index_path)

    def indexed(self) -> bool:
        """Whether this function has an index in the cache: some version of it was saved."""
        return os.path.exists(self._cache_file._index_path)


def _enable_cache(kernel) -> None:
    try:
        kernel._cache = _RecoveringCache(kernel.py_func)
    except RuntimeError as error:  # numba: "cannot cache function ...: no locator available"
        source = os.path.dirname(kernel.py_func.__code__.co_filename)
        where = (f"it can write neither beside {source} nor under the home directory"
                 if "no locator" in str(error) else str(error))
        _tell_once(
            "uncached",
            "numba cannot cache the compiled kernels (%s): every run compiles them again "
            "(about 5 s); set %s to a writable directory to keep them", where, SETTING)


def uncached() -> bool:
    """Whether numba found nowhere to cache a kernel in this process (it was told)."""
    return "uncached" in _told


def cached_njit(**options):
    """``numba.njit(cache=True, **options)`` that runs uncached, or recompiles, rather than
    fail when numba's cache is missing or damaged (see the module's docstring)."""
    if "cache" in options:
        raise TypeError("cached_njit always caches: pass no 'cache' option")

    def decorate(function):
        kernel = njit(**options)(function)
        _enable_cache(kernel)
        return kernel

    return decorate
