"""Tests for fastmlp.datasets: IDX parsing, MNIST loading, checksums and the download cache."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.datasets import SHA256SUMS, load_mnist, read_idx
from fastmlp.exceptions import ChecksumError, DataError

NAMES = tuple(SHA256SUMS)
GZ_NAMES = {f"{name}.gz" for name in NAMES}
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the variables that would override the cache directory."""
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.delenv("FASTMLP_CACHE", raising=False)


@pytest.fixture
def mirror(mnist_dir: Path, tmp_path: Path) -> Path:
    """A local mirror directory holding copies of the real gzipped files."""
    directory = tmp_path / "mirror"
    directory.mkdir()
    for name in GZ_NAMES:
        shutil.copy(mnist_dir / name, directory / name)
    return directory


def uri(directory: Path) -> str:
    return directory.as_uri() + "/"


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mini_mnist(directory: Path, **arrays: np.ndarray) -> None:
    """Write a tiny MNIST-shaped data set (6 train, 4 test); keyword arrays replace files."""
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 8, 7, 6], dtype=np.uint8),
    }
    files.update({key.replace("_", "-"): value for key, value in arrays.items()})
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in files.items():
        (directory / name).write_bytes(idx_bytes(array))


def check_real(splits: tuple) -> None:
    (x_train, y_train), (x_test, y_test) = splits
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]
    np.testing.assert_array_equal(np.bincount(y_train), TRAIN_LABEL_COUNTS)
    assert np.bincount(y_test, minlength=10)[1] == 1135
    assert x_train.max() == 255 and x_train[0].sum() == 27525


@pytest.mark.parametrize("dtype", list(_IDX_CODES))
@pytest.mark.parametrize("form", ["raw", "gz", "bytes", "gz-bytes"])
def test_read_idx_round_trip(dtype: np.dtype, form: str, tmp_path: Path) -> None:
    expected = (np.arange(-12, 12).reshape(2, 3, 4) * 3).astype(dtype)
    data = idx_bytes(expected)
    if form.startswith("gz"):
        data = gzip.compress(data)
    if form.endswith("bytes"):
        source = data
    else:
        source = tmp_path / ("a.idx.gz" if form == "gz" else "a.idx")
        source.write_bytes(data)
    array = read_idx(source)
    assert array.dtype == dtype and array.dtype.isnative
    assert array.flags.writeable
    np.testing.assert_array_equal(array, expected)


def test_read_idx_empty_dimension() -> None:
    array = read_idx(idx_bytes(np.zeros((0, 5), dtype=np.uint8)))
    assert array.shape == (0, 5)


LABELS = idx_bytes(np.arange(10, dtype=np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00\x08", "too short to be an IDX file (3 bytes)"),
        (b"\x01" + LABELS[1:], "bad magic number 0x01000801"),
        (LABELS[:2] + b"\x0a" + LABELS[3:], "unsupported IDX type code 0x0a"),
        (LABELS[:3] + b"\x00" + LABELS[4:], "IDX header declares 0 dimensions"),
        (LABELS[:6], "truncated header: expected 8 bytes, found 6"),
        (LABELS[:-1], "truncated: expected 10 bytes of data, found 9"),
        (LABELS + b"\x00\x00", "2 trailing bytes: expected 10 bytes of data, found 12"),
        # A wrong dims byte makes the header read data bytes as a second size.
        (LABELS[:3] + b"\x02" + LABELS[4:], "truncated: expected 660510 bytes of data, found 6"),
    ],
)
def test_read_idx_rejects_bad_files(data: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        read_idx(path)
    with pytest.raises(DataError, match=re.escape(f"<bytes>: {message}")):
        read_idx(data)


def corrupt_gzip(data: bytes) -> bytes:
    compressed = bytearray(gzip.compress(data))
    compressed[len(compressed) // 2] ^= 0xFF
    return bytes(compressed)


@pytest.mark.parametrize(
    "make",
    [
        corrupt_gzip,
        lambda data: gzip.compress(data)[:-12],
        lambda data: b"this is not gzip",
    ],
    ids=["corrupt", "truncated", "not-gzip"],
)
def test_read_idx_rejects_bad_gzip(make, tmp_path: Path) -> None:
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(make(idx_bytes(np.arange(1000, dtype=np.int32))))
    with pytest.raises(DataError, match=re.escape(f"{path}: corrupt or truncated gzip stream")):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"cannot read {tmp_path / 'nope.idx'}")):
        read_idx(tmp_path / "nope.idx")


def test_load_mnist_from_path(mnist_dir: Path, no_env: None) -> None:
    check_real(load_mnist(mnist_dir))


def test_load_mnist_from_environment(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTMLP_DATA", str(mnist_dir))
    check_real(load_mnist(download=False))


def test_checksum_mismatch(mnist_dir: Path, tmp_path: Path) -> None:
    for name in GZ_NAMES:
        shutil.copy(mnist_dir / name, tmp_path / name)
    # A raw file beside the .gz one takes precedence; change one label, keep the header valid.
    labels = bytearray(gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8] = 3
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels)
    expected = SHA256SUMS["train-labels-idx1-ubyte"]
    found = "found [0-9a-f]{64}$"
    pattern = f"train-labels-idx1-ubyte: SHA-256 mismatch .* expected {expected}, {found}"
    with pytest.raises(ChecksumError, match=pattern):
        load_mnist(tmp_path)
    (_, y_train), _ = load_mnist(tmp_path, verify=False)
    assert y_train[:5].tolist() == [3, 0, 4, 1, 9]


def test_mini_mnist_loads_without_verification(tmp_path: Path) -> None:
    write_mini_mnist(tmp_path)
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path, verify=False)
    assert x_train.shape == (6, 28, 28) and x_test.shape == (4, 28, 28)
    assert y_train.tolist() == [0, 1, 2, 3, 4, 5] and y_test.tolist() == [9, 8, 7, 6]
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte: SHA-256 mismatch"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"train_images_idx3_ubyte": np.zeros((6, 28, 27), np.uint8)},
            r"train-images-idx3-ubyte: expected uint8 images of shape \(n, 28, 28\), found uint8 "
            r"\(6, 28, 27\)",
        ),
        (
            {"t10k_images_idx3_ubyte": np.zeros((4, 28, 28), np.int32)},
            "t10k-images-idx3-ubyte: expected uint8 images",
        ),
        (
            {"train_labels_idx1_ubyte": np.zeros((6, 1), np.uint8)},
            "train-labels-idx1-ubyte: expected 1-D uint8 labels",
        ),
        (
            {"t10k_labels_idx1_ubyte": np.zeros(5, np.uint8)},
            "t10k-labels-idx1-ubyte has 5 labels but t10k-images-idx3-ubyte has 4 images",
        ),
        (
            {"train_labels_idx1_ubyte": np.array([0, 1, 2, 10, 4, 5], np.uint8)},
            r"train-labels-idx1-ubyte: labels must be in 0\.\.9, found 10",
        ),
    ],
)
def test_load_mnist_rejects_bad_arrays(arrays: dict, message: str, tmp_path: Path) -> None:
    write_mini_mnist(tmp_path, **arrays)
    with pytest.raises(DataError, match=message):
        load_mnist(tmp_path, verify=False)


def test_path_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "elsewhere"))
    write_mini_mnist(tmp_path / "here")
    (x_train, _), _ = load_mnist(tmp_path / "here", verify=False)
    assert x_train.shape == (6, 28, 28)


@pytest.mark.parametrize("via", ["path", "FASTMLP_DATA"])
def test_explicit_location_missing_file_does_not_download(
    via: str, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    write_mini_mnist(data)
    (data / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv("FASTMLP_DATA", str(data))
    path = data if via == "path" else None
    origin = "the path argument" if via == "path" else "FASTMLP_DATA"
    message = f"no such file: t10k-labels-idx1-ubyte (raw or .gz) in {data}, given by {origin}"
    with pytest.raises(DataError, match=re.escape(message)):
        load_mnist(path, cache_dir=tmp_path / "cache", mirrors=[uri(mirror)])
    assert not (tmp_path / "cache").exists()


def test_nonexistent_path_names_every_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"{', '.join(NAMES)} (raw or .gz) in")):
        load_mnist(tmp_path / "missing")


def test_download_into_cache(
    mirror: Path, tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    mirrors = [uri(tmp_path / "unreachable"), uri(mirror)]  # the first mirror fails
    check_real(load_mnist(cache_dir=cache, mirrors=mirrors))
    assert set(os.listdir(cache)) == GZ_NAMES
    out, err = capsys.readouterr()
    assert out == "" and err == f"fastmlp: downloading MNIST into {cache}\n"

    for name in GZ_NAMES:
        (mirror / name).unlink()
    check_real(load_mnist(cache_dir=cache, mirrors=mirrors))
    assert capsys.readouterr() == ("", "")


def test_download_fetches_only_missing_files(
    mnist_dir: Path, mirror: Path, tmp_path: Path, no_env: None
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.move(mirror / name, cache / name)
    (x_train, _), (x_test, _) = load_mnist(cache_dir=cache, mirrors=[uri(mirror)])
    assert len(x_train) == 60000 and len(x_test) == 10000
    assert set(os.listdir(cache)) == GZ_NAMES


@pytest.mark.parametrize(
    "payload, message",
    [
        (lambda raw: gzip.compress(raw[:-1] + b"\x07"), "SHA-256 mismatch for train-labels"),
        (lambda raw: b"<html>Not Found</html>", "corrupt or truncated gzip stream"),
    ],
    ids=["bad-checksum", "not-gzip"],
)
def test_corrupt_mirror_leaves_nothing_in_cache(
    payload, message: str, mirror: Path, tmp_path: Path, no_env: None
) -> None:
    target = mirror / "train-labels-idx1-ubyte.gz"
    target.write_bytes(payload(gzip.decompress(target.read_bytes())))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"{message}.*Set FASTMLP_DATA"):
        load_mnist(cache_dir=cache, mirrors=[uri(mirror)])
    left = set(os.listdir(cache)) if cache.exists() else set()
    assert "train-labels-idx1-ubyte.gz" not in left
    assert left <= GZ_NAMES  # no partial or temporary files


def test_corrupt_mirror_falls_back_to_next(
    mnist_dir: Path, mirror: Path, tmp_path: Path, no_env: None
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in GZ_NAMES:
        (bad / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    load_mnist(cache_dir=tmp_path / "cache", mirrors=[uri(bad), uri(mirror)])
    assert set(os.listdir(tmp_path / "cache")) == GZ_NAMES


def test_failed_write_removes_temporary_file(
    mirror: Path, tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets.os, "fsync", fail)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="cannot write train-images-idx3-ubyte.gz to the cache"):
        load_mnist(cache_dir=cache, mirrors=[uri(mirror)])
    assert os.listdir(cache) == []


def test_all_mirrors_unreachable(tmp_path: Path, no_env: None) -> None:
    mirrors = [uri(tmp_path / "a"), uri(tmp_path / "b")]
    pattern = (
        re.escape(f"could not download train-images-idx3-ubyte.gz from any mirror ({mirrors[0]}, ")
        + ".*last error: .*Set FASTMLP_DATA"
    )
    with pytest.raises(DataError, match=pattern):
        load_mnist(cache_dir=tmp_path / "cache", mirrors=mirrors)
    assert not (tmp_path / "cache").exists() or os.listdir(tmp_path / "cache") == []


def test_download_false_with_empty_cache(tmp_path: Path, no_env: None) -> None:
    pattern = "MNIST is not in the cache .* and download=False; set FASTMLP_DATA"
    with pytest.raises(DataError, match=pattern):
        load_mnist(cache_dir=tmp_path, download=False)


def test_cache_directory_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.delenv("FASTMLP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def cache_in_message(**kwargs: object) -> str:
        with pytest.raises(DataError) as info:
            load_mnist(download=False, **kwargs)
        return re.search(r"not in the cache (\S+)", str(info.value)).group(1)

    assert cache_in_message() == str(tmp_path / "home" / ".cache" / "fastmlp" / "mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_in_message() == str(tmp_path / "xdg" / "fastmlp" / "mnist")
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "env"))
    assert cache_in_message() == str(tmp_path / "env")
    assert cache_in_message(cache_dir=tmp_path / "arg") == str(tmp_path / "arg")
