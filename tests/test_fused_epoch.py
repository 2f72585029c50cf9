"""Backends' fused ``train_epoch`` against the generic per-step loop over the ``loop`` reference.

Every backend with a fused epoch (``matmul``, ``numba``) must train exactly as
``fastmlp.train.train_epoch`` does: same parameters, optimizer state, step
count, loss sum and hits, for every optimizer ``fastmlp.optim`` ships.
"""

import copy
import inspect
import types
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import PerformanceWarning, backends, optim
from fastmlp.backends import available_backends, load_backend
from fastmlp.steps import ComposedSteps
from fastmlp.train import train_epoch as generic_epoch

FUSED = [name for name in available_backends() if hasattr(load_backend(name), "train_epoch")]
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "momentum": lambda: optim.SGD(0.05, momentum=0.8),
    "nesterov-wd": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam-l2": lambda: optim.Adam(1e-2, weight_decay=1e-3),
    "adamw": lambda: optim.AdamW(1e-2, weight_decay=0.1),
}
SIZES = {"one-hidden": (12, 9, 4), "three-hidden": (12, 10, 7, 8, 5), "wide": (784, 70, 10)}
TOLERANCE = {np.float64: 1e-9, np.float32: 2e-4}
SAMPLES = 103  # of random_problem, unless a test needs another number


def state_of(optimizer):
    return [getattr(optimizer, name) for name in ("velocity", "m", "v")
            if getattr(optimizer, name, None) is not None]


def run(path, params, optimizer, x, y, batch_size, learning_rates, order=None):
    """One epoch through backend ``path``'s fused train_epoch, or 'generic' over loop."""
    if path == "generic":
        return generic_epoch(load_backend("loop"), params, x, y, batch_size, optimizer,
                             learning_rates, order=order)
    return load_backend(path).train_epoch(params, x, y, batch_size, optimizer, learning_rates,
                                          order=order)


def assert_same_training(got, want, dtype):
    """Same parameters, optimizer state and step counter after two runs."""
    (params, opt), (params_want, opt_want) = got, want
    tol = TOLERANCE[dtype]
    for layer, layer_want in zip(params, params_want, strict=True):
        for a, b in zip(layer, layer_want):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert getattr(opt, "t", None) == getattr(opt_want, "t", None)
    for state, state_want in zip(state_of(opt), state_of(opt_want), strict=True):
        for a, b in zip(state, state_want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def assert_identical(params, params_want):
    for layer, layer_want in zip(params, params_want, strict=True):
        for a, b in zip(layer, layer_want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", ["one-hidden", "three-hidden"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("shuffled", [False, True])
def test_fused_epoch_equals_generic_steps(backend, dtype, shape, name, shuffled, random_problem):
    params, x, y = random_problem(SIZES[shape], SAMPLES, dtype)
    order = np.random.default_rng(1).permutation(len(x)) if shuffled else None
    batch_size = 16  # 103 samples: six full batches and one of 7
    learning_rates = np.linspace(1.0, 0.5, 7) * OPTIMIZERS[name]().learning_rate
    results = {}
    for path in ("generic", backend):
        p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
        x_in, y_in = x.copy(), y.copy()
        for _ in range(2):  # two epochs: state carries over between calls
            out = run(path, p, opt, x_in, y_in, batch_size, learning_rates, order)
        np.testing.assert_array_equal(x_in, x)
        np.testing.assert_array_equal(y_in, y)
        results[path] = out, (p, opt)
    (out, trained), (out_want, trained_want) = results[backend], results["generic"]
    assert out[2] == out_want[2] == -1
    assert out[1] == out_want[1]
    assert out[0] == pytest.approx(out_want[0], rel=TOLERANCE[dtype])
    assert_same_training(trained, trained_want, dtype)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_epoch_with_a_wide_layer_equals_generic_steps(backend, dtype, random_problem):
    # 784 inputs, 70 units: products longer than a cache tile and widths that are
    # not a multiple of any register block
    params, x, y = random_problem(SIZES["wide"], 123, dtype)
    learning_rates = np.full(3, 0.01)
    results = {}
    for path in ("generic", backend):
        p, opt = copy.deepcopy(params), optim.Adam(1e-2)
        results[path] = run(path, p, opt, x, y, 50, learning_rates), (p, opt)
    (out, trained), (out_want, trained_want) = results[backend], results["generic"]
    assert out[1:] == out_want[1:]
    assert out[0] == pytest.approx(out_want[0], rel=TOLERANCE[dtype])
    assert_same_training(trained, trained_want, dtype)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", ["nesterov-wd", "adamw"])
def test_fused_and_generic_epochs_interleave(backend, name, random_problem):
    # fused then generic == generic twice: the state lives in the optimizer's own arrays
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float64)
    learning_rates = np.full(11, OPTIMIZERS[name]().learning_rate)
    results = {}
    for first in (backend, "generic"):
        p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
        run(first, p, opt, x, y, 10, learning_rates)
        run("generic", p, opt, x[::-1], y[::-1], 10, learning_rates)
        results[first] = p, opt
    assert_same_training(results[backend], results["generic"], np.float64)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", ["nesterov-wd", "adamw"])
def test_divergence_stops_before_the_failing_update(backend, name, random_problem):
    # float32 weights of ~1e29 overflow the second forward pass to inf, then nan.
    params, x, y = random_problem(SIZES["one-hidden"], 101, np.float32)
    learning_rates = np.full(11, 1e30)
    results = {}
    for path in ("generic", backend):
        p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
        with np.errstate(all="ignore"):  # fit silences the overflow on the way to nan
            results[path] = run(path, p, opt, x, y, 10, learning_rates), (p, opt)
    (out, (p, opt)), (out_want, (p_want, _)) = results[backend], results["generic"]
    assert out[2] == out_want[2] == 1
    assert out[:2] == pytest.approx(out_want[:2], rel=TOLERANCE[np.float32])
    assert getattr(opt, "t", 1) == 1  # one update; the failing step's was skipped
    for layer, layer_want in zip(p, p_want):
        for a, b in zip(layer, layer_want):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=TOLERANCE[np.float32])


@pytest.mark.parametrize("backend", FUSED)
def test_batch_of_one_and_batches_smaller_than_the_thread_count(backend, random_problem):
    params, x, y = random_problem(SIZES["one-hidden"], 5, np.float64)
    for batch_size in (1, 2, 5, 64):
        results = {}
        for path, x_in in (("generic", x), (backend, np.asfortranarray(x))):
            p, opt = copy.deepcopy(params), optim.Adam(1e-2)
            results[path] = run(path, p, opt, x_in, y, batch_size, np.full(5, 1e-2)), (p, opt)
        assert results[backend][0][1:] == results["generic"][0][1:]
        assert results[backend][0][0] == pytest.approx(results["generic"][0][0], rel=1e-9)
        assert_same_training(results[backend][1], results["generic"][1], np.float64)


@pytest.mark.parametrize("backend", FUSED)
def test_order_picks_the_batches(backend, random_problem):
    # Training on x in the order of a permutation equals training on the permuted copy.
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float64)
    order = np.random.default_rng(2).permutation(len(x))
    lrs = np.full(7, 0.1)
    p_order, p_copy = copy.deepcopy(params), copy.deepcopy(params)
    out_order = run(backend, p_order, optim.SGD(0.1), x, y, 16, lrs, order)
    out_copy = run(backend, p_copy, optim.SGD(0.1), x[order], y[order], 16, lrs)
    assert out_order == pytest.approx(out_copy, rel=1e-12)
    for layer_order, layer_copy in zip(p_order, p_copy):
        for a, b in zip(layer_order, layer_copy):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("backend", FUSED)
def test_train_epoch_does_not_modify_x_y_or_the_rates(backend, random_problem):
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float32)
    learning_rates = np.full(11, 0.1)
    saved = x.copy(), y.copy(), learning_rates.copy()
    run(backend, params, optim.SGD(0.1), x, y, 10, learning_rates)
    for array, array_saved in zip((x, y, learning_rates), saved):
        np.testing.assert_array_equal(array, array_saved)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_shipped_optimizer_runs_fused(backend, name, random_problem):
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        out = run(backend, params, optim.make_optimizer(name), x, y, 16, np.full(7, 1e-3))
    assert out is not None and out[2] == -1


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_fused_update_describes_every_hyper_parameter(cls, random_problem):
    # A new option of an optimizer that its fused description leaves out would be
    # silently ignored by every fused epoch.
    options = set(inspect.signature(cls).parameters) - {"learning_rate"}
    params, _, _ = random_problem(SIZES["one-hidden"], SAMPLES, np.float64)
    update = cls().fused_update(params)
    assert options <= set(update.hyper)
    assert update.rule in ("sgd", "adam")
    for state in update.state:
        assert [s.shape for s in state] == [p.shape for layer in params for p in layer]


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


# What only the numba backend's fused epoch does: checks, fallbacks, thread counts.

numba = pytest.importorskip("numba")
numba_backend = load_backend("numba")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_numba_epoch_gives_the_same_bits_with_any_thread_count(dtype, name, random_problem,
                                                                monkeypatch):
    counts = sorted({1, numba.config.NUMBA_NUM_THREADS})
    if len(counts) == 1:
        pytest.skip("numba runs one thread here")
    from fastmlp.backends.numba import _api

    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads, however small
    params, x, y = random_problem(SIZES["wide"], 157, dtype)
    results = []
    saved = numba.get_num_threads()
    try:
        for threads in counts:
            numba.set_num_threads(threads)
            p, opt = copy.deepcopy(params), OPTIMIZERS[name]()
            out = numba_backend.train_epoch(p, x, y, 40, opt, np.full(4, opt.learning_rate))
            results.append((out, p))
    finally:
        numba.set_num_threads(saved)
    (out, p), (out_want, p_want) = results
    assert out == out_want
    assert_identical(p, p_want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", [lambda: optim.SGD(0.05, momentum=0.9),
                                  lambda: optim.Adam(1e-2),
                                  lambda: optim.SklearnAdam(1e-2, alpha=0.1)])
def test_forward_products_by_columns_train_the_same_bits(dtype, make, random_problem,
                                                         monkeypatch):
    # kernels.forward_by_columns picks, layer by layer, z.T = W @ a.T (the first
    # layer's W then updated in place, with no W.T) or z = a @ W.T: the same sums.
    # Every layer by columns, none, and some (the first layer by rows), on threads
    # and in the caller: the same parameters, optimizer state, loss (scikit-learn's
    # L2 term included) and hits. (Batches of 40 rows: the deltas of the layers by
    # columns transposed for the weight gradients; test_simd.py's blockings take a
    # few rows by columns at a time, and no deltas transposed. The 128-input layer by
    # columns keeps W in panels for delta @ W, kernels.w_panel, the others read it
    # as it lies.)
    from fastmlp.backends.numba import _api, _kernels

    # 97 * 70 weights: chunks of the L2 term end off a multiple of 8
    sizes = (97, 70, 128, 100, 10)
    params, x, y = random_problem(sizes, 157, dtype)
    results = {}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        for columns_from in (10**9, 1, 80):
            monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads
            monkeypatch.setattr(_kernels, "COLUMNS_FROM", columns_from)
            layout = [_kernels.forward_by_columns(i, o, dtype) for i, o in zip(sizes, sizes[1:])]
            # the 10-unit output by columns where it is narrower than the tile (16 columns
            # of float32 and 8 of float64 on AVX2: float64's 10 units then go by rows)
            tile_columns = _kernels.TILE_VECTORS * _kernels.VECTOR_BYTES // np.dtype(dtype).itemsize
            narrow = tile_columns > 10
            assert layout == {10**9: [False] * 4, 1: [True] * 4,
                              80: [False, True, True, narrow]}[columns_from]
            saved = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                p, opt = copy.deepcopy(params), make()
                out = numba_backend.train_epoch(p, x, y, 40, opt, np.full(4, opt.learning_rate))
            finally:
                numba.set_num_threads(saved)
            results[threads, columns_from] = (out, p, state_of(opt),
                                              getattr(opt, "penalty_sum", None))
    (out_want, p_want, state_want, penalty_want), *others = results.values()
    for out, p, state, penalty in others:
        assert out == out_want
        assert penalty == penalty_want
        assert_identical(p, p_want)
        for arrays, arrays_want in zip(state, state_want, strict=True):
            assert_identical([arrays], [arrays_want])


def test_workers_of_many_rows_take_their_forward_products_by_rows(random_problem, monkeypatch):
    # By columns only while a worker's rows of a batch are fewer than PACK_ROWS: a batch
    # of PACK_ROWS + 2 rows goes by columns on two workers (half of it each) and by rows
    # on one, with the same bits
    from fastmlp.backends.numba import _api, _kernels

    wide = _kernels.COLUMNS_FROM
    assert _kernels.forward_by_columns(wide, wide, np.float32)  # (few rows)
    assert _kernels.forward_by_columns(wide, wide, np.float32, _kernels.PACK_ROWS - 1)
    assert not _kernels.forward_by_columns(wide, wide, np.float32, _kernels.PACK_ROWS)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two numba threads")
    monkeypatch.setattr(_kernels, "COLUMNS_FROM", 20)
    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads
    chosen = []  # the hidden layer's choice, as the epoch makes it
    choose = _kernels.forward_by_columns

    def recorded(n_in, n_out, *rest):
        by_columns = choose(n_in, n_out, *rest)
        if n_out == 30:
            chosen.append(by_columns)
        return by_columns

    monkeypatch.setattr(_kernels, "forward_by_columns", recorded)
    sizes = (23, 30, 10)
    params, x, y = random_problem(sizes, 3 * _kernels.PACK_ROWS, np.float32)
    results = []
    for threads in (1, 2):
        saved = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            p, opt = copy.deepcopy(params), optim.Adam(1e-2)
            out = numba_backend.train_epoch(p, x, y, _kernels.PACK_ROWS + 2, opt,
                                            np.full(3, 1e-2))
        finally:
            numba.set_num_threads(saved)
        results.append((out, p, state_of(opt)))
    assert chosen == [False, True]
    (out_one, p_one, state_one), (out_two, p_two, state_two) = results
    assert out_one == out_two
    assert_identical(p_one, p_two)
    for arrays, arrays_two in zip(state_one, state_two, strict=True):
        assert_identical([arrays], [arrays_two])


def test_the_buffers_of_the_layers_by_columns_follow_the_layout(random_problem, monkeypatch):
    # a_t, z_t (a worker's rows of a layer by columns, transposed) and d_t (the deltas
    # of those layers transposed) are sized by the layers whose forward runs by
    # columns, and empty where none does
    from fastmlp.backends.numba import _fused, _kernels

    allocated = []
    allocate = _fused.EpochBuffers.allocate
    monkeypatch.setattr(_fused.EpochBuffers, "allocate", lambda *a, **kw: allocated.append(
        allocate(*a, **kw)) or allocated[-1])
    sizes = (97, 70, 100, 10)
    params, x, y = random_problem(sizes, 157, np.float32)
    for columns_from in (10**9, 80):
        monkeypatch.setattr(_kernels, "COLUMNS_FROM", columns_from)
        numba_backend.train_epoch(copy.deepcopy(params), x, y, 40, optim.SGD(0.05),
                                  np.full(4, 0.05))
    none, some = allocated
    assert none.d_t.size == none.a_t.size == none.z_t.size == 0
    # layers 70 -> 100 and 100 -> 10 by columns: a_t holds up to 100 inputs, z_t 100 units
    rows = some.a_t.shape[1] // 100
    assert rows > 0 and some.a_t.shape[1] == 100 * rows and some.z_t.shape[1] == 100 * rows
    assert some.d_t.size == 40 * sum(sizes[1:])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_small_epoch_runs_on_one_worker_in_the_calling_thread(dtype, random_problem,
                                                               monkeypatch):
    # Below PARALLEL_WORK multiply-adds (n rows times three per weight) the epoch starts
    # no thread: one worker runs in the caller, and trains the same bits as workers on
    # threads; above it, the workers run on threads.
    import threading

    from fastmlp.backends.numba import _api, _fused, _kernels

    params, x, y = random_problem(SIZES["wide"], 157, dtype)
    work = 157 * 3 * sum(W.size for W, _ in params)
    calls = []
    real = _kernels.train_epoch_worker

    def recording(worker, workers, *args):
        calls.append((worker, workers, threading.current_thread() is threading.main_thread()))
        return real(worker, workers, *args)

    monkeypatch.setattr(_kernels, "train_epoch_worker", recording)
    results = []
    for threshold in (work + 1, work):
        monkeypatch.setattr(_api, "PARALLEL_WORK", threshold)
        calls.clear()
        p, opt = copy.deepcopy(params), OPTIMIZERS["adamw"]()
        results.append((numba_backend.train_epoch(p, x, y, 40, opt, np.full(4, 1e-3)), p))
        if threshold > work:
            assert calls == [(0, 1, True)]
        else:
            workers = numba_backend.num_threads()
            assert sorted(calls) == [(w, workers, False) for w in range(workers)]
    (out, p), (out_want, p_want) = results
    assert out == out_want
    assert_identical(p, p_want)
    with pytest.raises(ValueError, match="one worker, not 2"):
        _fused.run_in_caller(real, 2, None, 0)


def test_numba_epoch_falls_back_with_a_warning_that_says_why(random_problem):
    class Plain:  # has step() only
        learning_rate = 0.1

        def step(self, params, grads, learning_rate=None):
            raise AssertionError("train_epoch must not step an optimizer it cannot run")

    class TweakedSGD(optim.SGD):  # its own step(), the inherited description
        def step(self, params, grads, learning_rate=None):
            super().step(params, grads, learning_rate)

    class DampenedSGD(optim.SGD):  # describes an option the fused rule lacks
        def fused_update(self, params):
            update = super().fused_update(params)
            return update._replace(hyper={**update.hyper, "dampening": 0.1})

    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float32)
    saved = copy.deepcopy(params)
    lrs = np.full(11, 0.1)
    for optimizer, reason in [(Plain(), "Plain does not describe its update"),
                              (TweakedSGD(0.1), "TweakedSGD does not describe its update"),
                              (DampenedSGD(0.1), "does not implement: dampening")]:
        with pytest.warns(PerformanceWarning, match=reason):
            assert numba_backend.train_epoch(params, x, y, 10, optimizer, lrs) is None
    mixed = [(params[0][0].astype(np.float64), params[0][1])] + params[1:]
    with pytest.warns(PerformanceWarning, match="dtypes float32, float64"):
        assert numba_backend.train_epoch(mixed, x, y, 10, optim.SGD(0.1), lrs) is None
    assert_identical(params, saved)


def test_numba_epoch_computes_in_the_parameters_dtype(random_problem):
    # float64 inputs with float32 parameters: converted, not a reason to fall back
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float32)
    p64, p32 = copy.deepcopy(params), copy.deepcopy(params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        out = numba_backend.train_epoch(p64, x.astype(np.float64), y, 10, optim.SGD(0.1),
                                        np.full(11, 0.1))
    assert out == numba_backend.train_epoch(p32, x, y, 10, optim.SGD(0.1), np.full(11, 0.1))
    assert_identical(p64, p32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_epoch_scales_raw_pixels_as_the_scaler_does(dtype):
    # raw uint8 with the model's affine == the scaler's float copy, to the bit
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (90, 12), dtype=np.uint8)
    y = rng.integers(0, 4, 90)
    model = fastmlp.MLP((12, 9, 4), dtype=dtype, seed=0)
    model.scaler.fit(images)
    scale, offset = model.scaler.affine()
    runs = []
    for x, kwargs in ((model.scaler.transform(images, dtype), {}),
                      (images, {"scale": scale, "offset": offset})):
        p, opt = copy.deepcopy(model.params), optim.AdamW(1e-2)
        out = numba_backend.train_epoch(p, x, y, 16, opt, np.full(6, 1e-2), **kwargs)
        runs.append((out, p))
    assert runs[0][0] == runs[1][0]
    assert_identical(runs[0][1], runs[1][1])


def test_numba_epoch_rejects_what_it_cannot_train(random_problem):
    params, x, y = random_problem(SIZES["one-hidden"], SAMPLES, np.float64)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        numba_backend.train_epoch(params, x, np.full_like(y, 4), 10, optim.SGD(0.1), np.ones(11))
    with pytest.raises(ValueError, match="learning_rates needs one rate for each of the 11"):
        numba_backend.train_epoch(params, x, y, 10, optim.SGD(0.1), np.ones(10))
    with pytest.raises(ValueError, match="order must hold row indices"):
        numba_backend.train_epoch(params, x, y, 10, optim.SGD(0.1), np.ones(11),
                                  order=np.full(len(x), len(x)))
    params[0][0].setflags(write=False)
    with pytest.raises(ValueError, match="writeable NumPy array"):
        numba_backend.train_epoch(params, x, y, 10, optim.SGD(0.1), np.ones(11))


def test_numba_epoch_times_its_parts_without_changing_the_result(random_problem):
    numba_backend = load_backend("numba")
    params, x, y = random_problem(SIZES["wide"], 301, np.float32)
    timed_params = copy.deepcopy(params)
    rates = np.full(10, 0.05)
    plain = numba_backend.train_epoch(params, x, y, 32, optim.SGD(0.05, momentum=0.9), rates)
    parts = {}
    timed = numba_backend.train_epoch(timed_params, x, y, 32, optim.SGD(0.05, momentum=0.9),
                                      rates, parts=parts)
    assert timed == plain
    for (W, b), (W_timed, b_timed) in zip(params, timed_params):
        assert np.array_equal(W, W_timed) and np.array_equal(b, b_timed)
    assert tuple(parts) == numba_backend.PARTS
    assert all(seconds >= 0 for seconds in parts.values())
    assert parts["products"] > 0 and parts["update"] > 0 and parts["gather"] > 0
    # the parts are taken from the workers' clocks: together they are the epoch's wall time
    assert sum(parts.values()) < 2.0


def test_numba_epoch_parts_come_from_the_workers_clocks():
    from fastmlp.backends.numba import _fused, _kernels

    clocks = np.zeros((2, _kernels.N_PARTS), np.int64)
    rate = _fused.cycle_rate()
    clocks[:, _kernels.PRODUCTS] = [int(0.2 * rate), int(0.4 * rate)]
    clocks[:, _kernels.WAIT] = [int(0.2 * rate), 0]
    clocks[:, _kernels.TOTAL] = [int(0.5 * rate), int(0.5 * rate)]
    parts = _fused.epoch_parts(clocks, wall=0.6)
    assert parts["products"] == pytest.approx(0.3)
    assert parts["wait"] == pytest.approx(0.1)
    assert parts["other"] == pytest.approx(0.1)
    assert parts["launch"] == pytest.approx(0.1)
    assert sum(parts.values()) == pytest.approx(0.6)


def test_fit_with_numba_falls_back_to_the_one_loop_with_a_warning_that_says_why(monkeypatch):
    # What fit runs when the fused epoch cannot run the optimizer: ComposedSteps over
    # numba's own forward and backward, bit for bit, after a warning naming the reason.
    class TweakedSGD(optim.SGD):  # its own step(), the inherited description
        def step(self, params, grads, learning_rate=None):
            super().step(params, grads, learning_rate)

    composed = types.SimpleNamespace(
        run_steps=ComposedSteps(numba_backend.forward, numba_backend.backward))
    monkeypatch.setitem(backends._named_backends, "numba-composed", "unused")
    monkeypatch.setitem(backends._loaded, "numba-composed", composed)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (150, 12), dtype=np.uint8), rng.integers(0, 4, 150)
    runs = {}
    for name in ("numba", "numba-composed"):
        model = fastmlp.MLP((12, 9, 4), seed=0)
        with fastmlp.use_backend(name), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x, y, epochs=2, batch_size=16, optimizer=TweakedSGD(0.05),
                                seed=2)
        runs[name] = model, history, [str(w.message) for w in caught
                                      if issubclass(w.category, PerformanceWarning)]
    (model, history, warned), (model_want, history_want, _) = runs["numba"], runs["numba-composed"]
    assert len(warned) == 2  # once an epoch
    assert "TweakedSGD does not describe its update" in warned[0]
    assert history.loss == history_want.loss
    assert_identical(model.params, model_want.params)


def test_the_epoch_kernel_takes_its_arrays_named_and_refuses_them_swapped():
    # Parameters (theta, state1, state2: three vectors of one length) travel as one named
    # tuple and the epoch's data as another: handing one for the other cannot compile.
    import numba

    from fastmlp.backends.numba import _fused, _kernels

    assert _kernels.Parameters._fields == ("theta", "state1", "state2")
    assert _kernels.EpochData._fields[:3] == ("x", "y", "order")
    theta = np.zeros(8, np.float32)
    params = _kernels.Parameters(theta, theta.copy(), theta.copy())
    data = _kernels.EpochData(np.zeros((4, 2), np.float32), np.zeros(4, np.int64),
                              np.arange(4), np.full(1, 0.1), 4, 1.0, 0.0, np.empty(0),
                              np.empty((0, 0), np.float32), _kernels.RELU, _kernels.SOFTMAX)
    update = _kernels.UpdateRule(_kernels.SGD_RULE, np.zeros(_kernels.N_HYPER), 0, 1e-38)
    layout = np.array([[2, 2, 0, 4, 0, 0], [2, 2, 6, 8, 2, 0]], np.int64)[:1]
    buffers = _fused.EpochBuffers.allocate(4, 2, 2, theta, params.state1, params.state2)
    sync = np.zeros(_kernels.SYNC_SIZE, np.int64)
    clocks = np.zeros((1, _kernels.N_PARTS), np.int64)
    with pytest.raises(numba.core.errors.TypingError):
        _kernels.train_epoch_worker(0, 1, sync, np.zeros(1), data, layout, params, update,
                                    buffers, clocks,
                                    _kernels.epoch_callees(np.float32, _kernels.SGD_RULE))


def test_the_update_rules_take_their_state_and_scalars_named():
    # An update reads (theta, state1, state2) as one Parameters and its scalars as one
    # SgdStep or AdamStep: the gradient in the state's place, or the rules' scalars
    # swapped, cannot compile; in their places they give the reference's update.
    import numba

    from fastmlp.backends.numba import _kernels

    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    state = _kernels.Parameters(p.copy(), np.zeros(2), np.zeros(2))
    sgd = _kernels.SgdStep(lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False)
    _kernels._sgd_update(state, g, sgd)
    np.testing.assert_array_equal(state.theta, p - 0.1 * g)
    np.testing.assert_array_equal(state.state1, g)
    adam = _kernels.AdamStep(0.1, 1.0, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.0, 1.0)
    with pytest.raises(numba.core.errors.TypingError):
        _kernels._sgd_update(g, state, sgd)
    with pytest.raises(numba.core.errors.TypingError):
        _kernels._sgd_update(state, g, adam)


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.7, nesterov=True,
                                                    weight_decay=0.01),
                                  lambda: optim.AdamW(1e-3, beta1=0.8, beta2=0.99, eps=1e-7,
                                                      weight_decay=0.2),
                                  lambda: optim.SklearnSGD(0.1, momentum=0.7, nesterov=True,
                                                           alpha=0.01),
                                  lambda: optim.SklearnAdam(1e-3, beta1=0.8, beta2=0.99,
                                                            eps=1e-7, alpha=0.2)])
def test_the_kernels_hyper_parameter_slots_follow_the_one_table(make, random_problem):
    # optim.FUSED_RULES names each rule's hyper-parameters in the order of the
    # kernel's slots: the vector the kernel gets holds the optimizer's values there.
    from fastmlp.backends.numba import _fused, _kernels

    opt = make()
    params, _, _ = random_problem(SIZES["one-hidden"], SAMPLES, np.float64)
    (rule, hyper, _, _), reason = _fused._describe(opt, params)
    name = opt.fused_update(params).rule
    assert reason is None and rule == _kernels.RULE_IDS[name]
    want = [float(getattr(opt, key)) for key in optim.FUSED_RULES[name]]
    np.testing.assert_array_equal(hyper[:len(want)], want)
    assert not hyper[len(want):].any()
    if name == "sgd":
        assert hyper[_kernels.MOMENTUM] == 0.7 and hyper[_kernels.SGD_WEIGHT_DECAY] == 0.01
    elif name == "adam":
        assert hyper[_kernels.BETA2] == 0.99 and hyper[_kernels.ADAM_WEIGHT_DECAY] == 0.2
    elif name == "sklearn_sgd":
        assert hyper[_kernels.SK_MOMENTUM] == 0.7 and hyper[_kernels.SK_SGD_ALPHA] == 0.01
        assert hyper[_kernels.SK_NESTEROV] == 1
    else:
        assert name == "sklearn_adam"
        assert hyper[_kernels.SK_BETA2] == 0.99 and hyper[_kernels.SK_ADAM_ALPHA] == 0.2
        assert hyper[_kernels.SK_EPS] == 1e-7
