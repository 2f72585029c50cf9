"""Tests for fastmlp.datasets: IDX parsing, data sets by name or directory, checksums, the
download cache and .npz data sets."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from fastmlp import datasets
from fastmlp.datasets import (
    SHA256SUMS,
    dataset_info,
    load_arrays,
    load_dataset,
    load_idx_dataset,
    load_mnist,
    read_idx,
)
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
    monkeypatch.delenv("FASTMLP_FASHION_MNIST_DATA", raising=False)
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
            r"t10k-images-idx3-ubyte has images of shape \(28, 28\) but train-images-idx3-ubyte "
            r"has \(28, 27\)",
        ),
        (
            {"t10k_images_idx3_ubyte": np.zeros((4, 28, 28), np.int32)},
            r"t10k-images-idx3-ubyte: expected uint8 images of shape \(n_images, height, width\), "
            r"found int32 \(4, 28, 28\)",
        ),
        (
            {"train_images_idx3_ubyte": np.zeros(6, np.uint8)},
            r"train-images-idx3-ubyte: expected uint8 images .*, found uint8 \(6,\)",
        ),
        (
            {"train_labels_idx1_ubyte": np.zeros((6, 1), np.uint8)},
            r"train-labels-idx1-ubyte: expected 1-D integer labels, found uint8 \(6, 1\)",
        ),
        (
            {"train_labels_idx1_ubyte": np.zeros(6, np.float32)},
            "train-labels-idx1-ubyte: expected 1-D integer labels, found float32",
        ),
        (
            {"t10k_labels_idx1_ubyte": np.zeros(5, np.uint8)},
            "t10k-labels-idx1-ubyte has 5 labels but t10k-images-idx3-ubyte has 4 images",
        ),
        (
            {"train_labels_idx1_ubyte": np.array([0, 1, 2, 10, 4, 5], np.uint8)},
            r"train-labels-idx1-ubyte: labels must be in 0\.\.9, found 10",
        ),
        (
            {"t10k_labels_idx1_ubyte": np.array([1, -1, 2, 3], np.int8)},
            r"t10k-labels-idx1-ubyte: labels must be in 0\.\.9, found -1",
        ),
        (
            {"t10k_images_idx3_ubyte": np.zeros((0, 28, 28), np.uint8),
             "t10k_labels_idx1_ubyte": np.zeros(0, np.uint8)},
            r"t10k-images-idx3-ubyte holds no images: shape \(0, 28, 28\)",
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
    mirror: Path, tmp_path: Path, no_env: None, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="fastmlp")
    cache = tmp_path / "cache"
    mirrors = [uri(tmp_path / "unreachable"), uri(mirror)]  # the first mirror fails
    check_real(load_mnist(cache_dir=cache, mirrors=mirrors))
    assert set(os.listdir(cache)) == GZ_NAMES
    # a notice logged at INFO, and no bar: the captured stderr is no terminal
    assert caplog.record_tuples == [
        ("fastmlp.datasets", logging.INFO, f"downloading MNIST into {cache}")]
    assert capsys.readouterr() == ("", "")

    caplog.clear()
    for name in GZ_NAMES:
        (mirror / name).unlink()
    check_real(load_mnist(cache_dir=cache, mirrors=mirrors))
    assert caplog.record_tuples == []
    assert capsys.readouterr() == ("", "")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_download_shows_a_progress_bar_when_stderr_is_a_terminal(
    mnist_dir: Path, mirror: Path, tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cache = tmp_path / "cache"
    load_mnist(cache_dir=cache, mirrors=[uri(mirror)])
    screen = terminal.getvalue()
    for name in GZ_NAMES:
        # each file's bar ends full, with the size the mirror announced, in binary units
        # (9.27M for 9,719,438 bytes), drawn in ASCII: a StringIO has no encoding
        shown = re.escape(tqdm.format_sizeof((mnist_dir / name).stat().st_size, divisor=1024))
        assert re.search(rf"\rMNIST {re.escape(name)}: 100%\|#+\| {shown}/{shown} \[", screen)
    assert screen.count("\n") == 4  # the four bars are left on the screen, one a line


def test_a_download_has_a_bar_without_a_known_size(
    mirror: Path, tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unsized:  # a server that sends no Content-Length
        def __init__(self, response):
            self.response = response
            self.headers = {}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

        def read(self, size=-1):
            return self.response.read(size)

    urlopen = datasets.urllib.request.urlopen
    monkeypatch.setattr(datasets.urllib.request, "urlopen",
                        lambda url, **kwargs: Unsized(urlopen(url, **kwargs)))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    check_real(load_mnist(cache_dir=tmp_path / "cache", mirrors=[uri(mirror)]))
    assert re.search(r"\rMNIST train-labels-idx1-ubyte\.gz: 28\.2kB \[", terminal.getvalue())


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
    (tmp_path / "home").mkdir()

    def cache_in_message(**kwargs: object) -> str:
        with pytest.raises(DataError) as info:
            load_mnist(download=False, **kwargs)
        return re.search(r"not in the cache (\S+)", str(info.value)).group(1)

    assert cache_in_message() == str(tmp_path / "home" / ".cache" / "fastmlp" / "mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_in_message() == str(tmp_path / "xdg" / "fastmlp" / "mnist")
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "env"))
    assert cache_in_message() == str(tmp_path / "env" / "mnist")
    assert cache_in_message(cache_dir=tmp_path / "arg") == str(tmp_path / "arg")


FASHION_TRAIN_FIRST = [9, 0, 0, 3, 0]
FASHION_TEST_FIRST = [9, 2, 1, 1, 6]


def test_load_fashion_mnist_from_path(fashion_mnist_dir: Path, no_env: None) -> None:
    (x_train, y_train), (x_test, y_test) = load_dataset("fashion-mnist", fashion_mnist_dir)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert y_train[:5].tolist() == FASHION_TRAIN_FIRST
    assert y_test[:5].tolist() == FASHION_TEST_FIRST
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    assert x_train[0].sum() == 76247


def test_load_fashion_mnist_from_its_environment_variable(
    fashion_mnist_dir: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each data set reads its own variable: FASTMLP_DATA stays MNIST's.
    monkeypatch.setenv("FASTMLP_FASHION_MNIST_DATA", str(fashion_mnist_dir))
    monkeypatch.setenv("FASTMLP_DATA", str(mnist_dir))
    (_, y_train), _ = load_dataset("fashion-mnist", download=False)
    assert y_train[:5].tolist() == FASHION_TRAIN_FIRST
    (_, y_train), _ = load_dataset("mnist", download=False)
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]


def test_one_data_set_in_the_place_of_another_fails_its_checksums(
    mnist_dir: Path, no_env: None
) -> None:
    name = "train-images-idx3-ubyte"
    message = (f"{mnist_dir / name}.gz: SHA-256 mismatch for {name}: expected "
               f"{dataset_info('fashion-mnist').sha256[name]}, found {SHA256SUMS[name]}")
    with pytest.raises(ChecksumError, match=re.escape(message)):
        load_dataset("fashion-mnist", mnist_dir)


def test_dataset_info() -> None:
    fashion = dataset_info("fashion-mnist")
    assert fashion.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert fashion.n_classes == 10
    assert fashion.environment_variable == "FASTMLP_FASHION_MNIST_DATA"
    assert fashion.mirrors == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    assert set(fashion.sha256) == set(NAMES)
    mnist = dataset_info("mnist")
    assert mnist.class_names == tuple("0123456789")
    assert mnist.sha256 == SHA256SUMS and mnist.environment_variable == "FASTMLP_DATA"
    assert mnist.cache_subdir != fashion.cache_subdir  # same file names, so never one directory


@pytest.mark.parametrize("call", [dataset_info, load_dataset])
def test_unknown_data_set_lists_the_known_ones(call) -> None:
    message = "unknown data set 'cifar-10'; known: mnist, fashion-mnist"
    with pytest.raises(ValueError, match=message):
        call("cifar-10")


def test_download_fashion_mnist_into_its_own_cache_directory(
    fashion_mnist_dir: Path, tmp_path: Path, no_env: None, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fastmlp")
    mirror = tmp_path / "mirror"
    shutil.copytree(fashion_mnist_dir, mirror)
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    (_, y_train), _ = load_dataset("fashion-mnist", mirrors=[uri(mirror)])
    assert y_train[:5].tolist() == FASHION_TRAIN_FIRST
    cache = tmp_path / "cache" / "fashion-mnist"
    assert set(os.listdir(cache)) == GZ_NAMES
    assert caplog.record_tuples == [
        ("fastmlp.datasets", logging.INFO, f"downloading Fashion-MNIST into {cache}")]


def test_failed_fashion_download_names_its_variable(tmp_path: Path, no_env: None) -> None:
    with pytest.raises(DataError, match="Set FASTMLP_FASHION_MNIST_DATA to a directory holding "
                                        "the Fashion-MNIST files"):
        load_dataset("fashion-mnist", cache_dir=tmp_path / "cache", mirrors=[uri(tmp_path)])


def write_idx_dataset(directory: Path, gz: bool = False, **arrays: np.ndarray) -> None:
    """A small non-MNIST data set: 8x8 images, 3 classes, 9 train and 6 test images."""
    rng = np.random.default_rng(1)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (9, 8, 8), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 1, 2] * 3, np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([2, 1, 0, 0, 1, 2], np.uint8),
    }
    files.update({key.replace("_", "-"): value for key, value in arrays.items()})
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dataset_of_any_image_size(gz: bool, tmp_path: Path) -> None:
    write_idx_dataset(tmp_path, gz=gz)
    (x_train, y_train), (x_test, y_test) = load_idx_dataset(tmp_path)
    assert x_train.shape == (9, 8, 8) and x_test.shape == (6, 8, 8)
    assert y_train.tolist() == [0, 1, 2] * 3 and y_test.tolist() == [2, 1, 0, 0, 1, 2]
    load_idx_dataset(tmp_path, n_classes=3)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: labels must be in 0\.\.1, "
                                        "found 2"):
        load_idx_dataset(tmp_path, n_classes=2)


def test_load_idx_dataset_verifies_the_digests_it_is_given(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path)
    digests = {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
               for name in NAMES}
    load_idx_dataset(tmp_path, sha256=digests)
    load_idx_dataset(tmp_path, sha256={"t10k-labels-idx1-ubyte": digests[NAMES[3]]})
    wrong = dict(digests, **{"t10k-labels-idx1-ubyte": "0" * 64})
    message = (f"{tmp_path / 't10k-labels-idx1-ubyte'}: SHA-256 mismatch for "
               f"t10k-labels-idx1-ubyte: expected {'0' * 64}, found {digests[NAMES[3]]}")
    with pytest.raises(ChecksumError, match=re.escape(message)):
        load_idx_dataset(tmp_path, sha256=wrong)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"t10k_images_idx3_ubyte": np.zeros((6, 7, 8), np.uint8)},
         r"t10k-images-idx3-ubyte has images of shape \(7, 8\) but train-images-idx3-ubyte "
         r"has \(8, 8\)"),
        ({"train_labels_idx1_ubyte": np.zeros(8, np.uint8)},
         "train-labels-idx1-ubyte has 8 labels but train-images-idx3-ubyte has 9 images"),
        ({"t10k_labels_idx1_ubyte": np.array([0, 1, 2, -3, 1, 2], np.int16)},
         "t10k-labels-idx1-ubyte: labels must be in >= 0, found -3"),
        ({"train_images_idx3_ubyte": np.zeros((9, 8, 8), np.float32)},
         "train-images-idx3-ubyte: expected uint8 images"),
    ],
    ids=["shapes", "counts", "negative-label", "float-images"],
)
def test_load_idx_dataset_rejects_files_that_disagree(
    arrays: dict, message: str, tmp_path: Path
) -> None:
    write_idx_dataset(tmp_path, **arrays)
    with pytest.raises(DataError, match=message):
        load_idx_dataset(tmp_path)


def test_load_idx_dataset_names_missing_files(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    message = f"no such file: train-labels-idx1-ubyte (raw or .gz) in {tmp_path}"
    with pytest.raises(DataError, match=re.escape(message) + "$"):
        load_idx_dataset(tmp_path)


def test_load_arrays(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    np.savez(path, x_train=x, y_train=np.array([0, 3, 1, 3]), x_test=x[:2],
             y_test=np.array([1, 0], np.uint8))
    (x_train, y_train), (x_test, y_test) = load_arrays(path)
    np.testing.assert_array_equal(x_train, x)
    assert y_train.tolist() == [0, 3, 1, 3] and y_test.tolist() == [1, 0]
    assert x_test.shape == (2, 2, 3)
    np.savez(path, x_train=x, y_train=np.array([0, 3, 1, 3]))
    (x_train, _), test = load_arrays(path)
    assert x_train.shape == (4, 2, 3) and test is None


GOOD = {"x_train": np.zeros((3, 2)), "y_train": np.array([0, 1, 1])}


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": GOOD["x_train"]}, "missing array 'y_train'; an .npz data set holds "
                                       "x_train, y_train and optionally x_test, y_test"),
        ({"X_train": GOOD["x_train"], "y_train": GOOD["y_train"]}, "unexpected array 'X_train'"),
        (dict(GOOD, x_test=GOOD["x_train"]), "has x_test but no y_test; give both or neither"),
        (dict(GOOD, y_test=GOOD["y_train"]), "has y_test but no x_test; give both or neither"),
        (dict(GOOD, x_train=np.array(["a", "b", "c"])), "x_train must hold real numbers, "
                                                        "found dtype <U1"),
        (dict(GOOD, x_train=np.zeros(3)), r"x_train must have shape \(n_samples, \.\.\.\) with "
                                          r"at least one sample and one feature, found \(3,\)"),
        (dict(GOOD, x_train=np.zeros((3, 0))), r"x_train must have shape .* found \(3, 0\)"),
        (dict(GOOD, x_train=np.array([[0, 1], [np.nan, 2], [3, 4]])),
         "x_train contains NaN; inputs must be finite"),
        (dict(GOOD, x_train=np.array([[0, 1], [np.inf, 2], [3, 4]])),
         "x_train contains inf; inputs must be finite"),
        (dict(GOOD, y_train=np.array([0.0, 1.0, 1.0])),
         "y_train must hold integer labels, found dtype float64"),
        (dict(GOOD, y_train=np.array([[0], [1], [1]])),
         r"y_train must be 1-D, found shape \(3, 1\)"),
        (dict(GOOD, y_train=np.array([0, 1])), "y_train has 2 labels but x_train has 3 samples"),
        (dict(GOOD, y_train=np.array([0, -1, 1])),
         "y_train has label -1; labels must be 0 .. n_classes - 1"),
        (dict(GOOD, x_test=np.zeros((2, 3)), y_test=np.array([0, 1])),
         r"x_test has samples of shape \(3,\) but x_train has \(2,\)"),
        (dict(GOOD, x_test=np.zeros((2, 2)), y_test=np.array([0, 1, 1])),
         "y_test has 3 labels but x_test has 2 samples"),
    ],
)
def test_load_arrays_rejects_bad_arrays(arrays: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: {message}"):
        load_arrays(path)


def test_load_arrays_rejects_files_that_are_not_npz(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"cannot read {tmp_path / 'no.npz'}: No such")):
        load_arrays(tmp_path / "no.npz")
    text = tmp_path / "text.npz"
    text.write_text("x_train,y_train\n1,0\n")
    with pytest.raises(DataError, match=re.escape(f"{text} is not an .npz file of arrays")):
        load_arrays(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="is a single .npy array, not an .npz file"):
        load_arrays(single)
    objects = tmp_path / "objects.npz"
    np.savez(objects, x_train=np.array([{}, {}], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(DataError, match="array 'x_train' cannot be read without pickle"):
        load_arrays(objects)


@pytest.mark.parametrize("require, outcome", [("1", "1 error"), ("0", "1 skipped")])
def test_missing_real_data_fails_when_required(require: str, outcome: str, tmp_path: Path) -> None:
    # The fixtures of the project's conftest.py, in a pytest run of their own.
    shutil.copy(Path(__file__).parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs_data.py").write_text(
        "def test_needs_data(fashion_mnist_dir):\n    pass\n")
    env = dict(os.environ, FASTMLP_REQUIRE_DATA=require,
               FASTMLP_FASHION_MNIST_DATA=str(tmp_path / "nowhere"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p",
                             "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert outcome in result.stdout and (result.returncode != 0) == (require == "1")
    message = (f"real Fashion-MNIST not found: FASTMLP_FASHION_MNIST_DATA="
               f"'{tmp_path / 'nowhere'}' is not a directory")
    assert message in result.stdout
    assert ("and FASTMLP_REQUIRE_DATA=1" in result.stdout) == (require == "1")


def gzipped_mini_mnist(directory: Path) -> dict[str, str]:
    """A tiny MNIST-shaped data set of .gz files; the digests of their uncompressed bytes."""
    write_mini_mnist(directory)
    digests = {}
    for name in NAMES:
        raw = (directory / name).read_bytes()
        digests[name] = hashlib.sha256(raw).hexdigest()
        (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        (directory / name).unlink()
    return digests


def test_verified_gz_files_are_kept_unpacked_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTMLP_UNPACKED_CACHE", raising=False)
    digests = gzipped_mini_mnist(tmp_path / "data")
    first = load_idx_dataset(tmp_path / "data", sha256=digests)
    copies = sorted((tmp_path / "cache" / "unpacked").glob("*.idx"))
    assert datasets.unpacked_cache_dir() == tmp_path / "cache" / "unpacked"
    assert sorted(path.name.split("-")[0] for path in copies) == sorted(digests.values())
    for path in copies:  # each copy holds the uncompressed bytes of its digest
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name.split("-")[0]

    def no_gunzip(data, name):
        raise AssertionError(f"{name} was decompressed again")

    monkeypatch.setattr(datasets, "_gunzip", no_gunzip)
    again = load_idx_dataset(tmp_path / "data", sha256=digests)
    for (x, y), (x_again, y_again) in zip(first, again):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)
        assert x_again.flags.writeable


def test_a_corrupt_unpacked_copy_is_replaced_from_the_gz_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    digests = gzipped_mini_mnist(tmp_path / "data")
    want = load_idx_dataset(tmp_path / "data", sha256=digests)
    name = "train-images-idx3-ubyte"
    (copy,) = (tmp_path / "cache" / "unpacked").glob(f"{digests[name]}-*.idx")
    damaged = bytearray(copy.read_bytes())
    damaged[-1] ^= 1
    copy.write_bytes(bytes(damaged))
    got = load_idx_dataset(tmp_path / "data", sha256=digests)
    np.testing.assert_array_equal(got[0][0], want[0][0])
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digests[name]


def test_a_changed_gz_file_is_verified_again_not_served_from_its_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    digests = gzipped_mini_mnist(tmp_path / "data")
    load_idx_dataset(tmp_path / "data", sha256=digests)
    name = "t10k-labels-idx1-ubyte"
    source = tmp_path / "data" / f"{name}.gz"
    source.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3, 4], np.uint8))))
    os.utime(source, ns=(1, 1))  # another modification time than the copy was made from
    with pytest.raises(ChecksumError, match=f"SHA-256 mismatch for {name}"):
        load_idx_dataset(tmp_path / "data", sha256=digests)


def test_the_unpacked_cache_can_be_turned_off_and_may_be_unwritable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = gzipped_mini_mnist(tmp_path / "data")
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FASTMLP_UNPACKED_CACHE", "0")
    assert datasets.unpacked_cache_dir() is None
    load_idx_dataset(tmp_path / "data", sha256=digests)
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("FASTMLP_UNPACKED_CACHE")
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    (x_train, _), _ = load_idx_dataset(tmp_path / "data", sha256=digests)
    assert x_train.shape == (6, 28, 28)


def test_a_home_that_does_not_exist_is_no_cache(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A service account: HOME names a directory that does not exist. fastmlp neither makes
    # it (root could) nor fails on it: the unpacked copies are skipped, and a download says
    # what to set.
    for variable in ("FASTMLP_CACHE", "XDG_CACHE_HOME", "FASTMLP_UNPACKED_CACHE", "FASTMLP_DATA"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "no-such-home"
    monkeypatch.setenv("HOME", str(home))
    assert datasets.unpacked_cache_dir() is None
    digests = gzipped_mini_mnist(tmp_path / "data")
    (x_train, _), _ = load_idx_dataset(tmp_path / "data", sha256=digests)
    assert x_train.shape == (6, 28, 28)
    with pytest.raises(DataError, match=f"MNIST has no cache directory .*: the home directory "
                                        f"{home} does not exist; set FASTMLP_DATA to a "
                                        "directory holding the MNIST files, or FASTMLP_CACHE"):
        datasets.load_mnist()
    assert not home.exists()
    monkeypatch.delenv("HOME")
    monkeypatch.setattr(Path, "home", lambda: (_ for _ in ()).throw(
        RuntimeError("Could not determine home directory.")))
    assert datasets.unpacked_cache_dir() is None
    with pytest.raises(DataError, match="HOME is not set and this user has no home directory"):
        datasets.load_mnist()
