"""fastmlp.sklearn: drop-ins for scikit-learn's MLPClassifier and MLPRegressor.

scikit-learn's own tests of its MLPs run in tests/test_sklearn_upstream.py;
here: its estimator checks, the constructor against scikit-learn's, the same
model as scikit-learn's from the same seed on every backend, the update rules
step by step, and fastmlp's additions.
"""

import inspect
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import sklearn.neural_network as sk
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
from fastmlp import backends
from fastmlp.optim import SklearnAdam, SklearnSGD
from fastmlp.sklearn import MLPClassifier, MLPRegressor

BACKENDS = fastmlp.available_backends()

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS / 16

# Small and quick, and enough for the checks' training-score thresholds.
CHECKED = dict(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01,
               random_state=0)


def _relative_differences(ours, theirs):
    """Per layer: the largest absolute difference over the largest absolute coefficient."""
    return [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(ours, theirs)]


def _estimators():
    for dtype in ("float32", "float64"):
        yield MLPClassifier(dtype=dtype, **CHECKED)
        yield MLPRegressor(dtype=dtype, **CHECKED)


def expected_failed_checks(estimator):
    """The estimator checks known to fail, with the reason."""
    if estimator.dtype != "float32":
        return {}
    reason = ("float32 rounding: integer weights against repeated rows sum the batch in "
              "another order; predictions move by ~1e-6 relative, the check allows 1e-7")
    return {"check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason}


@parametrize_with_checks(list(_estimators()), expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, sk.MLPClassifier),
                                          (MLPRegressor, sk.MLPRegressor)])
def test_the_constructor_is_scikit_learns_then_fastmlps_keywords(ours, theirs):
    mine = inspect.signature(ours).parameters
    sklearns = inspect.signature(theirs).parameters
    assert list(mine)[:len(sklearns)] == list(sklearns)
    for name, parameter in sklearns.items():
        assert mine[name].default == parameter.default, name
        assert mine[name].kind == parameter.kind, name
    extras = list(mine)[len(sklearns):]
    assert {"backend", "dtype", "standardize", "weight_decay"} <= set(extras)
    assert all(mine[name].kind is inspect.Parameter.KEYWORD_ONLY for name in extras)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_the_same_seed_gives_scikit_learns_model(mnist, backend, solver):
    # float64, random_state=0: one epoch (adam, sgd) or five L-BFGS iterations on
    # 2 000 MNIST images, scaled to [0, 1]
    (x, y), _ = mnist
    X, y = x[:2000] / 255.0, y[:2000]
    settings = dict(hidden_layer_sizes=(64, 32), solver=solver, random_state=0,
                    max_iter=5 if solver == "lbfgs" else 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = sk.MLPClassifier(**settings).fit(X, y)
        ours = MLPClassifier(backend=backend, **settings).fit(X, y)
    assert max(_relative_differences(ours.coefs_, theirs.coefs_)) < 1e-6
    assert max(_relative_differences(ours.intercepts_, theirs.intercepts_)) < 1e-6
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    if solver != "lbfgs":
        assert ours.t_ == theirs.t_ == 2000


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_steps_as_scikit_learns_optimizer(momentum, nesterov):
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((3, 4)), rng.standard_normal(3))]
    theirs_params = [params[0][0].T.copy(), params[0][1].copy()]
    ours = SklearnSGD(0.1, momentum, nesterov, alpha=0.5)
    theirs = SGDOptimizer(theirs_params, 0.1, "constant", momentum, nesterov)
    for _ in range(3):
        grads = [(rng.standard_normal((3, 4)), rng.standard_normal(3))]
        n = 7
        # scikit-learn's gradient: (sum + alpha W) / n, the bias without the L2 term
        theirs.update_params(theirs_params, [grads[0][0].T + 0.5 * theirs_params[0] / n,
                                             grads[0][1]])
        ours.step(params, grads, batch_total=n)
    np.testing.assert_allclose(params[0][0].T, theirs_params[0], rtol=1e-14)
    np.testing.assert_allclose(params[0][1], theirs_params[1], rtol=1e-14)


def test_adam_steps_as_scikit_learns_optimizer():
    rng = np.random.default_rng(1)
    params = [(rng.standard_normal((3, 4)), rng.standard_normal(3))]
    theirs_params = [params[0][0].T.copy(), params[0][1].copy()]
    ours = SklearnAdam(0.01, 0.8, 0.99, 1e-3, alpha=0.25)
    theirs = AdamOptimizer(theirs_params, 0.01, 0.8, 0.99, 1e-3)
    for _ in range(4):
        grads = [(rng.standard_normal((3, 4)), rng.standard_normal(3))]
        theirs.update_params(theirs_params, [grads[0][0].T + 0.25 * theirs_params[0] / 5,
                                             grads[0][1]])
        ours.step(params, grads, batch_total=5)
    np.testing.assert_allclose(params[0][0].T, theirs_params[0], rtol=1e-14)
    np.testing.assert_allclose(params[0][1], theirs_params[1], rtol=1e-14)
    assert ours.t == theirs.t == 4


def test_the_l2_penalty_is_summed_with_the_weights_before_each_step():
    W = np.ones((2, 3))
    optimizer = SklearnSGD(0.1, 0.0, False, alpha=2.0)
    optimizer.step([(W, np.zeros(2))], [(np.zeros((2, 3)), np.zeros(2))], batch_total=4)
    # alpha / 2 * sum(W**2) = 6 before; then W -= 0.1 * (alpha / 4) W
    assert optimizer.penalty_sum == 6.0
    np.testing.assert_array_equal(W, np.full((2, 3), 0.95))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lbfgs_gradient_matches_finite_differences(backend):
    # scikit-learn's test_gradient, on fastmlp's full-batch loss and gradient: central
    # differences (eps 1e-5) of the loss with its L2 term against the analytic gradient
    rng = np.random.RandomState(42)
    X, y = rng.rand(5, 10), np.array([1, 2, 3, 1, 2])
    clf = MLPClassifier(hidden_layer_sizes=10, solver="lbfgs", alpha=1e-2, max_iter=1,
                        random_state=1, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    calls = []
    original = fastmlp.sklearn.scipy.optimize.minimize

    def capture(fun, x0, **kwargs):
        calls.append(fun)
        return original(fun, x0, **kwargs)

    fastmlp.sklearn.scipy.optimize.minimize = capture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.set_params(warm_start=True).fit(X, y)
    finally:
        fastmlp.sklearn.scipy.optimize.minimize = original
    loss_grad = calls[0]
    theta = np.hstack([c.ravel() for c in clf.coefs_ + clf.intercepts_])
    _, grad = loss_grad(theta.copy())
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = 1e-5
        numeric[i] = (loss_grad(theta + step)[0] - loss_grad(theta - step)[0]) / 2e-5
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_in_float32_weights_and_predictions(Estimator, dtype):
    X = X_DIGITS[:200].astype(dtype)
    y = Y_DIGITS[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Estimator(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    assert {c.dtype for c in est.coefs_ + est.intercepts_} == {np.dtype(dtype)}
    out = est.predict_proba(X) if Estimator is MLPClassifier else est.predict(X)
    assert out.dtype == dtype


def test_dtype_float32_reads_uint8_pixels_as_they_are():
    X = (X_DIGITS[:300] * 16).astype(np.uint8)
    y = Y_DIGITS[:300]
    settings = dict(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raw = MLPClassifier(dtype="float32", **settings).fit(X, y)
        cast = MLPClassifier(**settings).fit(X.astype(np.float32), y)
    for a, b in zip(raw.coefs_, cast.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert raw.coefs_[0].dtype == np.float32


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_x_gives_the_dense_model(solver):
    X = X_DIGITS[:300].copy()
    X[X < 0.5] = 0
    y = Y_DIGITS[:300]
    settings = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = MLPClassifier(**settings).fit(X, y)
        for matrix in (scipy.sparse.csr_matrix(X), scipy.sparse.csc_matrix(X)):
            sparse = MLPClassifier(**settings).fit(matrix, y)
            for a, b in zip(sparse.coefs_, dense.coefs_):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(sparse.predict_proba(matrix), dense.predict_proba(X),
                                       rtol=1e-9)


def test_partial_fit_refuses_lbfgs_and_early_stopping():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        MLPRegressor(solver="lbfgs").partial_fit  # noqa: B018
    clf = MLPClassifier(early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clf.partial_fit(X_DIGITS[:20], Y_DIGITS[:20], classes=np.arange(10))


def test_partial_fit_takes_sample_weight_before_classes():
    parameters = list(inspect.signature(MLPClassifier.partial_fit).parameters)
    assert parameters == ["self", "X", "y", "sample_weight", "classes"]
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    clf.partial_fit(X_DIGITS[:50], Y_DIGITS[:50], np.ones(50), np.arange(10))
    assert clf.n_iter_ == 1 and clf.t_ == 50


def test_n_iter_counts_each_warm_fit_and_the_convergence_warning_says_so():
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0,
                        n_iter_no_change=np.inf)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        clf.fit(X_DIGITS[:100], Y_DIGITS[:100])
    with pytest.warns(ConvergenceWarning):
        clf.fit(X_DIGITS[:100], Y_DIGITS[:100])
    assert clf.n_iter_ == 3 and clf.t_ == 600 and len(clf.loss_curve_) == 6


def test_verbose_prints_scikit_learns_lines(capsys):
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, verbose=True, random_state=0,
                        early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_DIGITS[:200], Y_DIGITS[:200])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ")
    assert lines[1].startswith("Validation score: ")
    assert lines[2].startswith("Iteration 2, loss = ")


def test_an_old_pickle_fails_with_a_message_that_says_what_to_do():
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_DIGITS[:50], Y_DIGITS[:50])
    loaded = pickle.loads(pickle.dumps(clf))  # the new estimator's own pickle loads
    np.testing.assert_array_equal(loaded.predict_proba(X_DIGITS), clf.predict_proba(X_DIGITS))
    # the old estimator's state: its parameters and its fitted network, model_
    state = {"hidden_layer_sizes": (128, 128), "epochs": 15, "optimizer": "adamw",
             "model_": None, "classes_": np.arange(10)}
    with pytest.raises(TypeError, match=r"first estimator interface \(epochs=.*MLP.load"):
        MLPClassifier.__new__(MLPClassifier).__setstate__(state)


def test_backend_and_dtype_are_checked_in_fit():
    with pytest.raises(ValueError, match="'backend' parameter of MLPClassifier must be"):
        MLPClassifier(backend="torch").fit(X_DIGITS[:20], Y_DIGITS[:20])
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        MLPClassifier(dtype=np.int32).fit(X_DIGITS[:20], Y_DIGITS[:20])
    with pytest.raises(ValueError, match="learning_rate='onecycle' is a schedule of "
                                         "solver='adamw', not of solver='adam'"):
        MLPClassifier(learning_rate="onecycle").fit(X_DIGITS[:20], Y_DIGITS[:20])


def test_standardize_fits_one_mean_and_std_and_predicts_with_them():
    X = X_DIGITS[:300] * 16  # pixels 0-16
    y = Y_DIGITS[:300]
    settings = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaled = MLPClassifier(standardize=True, **settings).fit(X, y)
        by_hand = MLPClassifier(**settings).fit((X - X.mean()) / X.std(), y)
    for a, b in zip(scaled.coefs_, by_hand.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(scaled.predict_proba(X),
                               by_hand.predict_proba((X - X.mean()) / X.std()), rtol=1e-7)


def test_standardize_refuses_sparse_x_before_it_changes_anything():
    clf = MLPClassifier(standardize=True)
    with pytest.raises(ValueError, match="standardize=True needs dense X"):
        clf.fit(scipy.sparse.csr_matrix(X_DIGITS[:50]), Y_DIGITS[:50])
    assert not hasattr(clf, "coefs_")


def test_class_weight_multiplies_sample_weight():
    X, y = X_DIGITS[:200], Y_DIGITS[:200]
    settings = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    weights = {label: 1.0 + label for label in range(10)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        by_class = MLPClassifier(class_weight=weights, **settings).fit(X, y)
        by_sample = MLPClassifier(**settings).fit(X, y, sample_weight=1.0 + y)
    for a, b in zip(by_class.coefs_, by_sample.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not supported in partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


def test_adamw_onecycle_with_early_stopping_anneals_then_stops():
    X, y = X_DIGITS[:600], Y_DIGITS[:600]
    clf = MLPClassifier(hidden_layer_sizes=(32,), solver="adamw", learning_rate="onecycle",
                        learning_rate_init=0.01, early_stopping=True, n_iter_no_change=2,
                        max_iter=200, anneal_epochs=3, random_state=0, tol=0.5)
    clf.fit(X, y)
    # tol=0.5: no epoch improves on the first by 0.5, so the 4th stalls; 3 annealing follow
    assert clf.n_iter_ == 4 + 3
    assert len(clf.validation_scores_) == 7
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    plain = MLPClassifier(hidden_layer_sizes=(32,), solver="adamw", learning_rate="onecycle",
                          max_iter=6, random_state=0, tol=10.0)
    with warnings.catch_warnings():
        # every epoch of the schedule runs, as planned: no warning that max_iter was reached
        warnings.simplefilter("error", ConvergenceWarning)
        plain.fit(X, y)
    assert plain.n_iter_ == 6


def test_regressor_with_several_targets():
    X, y = make_regression(n_samples=200, n_features=10, n_targets=3, random_state=0)
    regr = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200,
                        random_state=0).fit(X, y / y.std())
    assert regr.predict(X).shape == (200, 3) and regr.n_outputs_ == 3
    assert regr.out_activation_ == "identity" and regr.score(X, y / y.std()) > 0.9


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", [dict(solver="adam", alpha=0.01),
                                      dict(solver="sgd", learning_rate_init=0.05),
                                      dict(solver="sgd", nesterovs_momentum=False, alpha=0.1),
                                      dict(solver="sgd", momentum=0.0)])
def test_numbas_fused_epoch_runs_scikit_learns_rules(settings, dtype, monkeypatch):
    # no PerformanceWarning: the fused epoch implements the rule (with weights, too), and
    # trains what the per-step loop over the same kernels trains, at any thread count
    import numba

    import fastmlp.backends.numba as numba_backend
    from fastmlp.backends.numba import _api, _fused
    from fastmlp.exceptions import PerformanceWarning

    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads, however small

    X, y = X_DIGITS[:500].astype(dtype), Y_DIGITS[:500]
    weights = np.linspace(0.5, 2.0, 500)
    common = dict(hidden_layer_sizes=(32, 16), max_iter=2, batch_size=64, random_state=0,
                  backend="numba", **settings)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("error", PerformanceWarning)
            return MLPClassifier(**common).fit(X, y, sample_weight=weights)

    fused = fit()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread = fit()
    finally:
        numba.set_num_threads(threads)
    monkeypatch.setattr(numba_backend, "run_steps", _fused._COMPOSED)  # the per-step loop
    stepped = fit()
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12,
                                                                             atol=1e-14)
    for a, b, c in zip(fused.coefs_ + fused.intercepts_,
                       one_thread.coefs_ + one_thread.intercepts_,
                       stepped.coefs_ + stepped.intercepts_):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, **tolerance)
    assert fused.loss_curve_ == one_thread.loss_curve_
    np.testing.assert_allclose(fused.loss_curve_, stepped.loss_curve_, rtol=tolerance["rtol"])


def _run_python(code):
    # this fastmlp, wherever the interpreter would otherwise find one
    env = {**os.environ, "PYTHONPATH": str(Path(fastmlp.__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_import_fastmlp_does_not_import_scikit_learn():
    result = _run_python("import sys, fastmlp; print('sklearn' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_scikit_learn_the_import_error_names_the_extra():
    result = _run_python("import sys; sys.modules['sklearn'] = None; import fastmlp.sklearn")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert 'pip install "fastmlp[sklearn]"' in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_is_in_effect_for_fit_and_predict(backend, monkeypatch):
    X, y = X_DIGITS[:100], Y_DIGITS[:100]
    seen = []
    get_backend = backends.get_backend

    def recording():
        seen.append(backends.get_backend_name())
        return get_backend()

    monkeypatch.setattr(backends, "get_backend", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, backend=backend).fit(X, y)
    clf.predict(X)
    assert seen and set(seen) == {backend}
    seen.clear()
    with fastmlp.use_backend("loop"):  # backend=None: the one in effect at the call
        clf.set_params(backend=None).predict(X)
    assert set(seen) == {"loop"}


def test_the_comparison_script_prints_its_tables(mnist_dir, capsys, bench_script):
    script = bench_script("compare_sklearn.py")
    results = script.main(["--train-size", "1000", "--repeats", "1", "--epochs", "1",
                           "--dtypes", "float32", "--backends", "matmul", "--regression", "2000",
                           "--data-dir", str(mnist_dir)])
    assert list(results) == [("classifier", "float32"), ("regressor", "float32")]
    for table in results.values():
        assert list(table) == ["scikit-learn", "fastmlp matmul"]
    # the same constructor call and seed: the same model, so the same score to rounding
    scores = [table[name][1][0] for table in results.values() for name in table]
    assert scores[0] == pytest.approx(scores[1], abs=2e-3)
    assert scores[2] == pytest.approx(scores[3], abs=1e-4)
    out = capsys.readouterr().out
    assert "MNIST, 1,000 training images, MLPClassifier(hidden_layer_sizes=(128, 128))" in out
    assert "make_regression, 2,000 x 100, MLPRegressor() (100,)" in out
    assert "| scikit-learn |" in out and "| 1.00x |" in out


def test_the_agreement_script_measures_each_layer(mnist_dir, capsys, bench_script):
    script = bench_script("agree_sklearn.py")
    results = script.main(["--train-size", "500", "--backends", "matmul", "--solvers", "sgd",
                           "--data-dir", str(mnist_dir)])
    assert list(results) == [("sgd", "matmul")] and len(results["sgd", "matmul"]) == 2
    assert max(results["sgd", "matmul"]) < 1e-12
    assert capsys.readouterr().out.startswith("sgd matmul: coefs_ per layer ")


def test_partial_fit_steps_adamw_at_its_base_rate_whatever_the_schedule():
    X, y = X_DIGITS[:200], Y_DIGITS[:200]
    settings = dict(hidden_layer_sizes=(8,), solver="adamw", learning_rate_init=0.01,
                    random_state=0, batch_size=50)
    onecycle = MLPClassifier(learning_rate="onecycle", **settings)
    constant = MLPClassifier(learning_rate="constant", **settings)
    for _ in range(2):
        onecycle.partial_fit(X, y, classes=np.arange(10))
        constant.partial_fit(X, y, classes=np.arange(10))
    for a, b in zip(onecycle.coefs_, constant.coefs_):
        np.testing.assert_array_equal(a, b)
