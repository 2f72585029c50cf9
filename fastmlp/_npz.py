"""Read ``.npz`` archives without trusting them.

``np.load`` allocates whatever shape an array's header claims before it reads
the data, so a file of a few hundred bytes can ask for exabytes. Here every
header is checked against the bytes actually stored for its array first:
reading an array never allocates more than the file holds.
"""

from __future__ import annotations

import math
import zipfile
from typing import NamedTuple

import numpy as np

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class ArrayHeader(NamedTuple):
    """Where an array is stored in the archive, and the shape and dtype its header claims."""

    member: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype


def read_headers(archive: zipfile.ZipFile, file_length: int) -> dict[str, ArrayHeader]:
    """The header of every array in ``archive``, by name (without ``.npy``).

    Parameters
    ----------
    archive : zipfile.ZipFile
    file_length : int
        Size in bytes of the archive's file: no array may claim more.

    Returns
    -------
    dict of str to ArrayHeader

    Raises
    ------
    ValueError
        If a member is not an uncompressed ``.npy`` array (``np.savez`` writes
        them uncompressed, so their sizes are bounded by the file's), holds
        Python objects, or its header does not describe exactly the bytes
        stored for it.
    """
    headers = {}
    for member in archive.infolist():
        if not member.filename.endswith(".npy"):
            raise ValueError(f"member {member.filename!r} is not a NumPy array (.npy)")
        name = member.filename[:-len(".npy")]
        if (member.compress_type != zipfile.ZIP_STORED or member.compress_size != member.file_size
                or member.file_size > file_length):
            raise ValueError(
                f"array {name!r} is compressed or claims more bytes ({member.file_size}) than "
                f"the file holds ({file_length}); model files are written uncompressed"
            )
        with archive.open(member) as stream:
            read_header = _HEADER_READERS.get(np.lib.format.read_magic(stream))
            if read_header is None:
                raise ValueError(f"array {name!r} has an unsupported .npy format version")
            shape, _, dtype = read_header(stream)
            header_length = stream.tell()
        if dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects")
        stored = member.file_size - header_length
        if math.prod(shape) * dtype.itemsize != stored:
            raise ValueError(
                f"array {name!r} claims shape {shape} of {dtype}, but {stored} bytes are stored"
            )
        headers[name] = ArrayHeader(member, tuple(shape), dtype)
    return headers


def read_array(archive: zipfile.ZipFile, header: ArrayHeader) -> np.ndarray:
    """The array that ``header`` (from :func:`read_headers` on ``archive``) describes."""
    with archive.open(header.member) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)
