"""Load MNIST from IDX files, verifying checksums and downloading into a cache on demand.

The data directory is the first of: the ``path`` argument, the ``FASTMLP_DATA`` environment
variable, the user cache directory. Only the cache directory falls through to a download; an
explicit location that lacks the files is an error.

Examples
--------
>>> from fastmlp.datasets import load_mnist
>>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
>>> x_train.shape, y_train[:5]  # doctest: +SKIP
((60000, 28, 28), array([5, 0, 4, 1, 9], dtype=uint8))
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import sys
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastmlp._atomic import atomic_write
from fastmlp.exceptions import ChecksumError, DataError

__all__ = ["MIRRORS", "SHA256SUMS", "load_mnist", "read_idx"]

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Published SHA-256 of each file's uncompressed bytes.
SHA256SUMS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

DOWNLOAD_TIMEOUT = 30.0  # seconds per request

_SPLITS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)

# IDX type code (third byte of the magic number) -> big-endian element dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Split = tuple[np.ndarray, np.ndarray]


def read_idx(source: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Parse an IDX file into a NumPy array.

    Parameters
    ----------
    source : str, path-like or bytes
        Path to an IDX file, gzipped or raw, or the file's contents. Gzip is recognised by the
        ``.gz`` suffix or the gzip magic bytes.

    Returns
    -------
    ndarray of shape (d0, d1, ...)
        Writable array in native byte order, shaped by the header dimensions; its dtype follows
        the type code: uint8, int8, int16, int32, float32 or float64.

    Raises
    ------
    DataError
        If the file cannot be read, the gzip stream is corrupt or truncated, the magic number
        or type code is invalid, or the data length disagrees with the dimensions.

    Examples
    --------
    >>> read_idx(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
    array([7, 8, 9], dtype=uint8)
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:2] == b"\x1f\x8b":
            data = _gunzip(data, "<bytes>")
        return _parse_idx(data, "<bytes>")
    path = Path(source)
    return _parse_idx(_read_file(path), str(path))


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = True,
    mirrors: Sequence[str] = MIRRORS,
) -> tuple[Split, Split]:
    """Load the MNIST digits, downloading them into the cache if needed.

    Parameters
    ----------
    path : str or path-like, optional
        Directory holding the four IDX files (each raw or ``.gz``). Defaults to the
        ``FASTMLP_DATA`` environment variable. Missing files here raise rather than download.
    cache_dir : str or path-like, optional
        Directory to look in, and download into, when neither ``path`` nor ``FASTMLP_DATA`` is
        set. Defaults to ``FASTMLP_CACHE``, else ``$XDG_CACHE_HOME/fastmlp/mnist``, else
        ``~/.cache/fastmlp/mnist``.
    download : bool, default True
        Whether to fetch files missing from the cache directory.
    verify : bool, default True
        Whether to check each file's SHA-256 against `SHA256SUMS`. Downloads are always checked.
    mirrors : sequence of str, default MIRRORS
        Base URLs tried in order; ``<mirror><name>.gz`` is fetched.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of ndarray
        uint8 images of shape (60000, 28, 28) and (10000, 28, 28); uint8 labels in 0..9 of shape
        (60000,) and (10000,).

    Raises
    ------
    DataError
        If files are missing, corrupt, mis-shaped or cannot be downloaded.
    ChecksumError
        If a file's SHA-256 does not match the published value.
    """
    explicit, origin = path, "the path argument"
    if explicit is None and os.environ.get("FASTMLP_DATA"):
        explicit, origin = os.environ["FASTMLP_DATA"], "FASTMLP_DATA"
    if explicit is not None:
        directory = Path(explicit).expanduser()
        missing = _missing(directory)
        if missing:
            raise DataError(
                f"no such file: {', '.join(missing)} (raw or .gz) in {directory}, given by {origin}"
            )
    else:
        directory = _cache_dir(cache_dir)
        missing = _missing(directory)
        if missing and not download:
            raise DataError(
                f"MNIST is not in the cache {directory} (missing {', '.join(missing)}) and "
                "download=False; set FASTMLP_DATA to a directory holding the IDX files "
                "or allow download"
            )
        if missing:
            _download(missing, directory, mirrors)

    splits = []
    for images_name, labels_name in _SPLITS:
        images = _load(directory, images_name, verify)
        labels = _load(directory, labels_name, verify)
        _check_split(images, labels, images_name, labels_name)
        splits.append((images, labels))
    return splits[0], splits[1]


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    # Header: two zero bytes, type code, ndim, then ndim big-endian uint32 sizes.
    if len(data) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: bad magic number 0x{data[:4].hex()}, expected 0x0000TTNN")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        supported = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(f"{name}: unsupported IDX type code 0x{code:02x} (supported: {supported})")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{name}: truncated header: expected {offset} bytes, found {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = math.prod(shape)
    expected, found = count * dtype.itemsize, len(data) - offset
    if found < expected:
        raise DataError(f"{name}: truncated: expected {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(
            f"{name}: {found - expected} trailing bytes: expected {expected} bytes of data, "
            f"found {found}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{name}: corrupt or truncated gzip stream ({error})") from error


def _read_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from error
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = _gunzip(data, str(path))
    return data


def _verify(data: bytes, name: str, where: str) -> None:
    actual, expected = hashlib.sha256(data).hexdigest(), SHA256SUMS[name]
    if actual != expected:
        raise ChecksumError(
            f"{where}: SHA-256 mismatch for {name}: expected {expected}, found {actual}"
        )


def _locate(directory: Path, name: str) -> Path | None:
    # The raw file wins when both exist: it needs no decompression.
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path) -> list[str]:
    return [name for split in _SPLITS for name in split if _locate(directory, name) is None]


def _load(directory: Path, name: str, verify: bool) -> np.ndarray:
    path = _locate(directory, name)
    assert path is not None  # load_mnist checked, or downloaded, every file first
    data = _read_file(path)
    if verify:
        _verify(data, name, str(path))
    return _parse_idx(data, str(path))


def _check_split(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str
) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_name}: expected uint8 images of shape (n, 28, 28), "
            f"found {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_name}: expected 1-D uint8 labels, found {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{labels_name} has {len(labels)} labels but {images_name} has {len(images)} images"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_name}: labels must be in 0..9, found {labels.max()}")


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("FASTMLP_CACHE"):
        return Path(os.environ["FASTMLP_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fastmlp" / "mnist"


def _download(names: Sequence[str], directory: Path, mirrors: Sequence[str]) -> None:
    print(f"fastmlp: downloading MNIST into {directory}", file=sys.stderr)
    for name in names:
        compressed = _fetch(name, mirrors)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with atomic_write(directory / f"{name}.gz") as file:
                file.write(compressed)
        except OSError as error:
            raise DataError(
                f"cannot write {name}.gz to the cache {directory}: {error}; "
                "set FASTMLP_CACHE or cache_dir to a writable directory"
            ) from error


def _fetch(name: str, mirrors: Sequence[str]) -> bytes:
    """Return the gzipped bytes of `name` from the first mirror serving a verified copy."""
    last_error: Exception | None = None
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                compressed = response.read()
            _verify(_gunzip(compressed, url), name, url)
            return compressed
        except (OSError, http.client.HTTPException, ValueError) as error:
            last_error = error
    raise DataError(
        f"could not download {name}.gz from any mirror ({', '.join(mirrors) or 'none given'}); "
        f"last error: {last_error}. Set FASTMLP_DATA to a directory holding the MNIST files."
    ) from last_error
