"""Write files so that a crash, an error or Ctrl-C never leaves a partial one behind.

`atomic_write` writes beside the destination and renames over it; its errors
name the destination, as ``open(path, "wb")`` would, never the temporary file.
`unwritable` says, before any long work, why a file could not be written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new temporary file in the directory of ``path``: ``(fd, name)``."""
    directory = os.path.dirname(os.path.abspath(path))
    # a long name is cut so that the temporary one stays within the file system's limit
    return tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)[:100]}.",
                            suffix=".part")


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates the file 0600
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
