"""Parameters and optimizer state as views of one vector (``fastmlp._flat``): what a model
and the optimizers create, what a fused epoch updates in place, and what still works when
arrays are not flat."""

import copy
import pickle

import numpy as np
import pytest

import fastmlp
from fastmlp import optim
from fastmlp._flat import base_vector, flat_copy, flat_params, flat_views
from fastmlp.backends import load_backend


def arrays_of(params):
    return [array for layer in params for array in layer]


def test_a_new_model_and_a_loaded_one_hold_their_parameters_in_one_vector(tmp_path):
    model = fastmlp.MLP((6, 5, 3), seed=0)
    vector = base_vector(arrays_of(model.params))
    assert vector is not None and vector.shape == (6 * 5 + 5 + 5 * 3 + 3,)
    assert vector.dtype == np.float32
    model.save(tmp_path / "m.npz")
    loaded = fastmlp.MLP.load(tmp_path / "m.npz")
    assert base_vector(arrays_of(loaded.params)) is not None
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert base_vector(arrays_of(copied.params)) is not None
        for array, copied_array in zip(arrays_of(model.params), arrays_of(copied.params)):
            np.testing.assert_array_equal(array, copied_array)
            assert not np.shares_memory(array, copied_array)


def test_optimizer_state_is_flat_too():
    model = fastmlp.MLP((6, 5, 3), seed=0)
    adam, sgd = optim.Adam(), optim.SGD(momentum=0.9)
    adam.init_state(model.params)
    sgd.init_state(model.params)
    for state in (adam.m, adam.v, sgd.velocity):
        assert base_vector(state) is not None
        assert [a.shape for a in state] == [a.shape for a in arrays_of(model.params)]


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_the_fused_epoch_updates_flat_parameters_in_place_and_copies_others(name, monkeypatch):
    from fastmlp.backends.numba import _fused

    handed = []
    real = _fused._vector
    monkeypatch.setattr(_fused, "_vector", lambda *args: handed.append(real(*args)) or handed[-1])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 6)).astype(np.float32), rng.integers(0, 3, 200)
    model = fastmlp.MLP((6, 5, 3), seed=0)
    loose = [(W.copy(), b.copy()) for W, b in model.params]  # not views of one vector
    assert base_vector(arrays_of(loose)) is None
    numba_backend = load_backend("numba")
    results = []
    for params in (model.params, loose):
        opt = optim.make_optimizer(name, 0.05)
        opt.init_state(params)
        before = [a.ctypes.data for a in arrays_of(params)]
        results.append(numba_backend.train_epoch(params, x, y, 32, opt, np.full(7, 0.05)))
        assert [a.ctypes.data for a in arrays_of(params)] == before
    # the model's vector and the optimizer's went to the kernel as they are; the loose
    # arrays as packed copies
    flat_run, loose_run = handed[:len(handed) // 2], handed[len(handed) // 2:]
    assert flat_run[0] is base_vector(arrays_of(model.params))
    assert all(base_vector(arrays_of(loose)) is not v for v in loose_run)
    assert results[0] == results[1]
    for a, b in zip(arrays_of(model.params), arrays_of(loose)):
        np.testing.assert_array_equal(a, b)  # in place or copied back: the same training


def test_fit_makes_assigned_parameters_flat_once():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 6)), rng.integers(0, 3, 64)
    model = fastmlp.MLP((6, 5, 3), seed=0)
    model.params = [(W.copy(), b.copy()) for W, b in model.params]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert base_vector(arrays_of(model.params)) is not None


def test_flat_helpers():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(2.0)
    views = flat_copy([a, b])
    assert base_vector(views).tolist() == [0, 1, 2, 3, 4, 5, 0, 1]
    assert base_vector(views[:1]) is None  # does not fill its vector
    assert flat_params([(views[0], views[1])])[0][0] is views[0]  # already flat: kept
    with pytest.raises(ValueError, match="do not fill a vector of 7"):
        flat_views(np.zeros(7), [(2, 3)])
