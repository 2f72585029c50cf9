"""Backends' fused ``train_epoch`` against the generic loop over the ``loop`` reference."""

import copy

import numpy as np
import pytest

from fastmlp import optim
from fastmlp.backends import available_backends, load_backend
from fastmlp.train import train_epoch

FUSED = [name for name in available_backends() if hasattr(load_backend(name), "train_epoch")]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "nesterov-wd": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "momentum": lambda: optim.SGD(0.05, momentum=0.8),
    "adam-l2": lambda: optim.Adam(1e-2, weight_decay=1e-3),
    "adamw": lambda: optim.AdamW(1e-2, weight_decay=0.1),
}
TOLERANCE = {np.float64: 1e-9, np.float32: 2e-4}


def setup(sizes, dtype, n=103, seed=0):
    rng = np.random.default_rng(seed)
    params = [((rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(dtype),
               (0.1 * rng.standard_normal(o)).astype(dtype)) for i, o in zip(sizes, sizes[1:])]
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n).astype(np.int64)
    return params, x, y


def state_of(optimizer):
    return [getattr(optimizer, name) for name in ("velocity", "m", "v")
            if getattr(optimizer, name, None) is not None]


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(12, 9, 4), (12, 10, 7, 8, 5)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("shuffled", [False, True])
def test_fused_epoch_equals_generic_steps(backend, dtype, sizes, name, shuffled):
    params, x, y = setup(sizes, dtype)
    order = np.random.default_rng(1).permutation(len(x)) if shuffled else None
    batch_size = 16  # 103 samples: six full batches and one of 7
    learning_rates = np.linspace(1.0, 0.5, 7) * OPTIMIZERS[name]().learning_rate
    results = {}
    for path in ("generic", "fused"):
        p = copy.deepcopy(params)
        opt = OPTIMIZERS[name]()
        opt.init_state(p)
        x_in, y_in = x.copy(), y.copy()
        for _ in range(2):  # two epochs: state carries over between calls
            if path == "fused":
                out = load_backend(backend).train_epoch(p, x_in, y_in, batch_size, opt,
                                                        learning_rates, order=order)
            else:
                out = train_epoch(load_backend("loop"), p, x_in, y_in, batch_size, opt,
                                  learning_rates, order=order)
        np.testing.assert_array_equal(x_in, x)
        np.testing.assert_array_equal(y_in, y)
        results[path] = (p, opt, out)
    p_gen, opt_gen, out_gen = results["generic"]
    p_fused, opt_fused, out_fused = results["fused"]
    tol = TOLERANCE[dtype]
    assert out_fused[2] == out_gen[2] == -1
    assert out_fused[1] == out_gen[1]
    assert out_fused[0] == pytest.approx(out_gen[0], rel=tol)
    for layer_fused, layer_gen in zip(p_fused, p_gen):
        for a, b in zip(layer_fused, layer_gen):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert getattr(opt_fused, "t", None) == getattr(opt_gen, "t", None)
    for state_fused, state_gen in zip(state_of(opt_fused), state_of(opt_gen)):
        for a, b in zip(state_fused, state_gen):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", FUSED)
def test_fused_epoch_stops_at_the_first_non_finite_loss(backend):
    params, x, y = setup((12, 9, 4), np.float64)
    results = {}
    for path in ("generic", "fused"):
        p = copy.deepcopy(params)
        opt = optim.SGD(1e30)
        lrs = np.full(7, 1e30)
        with np.errstate(all="ignore"):  # fit silences the overflow on the way to nan
            if path == "fused":
                out = load_backend(backend).train_epoch(p, x, y, 16, opt, lrs)
            else:
                out = train_epoch(load_backend("loop"), p, x, y, 16, opt, lrs)
        results[path] = p, out
    (p_gen, out_gen), (p_fused, out_fused) = results["generic"], results["fused"]
    assert out_fused[2] == out_gen[2] >= 1
    assert out_fused[:2] == pytest.approx(out_gen[:2])
    # Both stopped before the failing step's update: same (huge but finite) parameters.
    for layer_fused, layer_gen in zip(p_fused, p_gen):
        for a, b in zip(layer_fused, layer_gen):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("backend", FUSED)
def test_order_picks_the_batches(backend):
    # Training on x in the order of a permutation equals training on the permuted copy.
    params, x, y = setup((12, 9, 4), np.float64)
    order = np.random.default_rng(2).permutation(len(x))
    lrs = np.full(7, 0.1)
    p_order, p_copy = copy.deepcopy(params), copy.deepcopy(params)
    out_order = load_backend(backend).train_epoch(p_order, x, y, 16, optim.SGD(0.1), lrs,
                                                  order=order)
    out_copy = load_backend(backend).train_epoch(p_copy, x[order], y[order], 16, optim.SGD(0.1),
                                                 lrs)
    assert out_order == pytest.approx(out_copy, rel=1e-12)
    for layer_order, layer_copy in zip(p_order, p_copy):
        for a, b in zip(layer_order, layer_copy):
            np.testing.assert_allclose(a, b, rtol=1e-12)
