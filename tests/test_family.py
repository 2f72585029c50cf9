"""The network family (``fastmlp.family``): every activation and output on every backend,
against finite differences and against the ``loop`` reference."""

import warnings

import numpy as np
import pytest

from fastmlp import family
from fastmlp.backends import load_backend
from fastmlp.exceptions import PerformanceWarning

# the backends that take activation= and output=
FAMILY_BACKENDS = ["loop", "einsum", "matmul", "numba"]
COMBINATIONS = [(activation, output) for activation in family.ACTIVATION_NAMES
                for output in family.OUTPUT_NAMES]
TOLERANCE = {np.float64: (1e-7, 1e-12), np.float32: (1e-4, 1e-5)}


def assert_close(actual, desired, dtype, err_msg=""):
    rtol, atol = TOLERANCE[dtype]
    scale = float(np.abs(desired).max(initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)


def problem(sizes, n, dtype, output, seed=0, labels=False):
    """Parameters, inputs and targets fit for ``output``: labels or a probability matrix for
    softmax, 0/1 labels for logistic, reals for identity, counts for exp."""
    rng = np.random.default_rng(seed)
    params = [((rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype),
               (0.1 * rng.standard_normal(n_out)).astype(dtype))
              for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    k = sizes[-1]
    if output == "softmax":
        if labels:
            return params, x, rng.integers(0, k, n)
        Y = rng.random((n, k))
        Y /= Y.sum(axis=1, keepdims=True)
    elif output == "logistic":
        Y = (rng.random((n, k)) < 0.5).astype(float)
    elif output == "identity":
        Y = rng.standard_normal((n, k))
    else:
        Y = rng.poisson(2.0, (n, k)).astype(float)
    return params, x, Y.astype(dtype)


def loss_of(params, x, y, activation, output, sample_weight=None):
    P, _ = load_backend("loop").forward(params, x, activation, output)
    return family.LOSSES[output](P, y, sample_weight)


def numeric_gradients(params, x, y, activation, output, sample_weight=None, eps=1e-5):
    grads = []
    for layer in params:
        pair = []
        for p in layer:
            numeric = np.zeros_like(p)
            for index in np.ndindex(p.shape):
                saved = p[index]
                p[index] = saved + eps
                up = loss_of(params, x, y, activation, output, sample_weight)
                p[index] = saved - eps
                down = loss_of(params, x, y, activation, output, sample_weight)
                p[index] = saved
                numeric[index] = (up - down) / (2 * eps)
            pair.append(numeric)
        grads.append(pair)
    return grads


@pytest.mark.parametrize("backend", FAMILY_BACKENDS)
@pytest.mark.parametrize("activation, output", COMBINATIONS)
def test_gradients_match_finite_differences(backend, activation, output):
    sizes = (5, 4, 3, 3)
    params, x, Y = problem(sizes, 6, np.float64, output, seed=4)
    module = load_backend(backend)
    _, cache = module.forward(params, x, activation=activation, output=output)
    grads = module.backward(params, cache, Y, activation=activation)
    for l, (got, want) in enumerate(zip(grads, numeric_gradients(params, x, Y, activation,
                                                                 output))):
        for name, g, w in zip("Wb", got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-8,
                                       err_msg=f"{activation}+{output} layer {l} {name}")


@pytest.mark.parametrize("backend", FAMILY_BACKENDS)
@pytest.mark.parametrize("output", family.OUTPUT_NAMES)
def test_weighted_gradients_match_finite_differences(backend, output):
    sizes = (4, 5, 2)
    params, x, Y = problem(sizes, 7, np.float64, output, seed=8)
    w = np.random.default_rng(9).uniform(0, 2, 7)
    module = load_backend(backend)
    _, cache = module.forward(params, x, activation="tanh", output=output)
    grads = module.backward(params, cache, Y, w, activation="tanh")
    for got, want in zip(grads, numeric_gradients(params, x, Y, "tanh", output, w)):
        for g, v in zip(got, want):
            np.testing.assert_allclose(g, v, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", FAMILY_BACKENDS)
@pytest.mark.parametrize("activation, output", COMBINATIONS)
def test_float32_agrees_with_float64(backend, activation, output):
    # float32 forward and backward within float32's rounding of the float64 reference
    sizes = (20, 16, 12, 4)
    params, x, Y = problem(sizes, 33, np.float64, output, seed=2)
    P64, cache64 = load_backend("loop").forward(params, x, activation, output)
    grads64 = load_backend("loop").backward(params, cache64, Y, activation=activation)
    single = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
    module = load_backend(backend)
    P, cache = module.forward(single, x.astype(np.float32), activation=activation, output=output)
    assert P.dtype == np.float32
    np.testing.assert_allclose(P, P64, rtol=2e-4, atol=2e-5 * np.abs(P64).max())
    grads = module.backward(single, cache, Y.astype(np.float32), activation=activation)
    for (dW, db), (dW64, db64) in zip(grads, grads64):
        assert dW.dtype == db.dtype == np.float32
        for g, w in ((dW, dW64), (db, db64)):
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4 * np.abs(w).max())


@pytest.mark.parametrize("backend", FAMILY_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_labels_and_one_hot_targets_give_the_same_bits(backend, dtype):
    sizes = (6, 8, 4)
    params, x, y = problem(sizes, 9, dtype, "softmax", labels=True)
    module = load_backend(backend)
    _, cache = module.forward(params, x)
    one_hot = np.eye(4, dtype=dtype)[y]
    for (dW, db), (dW1, db1) in zip(module.backward(params, cache, y),
                                     module.backward(params, cache, one_hot)):
        np.testing.assert_array_equal(dW, dW1)
        np.testing.assert_array_equal(db, db1)


def test_defaults_are_relu_and_softmax():
    sizes = (6, 8, 4)
    params, x, y = problem(sizes, 9, np.float64, "softmax", labels=True)
    loop = load_backend("loop")
    P, cache = loop.forward(params, x)
    P1, cache1 = loop.forward(params, x, activation="relu", output="softmax")
    np.testing.assert_array_equal(P, P1)
    hidden = np.maximum(x @ params[0][0].T + params[0][1], 0)
    np.testing.assert_allclose(cache[1], hidden)
    np.testing.assert_allclose(P.sum(axis=1), 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_table_functions_match_their_formulas(dtype):
    z = np.linspace(-5, 5, 41).astype(dtype)
    want = {"identity": z, "logistic": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z),
            "relu": np.maximum(z, 0), "leaky_relu": np.where(z > 0, z, 0.01 * z)}
    slopes = {"identity": np.ones_like(z), "logistic": want["logistic"] * (1 - want["logistic"]),
              "tanh": 1 - np.tanh(z) ** 2, "relu": (z > 0).astype(dtype),
              "leaky_relu": np.where(z > 0, 1, 0.01)}
    for name in family.ACTIVATION_NAMES:
        A = family.ACTIVATIONS[name](z.copy())
        assert A.dtype == dtype
        assert_close(A, want[name], dtype, name)
        assert_close(family.DERIVATIVES[name](A, np.ones_like(z)), slopes[name], dtype, name)
    assert_close(family.OUTPUTS["exp"](z.copy()), np.exp(z), dtype)
    assert_close(family.OUTPUTS["softmax"](z.copy()), np.exp(z) / np.exp(z).sum(), dtype)


def test_logistic_of_huge_inputs_is_finite():
    z = np.array([-1e4, -100.0, 0.0, 100.0, 1e4])
    with np.errstate(over="raise", invalid="raise"):
        p = family.inplace_logistic(z.copy())
    np.testing.assert_array_equal(p, [0.0, 1 / (1 + np.exp(100.0)), 0.5, 1.0, 1.0])


def test_losses_have_their_documented_values():
    P = np.array([[0.25, 0.75], [0.5, 0.5]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert family.LOSSES["softmax"](P, [1, 0]) == pytest.approx(-(np.log(0.75) + np.log(0.5)) / 2)
    assert family.LOSSES["softmax"](P, Y) == family.LOSSES["softmax"](P, [1, 0])
    bce = -(np.log(0.75) + np.log(0.75) + np.log(0.5) + np.log(0.5)) / 2
    assert family.LOSSES["logistic"](P, Y) == pytest.approx(bce)
    assert family.LOSSES["identity"](P, Y) == pytest.approx(
        0.5 * (0.25**2 + 0.25**2 + 0.5**2 + 0.5**2) / 2)
    assert family.LOSSES["exp"](P, Y) == pytest.approx((1.0 - np.log(0.75) + 1.0 - np.log(0.5)) / 2)
    # weighted: sum_i w_i loss_i / sum_i w_i
    rows = family.ROW_LOSSES["identity"](P, Y)
    assert family.LOSSES["identity"](P, Y, [1.0, 3.0]) == pytest.approx((rows[0] + 3 * rows[1]) / 4)


def test_losses_of_zero_probabilities_are_finite():
    P = np.array([[0.0, 1.0]])
    assert np.isfinite(family.LOSSES["softmax"](P, [0]))
    assert np.isfinite(family.LOSSES["logistic"](P, np.array([[1.0, 0.0]])))
    assert np.isfinite(family.LOSSES["exp"](P, np.array([[2.0, 0.0]])))
    # a target of 0 where the prediction is 0 costs nothing
    assert family.LOSSES["logistic"](P, np.array([[0.0, 1.0]])) == 0.0


def test_check_names_list_the_valid_choices():
    assert family.check_activation("tanh") == "tanh"
    assert family.check_output("exp") == "exp"
    with pytest.raises(ValueError, match="unknown activation 'gelu'; valid activations are "
                                         "'identity', 'logistic', 'tanh', 'relu', 'leaky_relu'"):
        family.check_activation("gelu")
    with pytest.raises(ValueError, match="unknown output 'sigmoid'; valid outputs are "
                                         "'softmax', 'logistic', 'identity', 'exp'"):
        family.check_output("sigmoid")


def test_hits_count_right_predictions():
    P = np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.3]])
    assert family.HITS["softmax"](P, np.array([1, 1, 0])) == 2
    assert family.HITS["logistic"](P, np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])) == 2
    assert family.HITS["identity"](P, P) == family.HITS["exp"](P, P) == 0


def test_targets_as_a_matrix():
    np.testing.assert_array_equal(family.targets([2, 0], 2, 3, np.float32),
                                  [[0, 0, 1], [1, 0, 0]])
    assert family.targets(np.array([0.5, 2.0]), 2, 1, np.float64).shape == (2, 1)
    with pytest.raises(ValueError, match=r"targets have shape \(2, 2\); the network's output "
                                         r"needs \(2, 3\)"):
        family.targets(np.ones((2, 2)), 2, 3, np.float64)


@pytest.mark.parametrize("backend", [name for name in FAMILY_BACKENDS if name != "loop"])
@pytest.mark.parametrize("activation, output", [("tanh", "softmax"), ("relu", "logistic"),
                                                ("logistic", "identity"),
                                                ("leaky_relu", "exp"), ("identity", "softmax")])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_run_steps_agrees_with_loop(backend, activation, output, dtype, weighted):
    from fastmlp import optim
    from fastmlp.steps import Batches

    sizes = (7, 9, 3)
    params, x, Y = problem(sizes, 40, dtype, output, seed=5)
    weights = np.random.default_rng(6).uniform(0.5, 1.5, 40) if weighted else None
    order = np.random.default_rng(7).permutation(40)
    results = {}
    for name in ("loop", backend):
        trained = [(W.copy(), b.copy()) for W, b in params]
        batches = Batches(x, Y, order, 16, None, dtype, weights)
        with warnings.catch_warnings():  # every combination runs numba's fused epoch
            warnings.simplefilter("error", PerformanceWarning)
            done = load_backend(name).run_steps(trained, batches, optim.Adam(), [1e-2] * 3,
                                                activation=activation, output=output)
        results[name] = trained, done
    (want, want_done), (got, done) = results["loop"], results[backend]
    assert done.failed_step == want_done.failed_step == -1
    assert done.correct == want_done.correct
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    assert done.loss_sum == pytest.approx(want_done.loss_sum, rel=rtol)
    for (W, b), (W0, b0) in zip(got, want):
        assert_close(W, W0, dtype)
        assert_close(b, b0, dtype)


def test_run_steps_loss_is_the_outputs_loss():
    from fastmlp import optim
    from fastmlp.steps import Batches

    sizes = (4, 5, 2)
    params, x, Y = problem(sizes, 12, np.float64, "identity", seed=3)
    loop = load_backend("loop")
    P, _ = loop.forward(params, x, activation="tanh", output="identity")
    done = loop.run_steps([(W.copy(), b.copy()) for W, b in params],
                          Batches(x, Y, None, 12, None, np.float64), optim.SGD(0.0), [0.0],
                          activation="tanh", output="identity")
    assert done.loss_sum == pytest.approx(12 * 0.5 * ((P - Y) ** 2).sum(axis=1).mean())
    assert done.correct == 0


@pytest.mark.parametrize("backend", FAMILY_BACKENDS)
def test_functional_passes_the_family_through(backend):
    import fastmlp
    from fastmlp import functional

    sizes = (4, 6, 2)
    params, x, Y = problem(sizes, 5, np.float64, "logistic", seed=1)
    with fastmlp.use_backend(backend):
        P, cache = functional.forward(params, x, activation="tanh", output="logistic")
        want_P, want_cache = load_backend("loop").forward(params, x, "tanh", "logistic")
        assert_close(P, want_P, np.float64)
        grads = functional.backward(params, cache, Y, activation="tanh", output="logistic")
        want = load_backend("loop").backward(params, want_cache, Y, activation="tanh")
        for (dW, db), (dW0, db0) in zip(grads, want):
            assert_close(dW, dW0, np.float64)
            assert_close(db, db0, np.float64)
    assert functional.loss(P, Y, "logistic") == pytest.approx(family.LOSSES["logistic"](P, Y))


def test_functional_checks_targets_and_names():
    from fastmlp import functional

    params, x, Y = problem((4, 3, 2), 5, np.float64, "logistic", seed=1)
    P, cache = load_backend("loop").forward(params, x, "relu", "logistic")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        functional.forward(params, x, activation="swish")
    with pytest.raises(ValueError, match="unknown output 'probit'"):
        functional.backward(params, cache, Y, output="probit")
    with pytest.raises(ValueError, match=r"y has shape \(5, 3\); a network of 2 logistic "
                                         r"outputs needs targets of shape \(5, 2\)"):
        functional.backward(params, cache, np.zeros((5, 3)), output="logistic")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        functional.loss(P, Y * 2, "logistic")
    with pytest.raises(ValueError, match="negative targets"):
        functional.loss(P, -Y, "exp")
    with pytest.raises(ValueError, match="NaN or inf"):
        functional.loss(P, Y * np.nan, "identity")
    with pytest.raises(ValueError, match="rows must sum to 1"):
        functional.loss(P, Y * 0, "softmax")


@pytest.mark.parametrize("activation, output", COMBINATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_bits_do_not_depend_on_threads_or_the_batch(activation, output, dtype,
                                                          monkeypatch):
    # every combination keeps the numba backend's promise: a row's forward pass is the same
    # bits alone or in a batch, and an epoch the same bits with 1 or several threads
    numba = pytest.importorskip("numba")
    from fastmlp import optim
    from fastmlp.backends.numba import _api

    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads, however small

    module = load_backend("numba")
    sizes = (30, 40, 24, 5)
    params, x, Y = problem(sizes, 90, dtype, output, seed=11)
    P, _ = module.forward(params, x, activation=activation, output=output)
    for i in (0, 45, 89):
        alone, _ = module.forward(params, x[i], activation=activation, output=output)
        np.testing.assert_array_equal(alone, P[i])
        np.testing.assert_array_equal(
            module.predict_one(params, x[i], 1.0, 0.0, activation=activation, output=output),
            P[i])
    counts = sorted({1, numba.config.NUMBA_NUM_THREADS})
    if len(counts) == 1:
        pytest.skip("numba runs one thread here")
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in counts:
            numba.set_num_threads(threads)
            trained = [(W.copy(), b.copy()) for W, b in params]
            done = module.train_epoch(trained, x, Y, 32, optim.Adam(), np.full(3, 1e-2),
                                      activation=activation, output=output)
            results.append((done, trained))
    finally:
        numba.set_num_threads(saved)
    (done, got), (done_want, want) = results
    assert done == done_want
    for (W, b), (W0, b0) in zip(got, want):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_the_epoch_comparison_script_times_every_combination(mnist_dir, capsys, bench_script):
    script = bench_script("family_epochs.py")
    times = script.main(["--repeats", "1", "--rows", "640", "--data-dir", str(mnist_dir)])
    assert list(times) == script.COMBINATIONS
    assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in times.values())
    out = capsys.readouterr().out.splitlines()
    threads = load_backend("numba").num_threads()
    assert out[0] == ("numba fused epoch, 784-128-128-10, batch 128, float32, 640 rows, "
                      f"{threads} thread{'s' * (threads != 1)}, median of 1 turn")
    assert out[2].startswith("relu        softmax") and out[2].endswith("   0.0%")
    assert out[1].split() == ["activation", "output", "median", "s", "min", "s", "ratio",
                              "epilogues", "s", "extra"]
    assert len(out) == 2 + len(script.COMBINATIONS)
