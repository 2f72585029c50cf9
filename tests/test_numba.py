"""The numba backend's fast paths: the fused epoch against the generic loop, and predict_one.

``test_backends.py`` already checks ``forward``, ``backward`` and ``softmax``
against the reference; these tests cover what only this backend has.
"""

import copy

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, optim
from fastmlp.backends import load_backend
from fastmlp.train import train_epoch as generic_epoch

numba = pytest.importorskip("numba")
backend = load_backend("numba")
matmul = load_backend("matmul")

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "nesterov-wd": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam-l2": lambda: optim.Adam(1e-2, weight_decay=1e-3),
    "adamw": lambda: optim.AdamW(1e-2, weight_decay=0.1),
}
SIZES = {"one-hidden": (12, 9, 4), "three-hidden": (12, 10, 7, 8, 5)}
TOLERANCE = {np.float64: 1e-9, np.float32: 2e-4}
THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})


def setup(sizes, dtype, n=101, seed=0):
    rng = np.random.default_rng(seed)
    params = [((rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(dtype),
               (0.1 * rng.standard_normal(o)).astype(dtype)) for i, o in zip(sizes, sizes[1:])]
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    return params, x, y


def state_of(optimizer):
    return [getattr(optimizer, name) for name in ("velocity", "m", "v")
            if getattr(optimizer, name, None) is not None]


def assert_same_training(got, want, dtype):
    """Same parameters, optimizer state and step counter after two runs."""
    (params, opt), (params_want, opt_want) = got, want
    tol = TOLERANCE[dtype]
    for layer, layer_want in zip(params, params_want):
        for a, b in zip(layer, layer_want):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert getattr(opt, "t", None) == getattr(opt_want, "t", None)
    for state, state_want in zip(state_of(opt), state_of(opt_want), strict=True):
        for a, b in zip(state, state_want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def run(path, params, optimizer, x, y, batch_size, learning_rates):
    if path == "fused":
        return backend.train_epoch(params, x, y, batch_size, optimizer, learning_rates)
    return generic_epoch(matmul, params, x, y, batch_size, optimizer, learning_rates)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", list(SIZES))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_epoch_equals_generic_matmul_epoch(name, shape, dtype, threads):
    params, x, y = setup(SIZES[shape], dtype)
    batch_size = 10  # 101 samples: ten full batches and one of a single sample
    learning_rates = np.linspace(1.0, 0.5, 11) * OPTIMIZERS[name]().learning_rate
    results = {}
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for path in ("generic", "fused"):
            p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
            opt.init_state(p)
            results[path] = run(path, p, opt, x, y, batch_size, learning_rates), (p, opt)
    finally:
        numba.set_num_threads(saved)
    (out, trained), (out_want, trained_want) = results["fused"], results["generic"]
    assert out[1:] == out_want[1:] == (out_want[1], -1)
    assert out[0] == pytest.approx(out_want[0], rel=TOLERANCE[dtype])
    assert_same_training(trained, trained_want, dtype)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_epoch_with_wide_layers_equals_generic_epoch(dtype, threads):
    # 784 and 70 inputs and batches of <= 50 rows take the hand-written a @ W.T;
    # the weight gradients of the first layer are split into row blocks
    params, x, y = setup((784, 70, 10), dtype, n=123)
    learning_rates = np.full(3, 0.05)
    results = {}
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for path in ("generic", "fused"):
            p, opt = copy.deepcopy(params), optim.Adam(1e-2)
            results[path] = run(path, p, opt, x, y, 50, learning_rates), (p, opt)
    finally:
        numba.set_num_threads(saved)
    (out, trained), (out_want, trained_want) = results["fused"], results["generic"]
    assert out[1:] == out_want[1:]
    assert out[0] == pytest.approx(out_want[0], rel=TOLERANCE[dtype])
    assert_same_training(trained, trained_want, dtype)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_batch_forward_in_row_chunks_equals_the_reference(dtype, threads):
    from threadpoolctl import threadpool_info

    from fastmlp.backends import numba as numba_backend

    n = numba_backend._CHUNKED_FORWARD_ROWS + 37  # chunks of unequal size
    params, x, _ = setup((30, 24, 12, 10), dtype, n=n)
    backend.forward(params, x)  # loads every thread pool involved
    blas_threads = [pool["num_threads"] for pool in threadpool_info()]
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        probs, cache = backend.forward(params, x)
    finally:
        numba.set_num_threads(saved)
    want, want_cache = load_backend("loop").forward(params, x)
    tol = TOLERANCE[dtype]
    for a, b in zip(cache, want_cache):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=tol)
    assert [pool["num_threads"] for pool in threadpool_info()] == blas_threads  # restored



def test_concurrent_large_forwards_restore_the_blas_thread_counts():
    # The single-threaded BLAS limit is process-wide; callers in several Python threads
    # share it, and the last one out restores what was there before the first came in.
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    from fastmlp.backends import numba as numba_backend

    params, x, _ = setup((30, 24, 10), np.float32, n=numba_backend._CHUNKED_FORWARD_ROWS * 2)
    want = backend.forward(params, x)[0]
    blas_threads = [pool["num_threads"] for pool in threadpool_info()]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: backend.forward(params, x)[0], range(40)))
    for probs in results:
        np.testing.assert_array_equal(probs, want)
    assert [pool["num_threads"] for pool in threadpool_info()] == blas_threads
    assert numba_backend._single_blas_users == 0

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 4, 7, 16])
@pytest.mark.parametrize("m", [1, 4, 10])
def test_small_matmul_t_equals_a_times_w_transposed(m, n, dtype):
    from fastmlp.backends.numba import _small_matmul_t

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, 100)).astype(dtype)
    W = rng.standard_normal((m, 100)).astype(dtype)
    out = np.full((n, m), np.nan, dtype)
    _small_matmul_t(a, W, out)
    np.testing.assert_allclose(out, a @ W.T, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("name", ["nesterov-wd", "adamw"])
def test_fused_and_generic_epochs_interleave(name):
    # fused then generic == generic twice: the state lives in the optimizer's own arrays
    params, x, y = setup(SIZES["one-hidden"], np.float64)
    learning_rates = np.full(11, OPTIMIZERS[name]().learning_rate)
    results = {}
    for first in ("fused", "generic"):
        p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
        run(first, p, opt, x, y, 10, learning_rates)
        run("generic", p, opt, x[::-1], y[::-1], 10, learning_rates)
        results[first] = p, opt
    assert_same_training(results["fused"], results["generic"], np.float64)


@pytest.mark.parametrize("name", ["nesterov-wd", "adamw"])
def test_divergence_stops_before_the_failing_update(name):
    # float32 weights of ~1e29 overflow the second forward pass to inf, then nan.
    params, x, y = setup(SIZES["one-hidden"], np.float32)
    learning_rates = np.full(11, 1e30)
    results = {}
    for path in ("generic", "fused"):
        p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
        with np.errstate(all="ignore"):
            results[path] = run(path, p, opt, x, y, 10, learning_rates), (p, opt)
    (out, (p, opt)), (out_want, (p_want, _)) = results["fused"], results["generic"]
    assert out[2] == out_want[2] == 1
    assert out[:2] == pytest.approx(out_want[:2], rel=1e-5)
    assert getattr(opt, "t", 1) == 1  # one update, the failing step's was skipped
    for layer, layer_want in zip(p, p_want):
        for a, b in zip(layer, layer_want):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=1e-5)


def test_batch_of_one_and_batches_smaller_than_the_thread_count():
    params, x, y = setup(SIZES["one-hidden"], np.float64, n=5)
    for batch_size in (1, 2, 5, 64):
        results = {}
        for path, x_in in (("generic", x), ("fused", np.asfortranarray(x))):
            p, opt = copy.deepcopy(params), optim.Adam(1e-2)
            out = run(path, p, opt, x_in, y, batch_size, np.full(5, 1e-2))
            results[path] = out, (p, opt)
        assert results["fused"][0][1:] == results["generic"][0][1:]
        assert results["fused"][0][0] == pytest.approx(results["generic"][0][0], rel=1e-9)
        assert_same_training(results["fused"][1], results["generic"][1], np.float64)


def test_fit_with_numba_matches_fit_with_matmul():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    runs = {}
    for name in ("matmul", "numba"):
        model = fastmlp.MLP((8, 16, 3), seed=0)
        with fastmlp.use_backend(name):
            history = model.fit(x, y, epochs=3, batch_size=32, seed=0)
        runs[name] = model, history
    (model, history), (model_want, history_want) = runs["numba"], runs["matmul"]
    np.testing.assert_allclose(history.loss, history_want.loss, rtol=1e-4)
    assert history.train_accuracy == pytest.approx(history_want.train_accuracy, abs=1 / 300)
    for layer, layer_want in zip(model.params, model_want.params):
        for a, b in zip(layer, layer_want):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_train_epoch_does_not_modify_its_inputs():
    params, x, y = setup(SIZES["one-hidden"], np.float32)
    learning_rates = np.full(11, 0.1)
    saved = x.copy(), y.copy(), learning_rates.copy()
    backend.train_epoch(params, x, y, 10, optim.SGD(0.1), learning_rates)
    for array, array_saved in zip((x, y, learning_rates), saved):
        np.testing.assert_array_equal(array, array_saved)


def test_unsupported_optimizer_or_dtype_falls_back_to_the_generic_loop():
    class Plain:
        learning_rate = 0.1

        def step(self, params, grads, learning_rate=None):
            raise AssertionError("train_epoch must not step an optimizer it does not know")

    class TweakedSGD(optim.SGD):  # may override step(), so it is not trusted
        pass

    params, x, y = setup(SIZES["one-hidden"], np.float32)
    saved = copy.deepcopy(params)
    lrs = np.full(11, 0.1)
    assert backend.train_epoch(params, x, y, 10, Plain(), lrs) is None
    assert backend.train_epoch(params, x, y, 10, TweakedSGD(0.1), lrs) is None
    assert backend.train_epoch(params, x.astype(np.float64), y, 10, optim.SGD(0.1), lrs) is None
    for layer, layer_saved in zip(params, saved):
        for a, b in zip(layer, layer_saved):
            np.testing.assert_array_equal(a, b)


def test_train_epoch_rejects_bad_labels_and_too_few_learning_rates():
    params, x, y = setup(SIZES["one-hidden"], np.float64)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        backend.train_epoch(params, x, np.full_like(y, 4), 10, optim.SGD(0.1), np.ones(11))
    with pytest.raises(ValueError, match="learning_rates needs one rate for each of the 11"):
        backend.train_epoch(params, x, y, 10, optim.SGD(0.1), np.ones(10))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(784, 128, 128, 10), (12, 9, 4), (12, 10, 7, 8, 5)])
def test_predict_one_equals_forward_of_a_batch_of_one(sizes, dtype):
    params, x, _ = setup(sizes, dtype, n=3)
    saved = copy.deepcopy(params), x.copy()
    for sample in (x[0], np.repeat(x[1], 2)[::2]):  # contiguous and strided
        probs = backend.predict_one(params, sample)
        assert probs.shape == (sizes[-1],) and probs.dtype == dtype
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(probs, matmul.forward(params, sample[None])[0][0],
                                   rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_array_equal(x, saved[1])
    for layer, layer_saved in zip(params, saved[0]):
        for a, b in zip(layer, layer_saved):
            np.testing.assert_array_equal(a, b)


def test_predict_one_rejects_batches_and_mismatched_shapes():
    params, x, _ = setup(SIZES["one-hidden"], np.float64)
    with pytest.raises(ValueError, match="one sample of shape"):
        backend.predict_one(params, x[:2])
    with pytest.raises(ValueError, match="layer shapes do not match"):
        backend.predict_one(params, x[0, :5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_one_scales_raw_pixels_like_the_model(dtype):
    model = MLP((784, 32, 10), dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 784), dtype=np.uint8)
    model.scaler.fit(images)
    scaled = model.scaler.transform(images[3], dtype)
    probs = backend.predict_one(model.params, images[3], *model.scaler.affine(np.uint8))
    assert probs.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(probs, matmul.forward(model.params, scaled[None])[0][0],
                               rtol=rtol, atol=rtol * 1e-2)
