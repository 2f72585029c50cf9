"""Fixtures and helpers shared by the tests in tests/.

The real data sets (``mnist``, ``mnist_dir``, ``fashion_mnist_dir``) come from
the project's top-level conftest.py, which bench/ shares. Helpers are given to
tests as fixtures ("factories as fixtures"), so a test module never imports a
conftest by name; pytest finds them as it finds any fixture.
"""

import importlib.util
import signal
from pathlib import Path

import numpy as np
import pytest

# scikit-learn's gallery examples, which tests/test_sklearn_gallery.py runs in subprocesses:
# scripts, not tests, so --doctest-modules must not import (and so run) them.
collect_ignore = ["sklearn_gallery"]


def _random_params(sizes, dtype, seed=0):
    """He-initialised weights and small random biases, C-ordered: ``[(W, b), ...]``.

    ``W`` of layer ``l`` has shape ``(sizes[l + 1], sizes[l])``, ``b`` shape
    ``(sizes[l + 1],)``. ``seed`` is a seed or a ``numpy.random.Generator``
    to draw from (a generator moves on).
    """
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(dtype),
             (0.1 * rng.standard_normal(n_out)).astype(dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def _random_batch(sizes, n_samples, dtype, seed=1):
    """Inputs ``x``, shape ``(n_samples, sizes[0])``, and int64 labels ``y`` below ``sizes[-1]``.

    ``seed`` as in `_random_params`.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n_samples).astype(np.int64)
    return x, y


def _random_problem(sizes, n_samples, dtype, seed=0):
    """``(params, x, y)``: `_random_params`, then `_random_batch`, from one generator."""
    rng = np.random.default_rng(seed)
    params = _random_params(sizes, dtype, rng)
    return (params, *_random_batch(sizes, n_samples, dtype, rng))


@pytest.fixture(scope="session")
def random_params():
    """``random_params(sizes, dtype, seed=0)``: random network parameters, ``[(W, b), ...]``."""
    return _random_params


@pytest.fixture(scope="session")
def random_batch():
    """``random_batch(sizes, n_samples, dtype, seed=1)``: random inputs and labels ``(x, y)``."""
    return _random_batch


@pytest.fixture(scope="session")
def random_problem():
    """``random_problem(sizes, n_samples, dtype, seed=0)``: ``(params, x, y)`` from one seed."""
    return _random_problem


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    """The module's ``model`` fixture, saved: the path of its ``.npz`` file, as a string."""
    path = tmp_path_factory.mktemp("model") / "mnist.npz"
    model.save(path)
    return str(path)


def _write_idx(directory, arrays):
    """Write IDX files (uint8 arrays only) named like MNIST's."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
        (directory / name).write_bytes(header + array.astype(np.uint8).tobytes())


def _small_images(n, seed):
    """8x8 images of 3 classes: class k lights rows 3k..3k+1 over noise, so a net learns it."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, 8, 8))
    for k in range(3):
        images[labels == k, 3 * k:3 * k + 2, :] += 180
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def small_images():
    """``small_images(n, seed)``: ``n`` uint8 8x8 images of 3 easy classes and their labels."""
    return _small_images


@pytest.fixture
def small_idx(tmp_path):
    """A non-MNIST IDX data set: 8x8 images, 3 classes, 300 training and 60 test images."""
    (x_train, y_train), (x_test, y_test) = _small_images(300, 0), _small_images(60, 1)
    directory = tmp_path / "small"
    _write_idx(directory, {"train-images-idx3-ubyte": x_train,
                           "train-labels-idx1-ubyte": y_train,
                           "t10k-images-idx3-ubyte": x_test,
                           "t10k-labels-idx1-ubyte": y_test})
    return directory


@pytest.fixture
def sigint_delivered():
    """Child processes started in the test get SIGINT as a terminal's Ctrl-C sends it.

    A shell starts a background job (``bash .ci/run &``) with SIGINT ignored, and
    every process it starts inherits that: Python then installs no handler, and
    a child would train on through the SIGINT a test sends it. Handled here, the
    signal is back to its default in each child.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("compare_sklearn.py")``: that file of ``bench/`` imported as a module
    (the scripts are not a package, so each is loaded from its path)."""
    def load(relative):
        path = BENCH / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
