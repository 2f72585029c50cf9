"""Backend selection: set_backend, use_backend, FASTMLP_BACKEND, unknown names."""

import numpy as np
import pytest

import fastmlp
from fastmlp import backends


@pytest.fixture(autouse=True)
def restore_default(monkeypatch):
    monkeypatch.delenv("FASTMLP_BACKEND", raising=False)
    monkeypatch.setattr(backends, "_default_name", None)


def test_reference_and_numpy_backends_are_available():
    assert {"loop", "einsum", "matmul"} <= set(fastmlp.available_backends())


def test_default_is_numba():
    assert fastmlp.get_backend_name() == "numba"
    assert fastmlp.get_backend() is backends.load_backend("numba")


def test_set_backend_changes_the_default():
    fastmlp.set_backend("einsum")
    assert fastmlp.get_backend_name() == "einsum"
    assert fastmlp.get_backend().__name__ == "fastmlp.backends.einsum"


def test_use_backend_restores_the_previous_backend_even_on_error():
    fastmlp.set_backend("einsum")
    with pytest.raises(RuntimeError), fastmlp.use_backend("loop") as module:
        assert module is backends.load_backend("loop")
        assert fastmlp.get_backend_name() == "loop"
        with fastmlp.use_backend("matmul"):
            assert fastmlp.get_backend_name() == "matmul"
        assert fastmlp.get_backend_name() == "loop"
        raise RuntimeError
    assert fastmlp.get_backend_name() == "einsum"


def test_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("FASTMLP_BACKEND", "loop")
    assert fastmlp.get_backend_name() == "loop"
    fastmlp.set_backend("einsum")  # an explicit choice wins over the environment
    assert fastmlp.get_backend_name() == "einsum"


def test_unknown_environment_backend_names_the_variable(monkeypatch):
    monkeypatch.setenv("FASTMLP_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="FASTMLP_BACKEND: unknown backend 'tensorflow'"):
        fastmlp.get_backend()


@pytest.mark.parametrize("call", [fastmlp.set_backend, fastmlp.use_backend, backends.load_backend])
def test_unknown_backend_raises_and_names_the_valid_ones(call):
    with pytest.raises(ValueError, match=r"unknown backend 'torch'.*'loop', 'einsum', 'matmul'"):
        with_context = call("torch")
        with with_context:
            pass
    assert fastmlp.get_backend_name() == backends.DEFAULT_BACKEND  # unchanged


def test_dispatching_functions_follow_the_selected_backend():
    params = [(np.eye(3), np.zeros(3))]
    x = np.array([[1.0, 2.0, 3.0]])
    results = {}
    for name in fastmlp.available_backends():
        with fastmlp.use_backend(name):
            results[name] = fastmlp.forward(params, x)[0]
    for probs in results.values():
        np.testing.assert_allclose(probs, results["loop"])
