"""Write files so that a crash, an error or Ctrl-C never leaves a partial one behind.

`atomic_write` writes beside the destination and renames over it; its errors
name the destination, as ``open(path, "wb")`` would, never the temporary file.
`unwritable` says, before any long work, why a file could not be written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO

_TRIES = 100  # names taken by other files before giving up, as tempfile's TMP_MAX bounds it


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new temporary file in the directory of ``path``: ``(fd, name)``.

    Created with mode 0o666, so the kernel applies the process's umask and the
    file gets the permissions a plain ``open`` would give ``path``. (``mkstemp``
    creates 0o600, and reading the umask to widen that means setting it, for a
    moment, for every thread of the process.)
    """
    directory = os.path.dirname(os.path.abspath(path))
    # a long name is cut so that the temporary one stays within the file system's limit
    prefix = os.path.join(directory, f".{os.path.basename(path)[:100]}.")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        name = f"{prefix}{secrets.token_hex(4)}.part"
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)


def _naming(error: OSError, path: str) -> OSError:
    """``error`` told of ``path``: the same errno (so the same subclass), ``path`` as filename."""
    return OSError(error.errno, error.strerror or str(error), path)


@contextlib.contextmanager
def atomic_write(path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; when the block succeeds, rename it over ``path``.

    On any error, and on ``KeyboardInterrupt``, the temporary file is removed
    and ``path`` keeps its old content (or stays absent). The new file gets
    the permissions a plain ``open`` would give it.

    Raises
    ------
    OSError
        Of the subclass the failure's errno gives (``FileNotFoundError`` for a
        missing directory, ``PermissionError``, ...), naming ``path`` as its
        ``filename``: the temporary file is an implementation detail. An
        ``OSError`` the block raises about another file passes unchanged.
    """
    path = os.fspath(path)
    try:
        fd, tmp = _temporary_beside(path)
    except OSError as error:
        raise _naming(error, path) from None
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno is not None \
                and error.filename in (None, tmp):
            raise _naming(error, path) from None
        raise


def unwritable(path) -> str | None:
    """Why `atomic_write` could not write ``path`` now, in words; None if it could.

    The directory must exist and take a new file (tried, with a temporary
    file removed at once: the one check that knows read-only file systems,
    ACLs and root's rights alike), and ``path`` must not be a directory.

    Examples
    --------
    >>> unwritable("/nonexistent/dir/model.npz")
    'no directory /nonexistent/dir'
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or os.curdir
    if not os.path.isdir(directory):
        return f"{directory} is not a directory" if os.path.exists(directory) else \
            f"no directory {directory}"
    if os.path.isdir(path):
        return f"{path} is a directory"
    try:
        fd, probe = _temporary_beside(path)
    except OSError as error:
        return f"cannot create a file in {directory}: {error.strerror or error}"
    os.close(fd)
    os.unlink(probe)
    return None
