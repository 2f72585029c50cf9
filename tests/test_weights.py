"""Sample and class weights: every backend's weighted backward, the fused epoch, fit, the scaler.

The loss of a weighted batch is its weighted mean ``sum_i w[i] loss[i] / sum_i
w[i]`` (scikit-learn's ``MLPClassifier``). Two definitions it must meet: an
integer weight counts a sample that many times (one full-batch step equals a
step on the rows repeated), and the ``loop`` backend is the reference every
other backend's weighted gradient is compared with.
"""

import copy

import numpy as np
import pytest

import fastmlp
from fastmlp import optim
from fastmlp.backends import available_backends, load_backend, weight_total
from fastmlp.preprocessing import InputScaler
from fastmlp.train import Batches, ComposedSteps

BACKENDS = available_backends()
DTYPES = [np.float32, np.float64]
# (rtol, atol relative to the largest magnitude), as in test_backends
TOLERANCE = {np.float64: (1e-7, 1e-12), np.float32: (1e-4, 1e-5)}
SIZES = (12, 9, 7, 4)
OPTIMIZERS = {"sgd": lambda: optim.SGD(0.1), "adam": lambda: optim.Adam(1e-2),
              "momentum": lambda: optim.SGD(0.05, momentum=0.9, weight_decay=1e-3),
              "adamw": lambda: optim.AdamW(1e-2, weight_decay=0.1)}
needs_numba = pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")


def assert_close(actual, desired, dtype, err_msg=""):
    rtol, atol = TOLERANCE[dtype]
    scale = float(np.abs(desired).max(initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)


def assert_layers_close(actual, desired, dtype):
    for l, (got, want) in enumerate(zip(actual, desired, strict=True)):
        for name, g, w in zip(("W", "b"), got, want):
            assert g.dtype == dtype, f"layer {l} {name} has dtype {g.dtype}"
            assert_close(g, w, dtype, f"layer {l} {name}")


def assert_layers_equal(actual, desired):
    for got, want in zip(actual, desired, strict=True):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def weights_for(n, seed=2, integer=False):
    """``n`` weights with some zeros: integers 0-3, or reals in [0, 3)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 4, n).astype(np.float64) if integer else rng.uniform(0, 3, n)
    weights[::5] = 0
    return weights


# --- the weighted backward pass --------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_backward_equals_the_loop_reference(backend, dtype, random_problem):
    params, x, y = random_problem(SIZES, 37, dtype)
    weights = weights_for(37)
    reference = load_backend("loop")
    _, want_cache = reference.forward(params, x)
    _, cache = load_backend(backend).forward(params, x)
    saved = weights.copy()
    grads = load_backend(backend).backward(params, cache, y, weights)
    np.testing.assert_array_equal(weights, saved)  # read, not written
    assert_layers_close(grads, reference.backward(params, want_cache, y, weights), dtype)


def test_loop_weighted_backward_is_the_gradient_of_the_weighted_mean_loss(random_problem):
    # central differences of fastmlp.cross_entropy(..., sample_weight), eps 1e-5 in float64
    params, x, y = random_problem(SIZES, 11, np.float64)
    weights = weights_for(11)
    loop = load_backend("loop")
    _, cache = loop.forward(params, x)
    grads = loop.backward(params, cache, y, weights)
    rng = np.random.default_rng(3)
    eps = 1e-5
    for l, (W, b) in enumerate(params):
        for array, grad in ((W, grads[l][0]), (b, grads[l][1])):
            for index in [tuple(rng.integers(0, s) for s in array.shape) for _ in range(4)]:
                saved = array[index]
                losses = []
                for step in (eps, -eps):
                    array[index] = saved + step
                    losses.append(fastmlp.cross_entropy(loop.forward(params, x)[0], y, weights))
                array[index] = saved
                numeric = (losses[0] - losses[1]) / (2 * eps)
                np.testing.assert_allclose(grad[index], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_weights_in_backward_equal_the_rows_repeated(backend, dtype, random_problem):
    params, x, y = random_problem(SIZES, 23, dtype)
    counts = weights_for(23, integer=True)
    module = load_backend(backend)
    _, cache = module.forward(params, x)
    repeats = counts.astype(int)
    _, cache_repeated = module.forward(params, x.repeat(repeats, axis=0))
    assert_layers_close(module.backward(params, cache, y, counts),
                        module.backward(params, cache_repeated, y.repeat(repeats)), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_of_one_in_backward_give_the_unweighted_bits(backend, dtype, random_problem):
    params, x, y = random_problem(SIZES, 37, dtype)
    module = load_backend(backend)
    _, cache = module.forward(params, x)
    assert_layers_equal(module.backward(params, cache, y, np.ones(37)),
                        module.backward(params, cache, y))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_batch_of_zero_total_weight_has_a_zero_gradient(backend, dtype, random_problem):
    params, x, y = random_problem(SIZES, 9, dtype)
    module = load_backend(backend)
    _, cache = module.forward(params, x)
    for dW, db in module.backward(params, cache, y, np.zeros(9)):
        np.testing.assert_array_equal(dW, 0)
        np.testing.assert_array_equal(db, 0)


def test_weight_total_is_the_sum_or_1_for_all_zeros():
    assert weight_total(np.array([0.5, 0.0, 2.0])) == 2.5
    assert weight_total(np.zeros(4)) == 1.0


def test_public_backward_and_cross_entropy_take_weights(random_problem):
    params, x, y = random_problem(SIZES, 6, np.float64)
    weights = [1.0, 0.0, 2.0, 3.0, 0.5, 1.0]
    with fastmlp.use_backend("loop"):
        probs, cache = fastmlp.forward(params, x)
        grads = fastmlp.backward(params, cache, y, sample_weight=weights)
    assert_layers_equal(grads, load_backend("loop").backward(params, cache, y, np.array(weights)))
    losses = -np.log(probs[np.arange(6), y])
    assert fastmlp.cross_entropy(probs, y, weights) == pytest.approx(
        np.dot(weights, losses) / sum(weights), rel=1e-12)
    assert fastmlp.cross_entropy(probs, y, np.ones(6)) == pytest.approx(
        fastmlp.cross_entropy(probs, y), rel=1e-12)
    assert fastmlp.cross_entropy(probs, y, np.zeros(6)) == 0.0
    with pytest.raises(ValueError, match="sample_weight has 2 weights but x has 6 samples"):
        fastmlp.backward(params, cache, y, sample_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"negative weight \(-1.0 at sample 1\)"):
        fastmlp.backward(params, cache, y, sample_weight=[1, -1, 1, 1, 1, 1])


# --- runs of steps: every backend's run_steps and the numba fused epoch -----------------------

def run_steps(backend, params, x, y, weights, optimizer, batch_size=8, order=None):
    steps = -(-len(x if order is None else order) // batch_size)
    batches = Batches(x, y, order, batch_size, None, None, weights)
    return load_backend(backend).run_steps(params, batches, optimizer, np.full(steps, 0.05))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "momentum", "adamw"])
def test_weighted_run_of_steps_equals_the_loop_reference(backend, dtype, name, random_problem):
    # batch 2 (rows 8-15) weighs 0: a step with a zero gradient, on every backend alike
    params, x, y = random_problem(SIZES, 37, dtype)
    weights = weights_for(37)
    weights[8:16] = 0
    want_params, want_opt = copy.deepcopy(params), OPTIMIZERS[name]()
    want = run_steps("loop", want_params, x, y, weights, want_opt)
    opt = OPTIMIZERS[name]()
    done = run_steps(backend, params, x, y, weights, opt)
    assert_layers_close(params, want_params, dtype)
    assert done.correct == want.correct and done.failed_step == want.failed_step == -1
    assert done.loss_sum == pytest.approx(want.loss_sum, rel=TOLERANCE[dtype][0])
    assert getattr(opt, "t", None) == getattr(want_opt, "t", None)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("sizes", [SIZES, (784, 70, 10)])
def test_fused_epoch_with_weights_equals_numba_composed_steps(dtype, name, sizes,
                                                              random_problem):
    numba = load_backend("numba")
    params, x, y = random_problem(sizes, 53, dtype)
    weights = weights_for(53)
    order = np.random.default_rng(5).permutation(53)
    composed_params, composed_opt = copy.deepcopy(params), OPTIMIZERS[name]()
    batches = Batches(x, y, order, 16, None, None, weights)
    want = ComposedSteps(numba.forward, numba.backward)(composed_params, batches, composed_opt,
                                                         np.full(4, 0.05))
    opt = OPTIMIZERS[name]()
    done = numba.run_steps(params, batches, opt, np.full(4, 0.05))
    assert_layers_close(params, composed_params, dtype)
    assert done.correct == want.correct
    assert done.loss_sum == pytest.approx(want.loss_sum, rel=1e-6)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fused_epoch_with_weights_of_one_gives_the_unweighted_bits(dtype, name, random_problem):
    params, x, y = random_problem(SIZES, 37, dtype)
    unweighted_params = copy.deepcopy(params)
    unweighted = run_steps("numba", unweighted_params, x, y, None, OPTIMIZERS[name]())
    done = run_steps("numba", params, x, y, np.ones(37), OPTIMIZERS[name]())
    assert_layers_equal(params, unweighted_params)
    assert done == unweighted  # the loss sum too: sum_i 1 * loss[i] in the same order


@needs_numba
def test_the_fused_epoch_compiles_once_for_weighted_and_unweighted_epochs(random_problem):
    from fastmlp.backends.numba import _kernels

    numba = load_backend("numba")
    params, x, y = random_problem(SIZES, 20, np.float32)
    run_steps("numba", params, x, y, None, optim.SGD(0.1))
    cache = numba.forward(params, x)[1]
    numba.backward(params, cache, y)
    kernels = (_kernels.train_epoch_worker, _kernels.output_delta)
    signatures = [list(kernel.signatures) for kernel in kernels]
    run_steps("numba", params, x, y, weights_for(20), optim.SGD(0.1))
    numba.backward(params, cache, y, weights_for(20))
    assert [list(kernel.signatures) for kernel in kernels] == signatures


@needs_numba
def test_numba_train_epoch_checks_the_weights(random_problem):
    params, x, y = random_problem(SIZES, 10, np.float64)
    numba = load_backend("numba")
    with pytest.raises(ValueError, match="sample_weight has 9 weights but x has 10 samples"):
        numba.train_epoch(params, x, y, 4, optim.SGD(0.1), np.full(3, 0.1),
                          sample_weight=np.ones(9))
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        numba.train_epoch(params, x, y, 4, optim.SGD(0.1), np.full(3, 0.1),
                          sample_weight=np.full(10, np.nan))


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name in ("matmul", "numba")])
def test_backends_train_epoch_takes_weights_as_the_generic_one(backend, random_problem):
    params, x, y = random_problem(SIZES, 30, np.float64)
    weights = weights_for(30)
    want_params = copy.deepcopy(params)
    want = fastmlp.train.train_epoch(load_backend("loop"), want_params, x, y, 8,
                                     optim.Adam(1e-2), np.full(4, 0.01), sample_weight=weights)
    done = load_backend(backend).train_epoch(params, x, y, 8, optim.Adam(1e-2),
                                             np.full(4, 0.01), sample_weight=weights)
    assert_layers_close(params, want_params, np.float64)
    assert done.loss_sum == pytest.approx(want.loss_sum, rel=1e-9)


# --- the input scaler ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_scaler_with_integer_weights_equals_the_rows_repeated(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6)).astype(dtype)
    counts = weights_for(40, integer=True)
    weighted = InputScaler().fit(x, sample_weight=counts)
    repeated = InputScaler().fit(x.repeat(counts.astype(int), axis=0))
    assert (weighted.mean, weighted.std) == (repeated.mean, repeated.std)  # exact sums, both


def test_scaler_with_real_weights_is_the_weighted_mean_and_std():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)) * 3 + 1
    weights = weights_for(40)
    scaler = InputScaler().fit(x, sample_weight=weights)
    values, value_weights = x.ravel(), np.repeat(weights, 6)
    mean = np.average(values, weights=value_weights)
    std = np.sqrt(np.average((values - mean) ** 2, weights=value_weights))
    assert scaler.mean == pytest.approx(mean, rel=1e-14)
    assert scaler.std == pytest.approx(std, rel=1e-14)
    ones = InputScaler().fit(x, sample_weight=np.ones(40))
    plain = InputScaler().fit(x)
    assert (ones.mean, ones.std) == pytest.approx((plain.mean, plain.std), rel=1e-14)


def test_scaler_rejects_bad_weights():
    with pytest.raises(ValueError, match="sample_weight has 2 weights but x has 3 samples"):
        InputScaler().fit(np.ones((3, 2)), sample_weight=[1, 1])
    with pytest.raises(ValueError, match="sample_weight is zero for every sample"):
        InputScaler().fit(np.ones((3, 2)), sample_weight=[0, 0, 0])
