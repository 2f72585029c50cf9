"""Fixtures shared by the tests (tests/) and the benchmarks (bench/): the real data sets.

Each data set's directory comes from its environment variable (``FASTMLP_DATA`` for MNIST,
``FASTMLP_FASHION_MNIST_DATA`` for Fashion-MNIST). A test that needs a missing one is skipped,
or fails when ``FASTMLP_REQUIRE_DATA=1`` (as in CI).
"""

import os
from pathlib import Path

import pytest


def _data_dir(variable: str, title: str) -> Path:
    """The directory named by ``variable``; fails, not skips, if FASTMLP_REQUIRE_DATA=1."""
    value = os.environ.get(variable)
    if value and Path(value).is_dir():
        return Path(value)
    message = f"real {title} not found: {variable}={value!r} is not a directory"
    if os.environ.get("FASTMLP_REQUIRE_DATA") == "1":
        pytest.fail(message + " and FASTMLP_REQUIRE_DATA=1")
    pytest.skip(message)


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Leave conftest.py files out of --doctest-modules: they hold fixtures, not doctests.

    Collected as modules, tests/conftest.py and bench/conftest.py would both be
    imported by the name 'conftest', and the second would fail as a mismatch.
    None, not False, for every other file: the hook takes the first answer.
    """
    return True if collection_path.name == "conftest.py" else None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return _data_dir("FASTMLP_DATA", "MNIST")


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    return _data_dir("FASTMLP_FASHION_MNIST_DATA", "Fashion-MNIST")


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Real MNIST as flat uint8 arrays: ((x_train, y_train), (x_test, y_test))."""
    from fastmlp.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(mnist_dir)
    return (x_train.reshape(-1, 784), y_train), (x_test.reshape(-1, 784), y_test)
