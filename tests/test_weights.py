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
from fastmlp.steps import Batches, ComposedSteps
from fastmlp.train import training_weights

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


# --- fit -----------------------------------------------------------------------------------

def train_pair(backend, dtype, x, y, name, weights, epochs=2, **kwargs):
    """Two models from one seed: one fit with ``weights``, one on the rows repeated."""
    repeats = weights.astype(int)
    models = [fastmlp.MLP((x.shape[1], 10, 3), dtype=dtype, seed=0) for _ in range(2)]
    with fastmlp.use_backend(backend):
        weighted = models[0].fit(x, y, epochs=epochs, batch_size=10_000,
                                 optimizer=OPTIMIZERS[name](), schedule="constant",
                                 sample_weight=weights, **kwargs)
        repeated = models[1].fit(x.repeat(repeats, axis=0), y.repeat(repeats), epochs=epochs,
                                 batch_size=10_000, optimizer=OPTIMIZERS[name](),
                                 schedule="constant", **kwargs)
    return models, (weighted, repeated)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("pixels", [True, False], ids=["uint8", "float"])
def test_full_batch_steps_with_integer_weights_equal_the_rows_repeated(backend, dtype, name,
                                                                        pixels, small_images):
    # whole-batch steps (batch_size > n) and the scaler fitted with the weights
    images, y = small_images(60, 0)
    x = images.reshape(60, -1)
    if not pixels:
        x = x / 255.0 + np.random.default_rng(0).standard_normal(x.shape) * 0.1
    counts = weights_for(60, integer=True)
    (weighted, repeated), (history, history_repeated) = train_pair(backend, dtype, x, y, name,
                                                                   counts)
    if pixels:  # integer data and weights: the scaler's statistics are exact, so equal
        assert (weighted.scaler.mean, weighted.scaler.std) == (repeated.scaler.mean,
                                                               repeated.scaler.std)
    assert_layers_close(weighted.params, repeated.params, dtype)
    np.testing.assert_allclose(history.loss, history_repeated.loss, rtol=TOLERANCE[dtype][0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_with_weights_of_one_gives_the_unweighted_parameters(backend, dtype, small_images):
    images, y = small_images(90, 0)
    x = images.reshape(90, -1)
    models = [fastmlp.MLP((64, 10, 3), dtype=dtype, seed=0) for _ in range(2)]
    with fastmlp.use_backend(backend):
        history = models[0].fit(x, y, epochs=2, batch_size=16, sample_weight=np.ones(90))
        want = models[1].fit(x, y, epochs=2, batch_size=16)
    assert_layers_equal(models[0].params, models[1].params)
    if backend == "numba":  # the fused epoch sums 1 * loss[i] where it summed loss[i]
        assert history.loss == want.loss
    else:  # ComposedSteps: w . loss in float64 where it took the mean (in float32 for float32)
        np.testing.assert_allclose(history.loss, want.loss, rtol=1e-12 if dtype == np.float64
                                   else 1e-6)
    assert history.train_accuracy == want.train_accuracy


def test_history_loss_is_the_weighted_mean_and_accuracy_the_unweighted_fraction():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    weights = weights_for(50)
    model = fastmlp.MLP((4, 6, 3), seed=0)
    before = copy.deepcopy(model)
    before.scaler.fit(x, sample_weight=weights)
    probs = before.predict_proba(x)
    with fastmlp.use_backend("matmul"):  # one step, so the loss is that of the starting model
        history = model.fit(x, y, epochs=1, batch_size=64, sample_weight=weights)
    assert history.loss[0] == pytest.approx(fastmlp.cross_entropy(probs, y, weights), rel=1e-5)
    assert history.train_accuracy[0] == np.mean(probs.argmax(axis=1) == y)


def test_progress_bar_with_weights_trains_bit_for_bit_the_same(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 4)), rng.integers(0, 3, 300)
    weights = weights_for(300)
    models = [fastmlp.MLP((4, 6, 3), seed=0) for _ in range(2)]
    histories = [model.fit(x, y, epochs=2, batch_size=16, sample_weight=weights, verbose=verbose)
                 for model, verbose in zip(models, (0, 2))]
    assert_layers_equal(models[0].params, models[1].params)
    assert histories[0].loss == pytest.approx(histories[1].loss, rel=1e-12)


# --- class weights ---------------------------------------------------------------------------

def test_balanced_class_weights_are_scikit_learns():
    compute_class_weight = pytest.importorskip("sklearn.utils.class_weight").compute_class_weight
    y = np.array([0, 0, 0, 0, 1, 2, 2, 0, 1, 0])
    classes = np.arange(3)
    np.testing.assert_allclose(training_weights(y, 3, class_weight="balanced"),
                               compute_class_weight("balanced", classes=classes, y=y)[y],
                               rtol=1e-15)
    sample_weight = weights_for(10) + 0.5
    np.testing.assert_allclose(
        training_weights(y, 3, sample_weight, "balanced"),
        sample_weight * compute_class_weight("balanced", classes=classes, y=y,
                                             sample_weight=sample_weight)[y], rtol=1e-15)
    # a class the model has but y lacks is not counted: the 3 present weigh the same in all
    weights = training_weights(y, 5, class_weight="balanced")
    np.testing.assert_allclose(np.bincount(y, weights), [10 / 3] * 3)


def test_class_weight_dict_and_its_product_with_sample_weight():
    y = np.array([0, 1, 2, 1])
    np.testing.assert_array_equal(training_weights(y, 3, class_weight={1: 2.5}), [1, 2.5, 1, 2.5])
    np.testing.assert_array_equal(training_weights(y, 3, [1.0, 2.0, 3.0, 0.0], {1: 2.5, 2: 0}),
                                  [1.0, 5.0, 0.0, 0.0])
    assert training_weights(y, 3) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_with_class_weight_equals_fit_with_the_sample_weights(backend, small_images):
    images, y = small_images(60, 0)
    y[:30] = 0  # classes of 40, 10 and 10 samples
    x = images.reshape(60, -1)
    sample_weight = weights_for(60) + 0.25
    counts, weighted_counts = np.bincount(y), np.bincount(y, sample_weight)
    cases = [("balanced", None, (60 / (3 * counts))[y]),
             ("balanced", sample_weight,
              sample_weight * (sample_weight.sum() / (3 * weighted_counts))[y]),
             ({0: 3.0, 2: 0.5}, None, np.array([3.0, 1.0, 0.5])[y]),
             ({0: 3.0, 2: 0.5}, sample_weight, sample_weight * np.array([3.0, 1.0, 0.5])[y])]
    for class_weight, given, want in cases:
        models = [fastmlp.MLP((64, 10, 3), seed=0) for _ in range(2)]
        with fastmlp.use_backend(backend):
            history = models[0].fit(x, y, epochs=2, batch_size=16, sample_weight=given,
                                    class_weight=class_weight)
            history_want = models[1].fit(x, y, epochs=2, batch_size=16, sample_weight=want)
        assert_layers_close(models[0].params, models[1].params, np.float32)
        np.testing.assert_allclose(history.loss, history_want.loss, rtol=1e-6)


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_weight, error, message", [
    (np.ones((10, 2)), ValueError,
     r"sample_weight must be 1-D \(n_samples,\), got shape \(10, 2\)"),
    (np.ones(9), ValueError, "sample_weight has 9 weights but x has 10 samples"),
    (np.r_[np.ones(3), -1.0, np.ones(6)], ValueError,
     r"sample_weight has a negative weight \(-1.0 at sample 3\); weights must be >= 0"),
    (np.r_[np.ones(9), np.nan], ValueError, "sample_weight contains NaN; weights must be finite"),
    (np.r_[np.ones(9), np.inf], ValueError, "sample_weight contains inf; weights must be finite"),
    (np.zeros(10), ValueError, "sample_weight is zero for every sample"),
    (np.array(["1"] * 10), TypeError, "sample_weight must hold real numbers, got dtype <U1"),
])
def test_fit_rejects_bad_sample_weights_naming_the_problem(sample_weight, error, message):
    model = fastmlp.MLP((4, 3), seed=0)
    x, y = np.random.default_rng(0).standard_normal((10, 4)), np.arange(10) % 3
    with pytest.raises(error, match=message):
        model.fit(x, y, epochs=1, sample_weight=sample_weight)
    assert not model.scaler.fitted  # rejected before anything changed


@pytest.mark.parametrize("class_weight, message", [
    ({3: 1.0}, r"class_weight has class 3, which is not a class of the model: classes are "
               r"0 \.\. 2"),
    ({"a": 1.0}, "class_weight has class 'a', which is not a class of the model"),
    ({1: -2.0}, r"class_weight\[1\] is -2.0; class weights must be finite numbers >= 0"),
    ({1: np.nan}, r"class_weight\[1\] is nan; class weights must be finite numbers >= 0"),
    ("balance", "class_weight must be None, 'balanced' or a dict mapping class indices to "
                "weights, got 'balance'"),
    ({0: 0, 1: 0, 2: 0}, r"the weights \(sample_weight times class_weight\) are zero for "
                         "every sample"),
])
def test_fit_rejects_bad_class_weights_naming_the_problem(class_weight, message):
    model = fastmlp.MLP((4, 3), seed=0)
    x, y = np.random.default_rng(0).standard_normal((10, 4)), np.arange(10) % 3
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, class_weight=class_weight)


# --- the input scaler ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_scaler_with_integer_weights_equals_the_rows_repeated(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6)).astype(dtype)
    counts = weights_for(40, integer=True)
    weighted = InputScaler().fit(x, sample_weight=counts)
    repeated = InputScaler().fit(x.repeat(counts.astype(int), axis=0))
    assert (weighted.mean, weighted.std) == (repeated.mean, repeated.std)  # exact sums, both


@pytest.mark.parametrize("pixels", [False, True], ids=["float", "uint8"])
def test_scaler_with_real_weights_is_the_weighted_mean_and_std(pixels):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6)).astype(np.uint8) if pixels else (
        rng.standard_normal((40, 6)) * 3 + 1)
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


def test_imbalanced_mnist_script_prints_its_tables(mnist_dir, capsys, bench_script):
    script = bench_script("imbalanced_mnist.py")
    reports = script.main(["--train-size", "3000", "--epochs", "2", "--seeds", "0",
                           "--data-dir", str(mnist_dir)])
    assert list(reports) == [(0, "unweighted"), (0, "balanced")]
    assert all(report.accuracy > 0.6 for report in reports.values())
    # 28 nines among 2,741 images, 2 epochs: unweighted, the net barely learns them
    # (10 % recall here), balanced it does (74 %)
    recall = {name: report.recall[9] for (_, name), report in reports.items()}
    assert recall["balanced"] > recall["unweighted"] + 0.3
    out = capsys.readouterr().out
    assert "MNIST, 2,741 training images (28 of class 9, 261-339 of each other)" in out
    assert "| seed | class_weight | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |" in out
    assert "| 0 | balanced |" in out and "| seed | class_weight | recall of 9 |" in out
