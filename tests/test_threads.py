"""Every public entry point gives the main thread's answer in any thread, however many run at once.

Batches are chosen below and above the sizes at which the numba backend
splits a product across threads (``fastmlp.backends.numba.PARALLEL_WORK``
multiply-adds), with that threshold as shipped and lowered so that every
layer's product splits, and one sample goes through ``predict_one``. The
numba threading layers are process-wide, so each is tested in a subprocess.
"""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, use_backend

BACKENDS = fastmlp.available_backends()
SIZES = (784, 128, 128, 10)
# one raw sample (1-D), then batches of 1 to 2000 rows: with 784-128-128-10 and
# PARALLEL_WORK as shipped (32M) the numba backend splits a forward pass from 272
# rows (lowered to 50 000, from 1), and backward's first-layer products from 319
ROWS = [None, 1, 7, 200, 2000]
LOW_PARALLEL_WORK = 50_000


@pytest.fixture(params=["as shipped", "lowered"])
def parallel_work(request, monkeypatch):
    """Run with numba's split threshold as shipped, then lowered: every split is tested."""
    if request.param == "lowered" and "numba" in BACKENDS:
        from fastmlp.backends.numba import _api

        monkeypatch.setattr(_api, "PARALLEL_WORK", LOW_PARALLEL_WORK)
    return request.param


def trained_model(dtype, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2000, SIZES[0]), dtype=np.uint8)
    model = MLP(SIZES, dtype=dtype, seed=seed)
    model.scaler.fit(images)
    return model, images


def batches(images):
    return [images[0] if rows is None else images[:rows] for rows in ROWS]


def predictions(backend, model, inputs):
    with use_backend(backend):
        return [(model.predict_proba(x), model.predict(x)) for x in inputs]


def assert_same(results, want):
    for (probs, labels), (probs_want, labels_want) in zip(results, want, strict=True):
        np.testing.assert_array_equal(probs, probs_want)
        np.testing.assert_array_equal(labels, labels_want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predictions_are_the_same_bits_in_any_thread(backend, dtype, parallel_work):
    model, images = trained_model(dtype)
    inputs = batches(images)
    want = predictions(backend, model, inputs)
    with ThreadPoolExecutor(1) as pool:  # another thread, alone
        assert_same(pool.submit(predictions, backend, model, inputs).result(), want)
    with ThreadPoolExecutor(4) as pool:  # four at once, each input in several threads
        for result in pool.map(lambda _: predictions(backend, model, inputs), range(8)):
            assert_same(result, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_and_backward_are_the_same_bits_in_any_thread(backend, parallel_work):
    model, images = trained_model(np.float32)
    x = model.scaler.transform(images[:300], np.float32)
    y = np.arange(300) % 10

    def gradients():
        with use_backend(backend):
            probs, cache = fastmlp.forward(model.params, x)
            grads = fastmlp.backward(model.params, cache, y)
            return [probs] + [g for layer in grads for g in layer]

    want = gradients()
    with ThreadPoolExecutor(3) as pool:
        for result in pool.map(lambda _: gradients(), range(6)):
            for got, expected in zip(result, want, strict=True):
                np.testing.assert_array_equal(got, expected)


def fit_small(backend, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (600, 40), dtype=np.uint8)
    y = (x[:, 0] > 127).astype(int) + (x[:, 1] > 127)
    model = MLP((40, 32, 16, 3), dtype=dtype, seed=0)
    with use_backend(backend):
        history = model.fit(x, y, epochs=2, batch_size=64, optimizer="adamw")
    return history.loss, model.params


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name != "loop"])
def test_training_in_threads_gives_the_main_threads_model(backend):
    loss_want, params_want = fit_small(backend)
    with ThreadPoolExecutor(2) as pool:
        for loss, params in pool.map(lambda _: fit_small(backend), range(2)):
            assert loss == loss_want
            for layer, layer_want in zip(params, params_want):
                for a, b in zip(layer, layer_want):
                    np.testing.assert_array_equal(a, b)


def test_training_with_numba_leaves_other_backends_answers_alone():
    # numba once limited BLAS to one thread, process-wide, while it trained: the
    # matmul backend's products, rounded by BLAS's thread count, then changed.
    if "numba" not in BACKENDS:
        pytest.skip("numba is not installed")
    model, images = trained_model(np.float32)
    inputs = batches(images)
    want = predictions("matmul", model, inputs)
    with ThreadPoolExecutor(3) as pool:
        training = [pool.submit(fit_small, "numba") for _ in range(2)]
        for result in pool.map(lambda _: predictions("matmul", model, inputs), range(6)):
            assert_same(result, want)
        for future in training:
            future.result()


LAYER_SCRIPT = textwrap.dedent("""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import numba
    import numpy as np

    from fastmlp import MLP, use_backend

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2000, 784), dtype=np.uint8)
    model = MLP((784, 128, 128, 10), seed=0)
    model.scaler.fit(images)
    inputs = [images[0], images[:7], images[:200], images[:2000]]
    x, y = images[:600, :40], np.arange(600) % 3

    def work():
        with use_backend("numba"):
            small = MLP((40, 16, 3), seed=0)
            history = small.fit(x, y, epochs=1, batch_size=32)
            return [model.predict_proba(a) for a in inputs] + [history.loss[0]]

    want = work()
    with ThreadPoolExecutor(4) as pool:
        for result in pool.map(lambda _: work(), range(16)):
            for got, expected in zip(result, want):
                assert np.array_equal(got, expected), "a thread's result differs"
    print(numba.threading_layer(), "ok")
""")


@pytest.mark.parametrize("layer", ["omp", "workqueue", "tbb"])
def test_concurrent_predictions_and_training_under_each_threading_layer(layer):
    if "numba" not in BACKENDS:
        pytest.skip("numba is not installed")
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    result = subprocess.run([sys.executable, "-c", LAYER_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=600)
    unavailable = ("No threading layer could be loaded", "Intel TBB is required",
                   "is not available")
    if result.returncode != 0 and any(text in result.stderr for text in unavailable):
        pytest.skip(f"numba's {layer} threading layer is not available here")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [layer, "ok"]
