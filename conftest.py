"""Fixtures shared by the tests (tests/) and the benchmarks (bench/): the real MNIST data set."""

import os
from pathlib import Path

import pytest


def _mnist_dir() -> Path:
    """The real MNIST directory from FASTMLP_DATA; fails, not skips, if FASTMLP_REQUIRE_DATA=1."""
    value = os.environ.get("FASTMLP_DATA")
    if value and Path(value).is_dir():
        return Path(value)
    message = f"real MNIST not found: FASTMLP_DATA={value!r} is not a directory"
    if os.environ.get("FASTMLP_REQUIRE_DATA") == "1":
        pytest.fail(message + " and FASTMLP_REQUIRE_DATA=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Real MNIST as flat uint8 arrays: ((x_train, y_train), (x_test, y_test))."""
    from fastmlp.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(mnist_dir)
    return (x_train.reshape(-1, 784), y_train), (x_test.reshape(-1, 784), y_test)
