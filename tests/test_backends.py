"""Every backend against the ``loop`` reference, and gradients against finite differences."""

import numpy as np
import pytest

import fastmlp
from fastmlp.backends import available_backends, load_backend

BACKENDS = available_backends()
FAST_BACKENDS = [name for name in BACKENDS if name != "loop"]
# (rtol, atol relative to the largest magnitude): sums of hundreds of terms cancel,
# so entries near zero carry the absolute rounding error of the whole array.
TOLERANCE = {np.float64: (1e-7, 1e-12), np.float32: (1e-4, 1e-5)}
SHAPES = {
    "one-hidden": (20, 16, 5),
    "two-hidden": (30, 24, 12, 10),
    "three-hidden": (17, 9, 33, 8, 4),
    "mnist": (784, 128, 128, 10),
}


def assert_close(actual, desired, dtype, err_msg=""):
    rtol, atol = TOLERANCE[dtype]
    scale = float(np.abs(desired).max(initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)


def assert_tree_close(actual, expected, dtype):
    assert len(actual) == len(expected)
    for l, (got, want) in enumerate(zip(actual, expected)):
        for name, g, w in zip(("dW", "db"), got, want):
            assert g.shape == w.shape, f"layer {l} {name}"
            assert g.dtype == dtype, f"layer {l} {name} has dtype {g.dtype}"
            assert_close(g, w, dtype, f"layer {l} {name}")


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("n", [1, 7, 256])
def test_forward_and_backward_agree_with_loop(backend, dtype, shape, n, random_params,
                                              random_batch):
    sizes = SHAPES[shape]
    params = random_params(sizes, dtype)
    x, y = random_batch(sizes, n, dtype)
    reference = load_backend("loop")
    module = load_backend(backend)

    want_probs, want_cache = reference.forward(params, x)
    probs, cache = module.forward(params, x)
    assert probs.shape == (n, sizes[-1])
    assert probs.dtype == dtype
    assert_close(probs, want_probs, dtype)
    assert len(cache) == len(want_cache) == len(sizes)
    for got, want in zip(cache, want_cache):
        assert_close(got, want, dtype)

    assert_tree_close(module.backward(params, cache, y), reference.backward(params, want_cache, y),
                      dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_sample_input(backend, dtype, random_params, random_batch):
    sizes = SHAPES["two-hidden"]
    params = random_params(sizes, dtype)
    x, y = random_batch(sizes, 3, dtype)
    module = load_backend(backend)
    batch_probs, batch_cache = load_backend("loop").forward(params, x[:1])

    probs, cache = module.forward(params, x[0])
    assert probs.shape == (sizes[-1],)
    assert_close(probs, batch_probs[0], dtype)
    assert_tree_close(module.backward(params, cache, y[0]),
                      load_backend("loop").backward(params, batch_cache, y[:1]), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_agrees_with_loop_and_sums_to_one(backend, dtype):
    rng = np.random.default_rng(3)
    z = (10 * rng.standard_normal((7, 10))).astype(dtype)
    module = load_backend(backend)
    for logits in (z, z[0]):
        probs = module.softmax(logits)
        assert probs.shape == logits.shape and probs.dtype == dtype
        assert_close(probs, load_backend("loop").softmax(logits), dtype)
        assert_close(probs.sum(axis=-1), np.ones(probs.shape[:-1]), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_of_huge_logits_is_finite(backend, dtype):
    # The notebook's uniform [-1, 1] initialisation gave logits around 1e4.
    z = np.array([[1e4, -1e4, 0.0, 2e4], [-3e4, -3e4, -3e4, -3e4]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = load_backend(backend).softmax(z)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(probs[0], [0, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(probs[1], 0.25, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_with_huge_logits_gives_finite_probabilities(backend, random_batch):
    sizes = (16, 8, 4)
    rng = np.random.default_rng(0)
    params = [(rng.uniform(-1, 1, (o, i)) * 500, np.zeros(o)) for i, o in zip(sizes, sizes[1:])]
    x, _ = random_batch(sizes, 5, np.float64)
    with np.errstate(over="raise", invalid="raise"):
        probs, _ = load_backend(backend).forward(params, x)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_do_not_modify_their_inputs(backend, random_params, random_batch):
    sizes = SHAPES["two-hidden"]
    params = random_params(sizes, np.float64)
    x, y = random_batch(sizes, 9, np.float64)
    z = x[:, :10].copy()
    saved = [(W.copy(), b.copy()) for W, b in params], x.copy(), y.copy(), z.copy()
    module = load_backend(backend)
    probs, cache = module.forward(params, x)
    cache_saved = [a.copy() for a in cache]
    module.backward(params, cache, y)
    module.softmax(z)
    for (W, b), (W0, b0) in zip(params, saved[0]):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(x, saved[1])
    np.testing.assert_array_equal(y, saved[2])
    np.testing.assert_array_equal(z, saved[3])
    for a, a0 in zip(cache, cache_saved):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_gradients_are_c_contiguous_and_shaped_like_params(backend, shape, random_params,
                                                           random_batch):
    # The optimizer's in-place update runs element-wise over dW and takes about twice as
    # long on a transposed view.
    sizes = SHAPES[shape]
    params = random_params(sizes, np.float32)
    x, y = random_batch(sizes, 7, np.float32)
    module = load_backend(backend)
    _, cache = module.forward(params, x)
    for (dW, db), (W, b) in zip(module.backward(params, cache, y), params):
        assert dW.shape == W.shape and db.shape == b.shape
        assert dW.dtype == W.dtype and db.dtype == b.dtype
        assert dW.flags.c_contiguous and db.flags.c_contiguous


def loss_of(params, x, y):
    probs, _ = load_backend("loop").forward(params, x)
    return fastmlp.cross_entropy(probs, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend, random_params, random_batch):
    sizes = (6, 5, 4, 3)
    params = random_params(sizes, np.float64, seed=4)
    x, y = random_batch(sizes, 8, np.float64, seed=5)
    _, cache = load_backend(backend).forward(params, x)
    grads = load_backend(backend).backward(params, cache, y)
    eps = 1e-5
    for l, layer in enumerate(params):
        for k, (p, g) in enumerate(zip(layer, grads[l])):
            numeric = np.zeros_like(p)
            for index in np.ndindex(p.shape):
                saved = p[index]
                p[index] = saved + eps
                up = loss_of(params, x, y)
                p[index] = saved - eps
                down = loss_of(params, x, y)
                p[index] = saved
                numeric[index] = (up - down) / (2 * eps)
            np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8,
                                       err_msg=f"layer {l} {'Wb'[k]}")


def test_cross_entropy_of_zero_probability_is_finite():
    for dtype in (np.float32, np.float64):
        probs = np.array([[0.0, 1.0], [0.5, 0.5]], dtype)
        loss = fastmlp.cross_entropy(probs, [0, 1])
        assert np.isfinite(loss)
        assert loss > 30  # -log(tiny) / 2, far above any real loss
    assert fastmlp.cross_entropy(np.array([[0.25, 0.75]]), [1]) == pytest.approx(-np.log(0.75))


def test_log_softmax_is_stable_and_matches_log_of_softmax():
    z = np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = fastmlp.log_softmax(z)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], [0.0, -1e4, -2e4])
    np.testing.assert_allclose(out[1], np.log(load_backend("loop").softmax(z[1])))
