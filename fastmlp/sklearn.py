"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor``, trained by fastmlp's backends.

Drop-ins for ``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor``
(scikit-learn 1.9): the same constructor, defaults, fitted attributes,
behaviours and messages, and, with the same ``random_state``, the same model
to rounding (scikit-learn's initialisation, shuffling, batches and update
rules). The network's passes run on a fastmlp backend; fastmlp's additions are
keyword parameters after scikit-learn's, whose defaults change nothing.

Needs the ``sklearn`` extra (``pip install "fastmlp[sklearn]"``); ``import
fastmlp`` alone never imports scikit-learn.

>>> from sklearn.datasets import load_digits
>>> from fastmlp.sklearn import MLPClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=5, random_state=0)
>>> clf.fit(X / 16, y).predict_proba(X[:2] / 16).shape
(2, 10)
"""

from __future__ import annotations

import math
import warnings
from contextlib import nullcontext
from itertools import chain
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse
from scipy.special import xlogy

try:
    from sklearn.base import (
        BaseEstimator,
        ClassifierMixin,
        RegressorMixin,
        _fit_context,
        is_classifier,
    )
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d, shuffle
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (
        _check_partial_fit_first_call,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'fastmlp.sklearn needs scikit-learn >= 1.6: pip install "fastmlp[sklearn]"'
    ) from exc

from . import backends
from ._flat import flat_copy
from ._validation import check_dtype
from .optim import AdamW, SklearnAdam, SklearnSGD, annealed, anneals, get_schedule
from .preprocessing import InputScaler
from .steps import Batches, ComposedSteps
from .train import training_weights

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("onecycle", "cosine")  # fastmlp's, planned over max_iter epochs (adamw)
# Rows per forward pass in predict and in L-BFGS's full-batch loss, where X is
# sparse (densified so many rows at a time) or large.
_CHUNK = 10_000


def _pack(coefs, intercepts) -> np.ndarray:
    """scikit-learn's parameter vector: every ``coefs_`` raveled, then every ``intercepts_``."""
    return np.hstack([np.ravel(a) for a in list(coefs) + list(intercepts)])


class _DenseRows:
    """What a run of steps sees of rows of ``X``: dense, scaled by ``scaler``, in ``dtype``.

    A run of steps (``fastmlp.steps.Batches``) calls ``transform(rows, dtype)``
    on each batch it gathers; a sparse batch is densified there, one batch at
    a time.
    """

    def __init__(self, scaler: InputScaler):
        self.scaler = scaler

    def affine(self):
        return self.scaler.affine()

    def transform(self, rows, dtype):
        if scipy.sparse.issparse(rows):
            rows = rows.toarray()
        return self.scaler.transform(rows, dtype)


def _row_losses(out_activation: str, Y, P) -> np.ndarray:
    """Each row's loss as scikit-learn's ``LOSS_FUNCTIONS`` define it, shape ``(n_samples,)``.

    Their mean (weighted) is scikit-learn's loss: ``log_loss`` (softmax),
    ``binary_log_loss`` (logistic), ``squared_error`` (identity: half the
    squared error, mean over outputs) and ``poisson`` (exp: half the Poisson
    deviance, with its constant ``y log y - y``, summed over outputs).
    """
    if out_activation in ("softmax", "logistic"):
        eps = np.finfo(P.dtype).eps
        P = np.clip(P, eps, 1 - eps)
        rows = xlogy(Y, P)
        if out_activation == "logistic":
            rows = rows + xlogy(1 - Y, 1 - P)
        return -rows.sum(axis=1)
    if out_activation == "identity":
        return 0.5 * ((Y - P) ** 2).mean(axis=1)
    return (xlogy(Y, Y / P) - Y + P).sum(axis=1)


class _BaseMLP(BaseEstimator):
    """What ``MLPClassifier`` and ``MLPRegressor`` share: scikit-learn's
    ``BaseMultilayerPerceptron``, its passes run by a fastmlp backend."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam", "adamw"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", *_SCHEDULES})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"),
                             Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "backend": [None, StrOptions(set(backends._named_backends))],
        "dtype": [None, StrOptions({"float32", "float64"}), type, np.dtype],
        "standardize": ["boolean"],
        "weight_decay": [None, Interval(Real, 0, None, closed="left")],
        "anneal_epochs": [Interval(Integral, 0, None, closed="left")],
    }

    # -- the network ------------------------------------------------------------------

    def _backend(self):
        return nullcontext() if self.backend is None else backends.use_backend(self.backend)

    def _family(self) -> dict:
        """The keyword arguments that name the network's activation and output to a
        backend; the defaults (relu, softmax) are left out, which every backend has."""
        family = {}
        if self.activation != "relu":
            family["activation"] = self.activation
        if self.out_activation_ != "softmax":
            family["output"] = self.out_activation_
        return family

    def _input_dtypes(self):
        """The dtypes ``X`` is accepted in as it is (the first is what others become)."""
        if self.dtype is None:
            return (np.float64, np.float32)  # scikit-learn's rule
        dtype = check_dtype(self.dtype).type
        # the other float, and raw uint8 pixels, are cast a batch at a time
        return (dtype, np.float32 if dtype is np.float64 else np.float64, np.uint8)

    def _rows(self, X, dtype):
        """``X`` as the network reads it, a ``_DenseRows`` (or None: as it is)."""
        scaler = getattr(self, "_scaler", None)
        if scaler is None and not scipy.sparse.issparse(X) and X.dtype == dtype:
            return None
        return _DenseRows(scaler if scaler is not None else InputScaler(standardize=False))

    def _take_network(self, dtype):
        """The fitted weights as a backend's ``params``, ``[(W, b), ...]`` with ``W = coef.T``,
        copied into one flat vector of ``dtype``; ``coefs_`` and ``intercepts_``
        become views of them, so that training updates both."""
        arrays = [a for coef, intercept in zip(self.coefs_, self.intercepts_)
                  for a in (np.asarray(coef).T, np.asarray(intercept))]
        views = flat_copy(arrays, dtype)
        params = [(views[i], views[i + 1]) for i in range(0, len(views), 2)]
        self.coefs_ = [W.T for W, _ in params]
        self.intercepts_ = [b for _, b in params]
        return params

    def _forward_pass_fast(self, X, check_input=True):
        """The network's output for ``X``, shape ``(n_samples, n_outputs_)``, in chunks of
        rows (a sparse ``X`` densified a chunk at a time)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                              dtype=self._input_dtypes())
        if scipy.sparse.issparse(X):
            X = X.tocsr()
        params = [(np.asarray(coef).T, np.asarray(b))
                  for coef, b in zip(self.coefs_, self.intercepts_)]
        dtype = np.result_type(*[a for layer in params for a in layer])
        rows = self._rows(X, dtype)
        family = self._family()
        out = np.empty((X.shape[0], self.n_outputs_), dtype)
        with self._backend():
            forward = backends.get_backend().forward
            for begin in range(0, X.shape[0], _CHUNK):
                chunk = X[begin:begin + _CHUNK]
                if rows is not None:
                    chunk = rows.transform(chunk, dtype)
                out[begin:begin + _CHUNK] = forward(params, chunk, **family)[0]
        return out

    # -- fitting ----------------------------------------------------------------------

    def _initialize(self, y, layer_units, dtype):
        # scikit-learn's _initialize, attribute for attribute
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self.coefs_ = []
        self.intercepts_ = []
        for i in range(self.n_layers_ - 1):
            coef_init, intercept_init = self._init_coef(layer_units[i], layer_units[i + 1],
                                                        dtype)
            self.coefs_.append(coef_init)
            self.intercepts_.append(intercept_init)
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _init_coef(self, fan_in, fan_out, dtype):
        # Glorot et al.'s uniform initialisation, drawn as scikit-learn draws it
        factor = 2.0 if self.activation == "logistic" else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return coef_init.astype(dtype, copy=False), intercept_init.astype(dtype, copy=False)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        if self.learning_rate in _SCHEDULES and self.solver != "adamw":
            raise ValueError(f"learning_rate={self.learning_rate!r} is a schedule of "
                             f"solver='adamw', not of solver={self.solver!r}")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if scipy.sparse.issparse(X):
            X = X.tocsr()  # rows gathered a batch at a time
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            dtype = X.dtype if self.dtype is None else check_dtype(self.dtype)
            if self.standardize and scipy.sparse.issparse(X):
                raise ValueError("standardize=True needs dense X: it centres every value, "
                                 "which would fill a sparse matrix")
            # (the scaler of all of X: early stopping's validation rows are split off later)
            scaler = InputScaler().fit(X, sample_weight) if self.standardize else None
            self._initialize(y, layer_units, dtype)
            self._scaler = scaler
        sample_weight = self._class_weighted(y, sample_weight, incremental)
        dtype = np.result_type(*self.coefs_, *self.intercepts_)
        params = self._take_network(dtype)
        with self._backend():
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(X, y, sample_weight, params, incremental)
            else:
                self._fit_lbfgs(X, y, sample_weight, params)
        weights = chain(self.coefs_, self.intercepts_)
        if not all(np.isfinite(w).all() for w in weights):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _class_weighted(self, y, sample_weight, incremental):
        """``sample_weight`` times the class weights (the classifier's ``class_weight``)."""
        return sample_weight

    def _targets(self, y, dtype):
        """``y`` (2-D) as a backend takes it: class indices for softmax, else a float matrix."""
        if self.out_activation_ == "softmax":
            return np.ascontiguousarray(np.argmax(y, axis=1), np.int64)
        return np.ascontiguousarray(y, dtype)

    def _new_optimizer(self):
        # (numbers of any kind, NumPy's too, as scikit-learn's parameter checks let pass)
        lr, beta_1, beta_2, epsilon = map(float, (self.learning_rate_init, self.beta_1,
                                                  self.beta_2, self.epsilon))
        if self.solver == "sgd":
            return SklearnSGD(lr, float(self.momentum), bool(self.nesterovs_momentum),
                              float(self.alpha), self.learning_rate, float(self.power_t))
        if self.solver == "adam":
            return SklearnAdam(lr, beta_1, beta_2, epsilon, float(self.alpha))
        weight_decay = 0.05 if self.weight_decay is None else float(self.weight_decay)
        return AdamW(lr, beta_1, beta_2, epsilon, weight_decay)

    def _steps(self, backend, X):
        """The backend's run of steps for ``X``: its own, or, for a sparse ``X`` (which the
        fused epoch cannot gather), the one loop over its ``forward`` and ``backward``."""
        if scipy.sparse.issparse(X):
            return ComposedSteps(backend.forward, backend.backward)
        return backend.run_steps

    def _fit_stochastic(self, X, y, sample_weight, params, incremental):
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._new_optimizer()
        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped", stacklevel=5)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        steps = -(-n_samples // batch_size)

        dtype = params[0][0].dtype
        batches = Batches(X_train, self._targets(y_train, dtype), None, batch_size,
                          self._rows(X_train, dtype), dtype,
                          None if sample_weight_train is None
                          else np.ascontiguousarray(sample_weight_train, np.float64))
        total_weight = n_samples if sample_weight_train is None else float(
            np.sum(sample_weight_train))
        constant = self._loss_constant(y_train, sample_weight_train)
        backend = backends.get_backend()
        run_steps = self._steps(backend, X_train)
        family = self._family()
        rates = self._learning_rates(steps, incremental)

        try:
            self.n_iter_ = 0
            stop_after = None
            for it in range(self.max_iter):
                if self.shuffle:
                    # only the indices are shuffled; a run of steps gathers the rows
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                if hasattr(self._optimizer, "penalty_sum"):
                    self._optimizer.penalty_sum = 0.0
                done = run_steps(params, batches._replace(
                    order=sample_idx if self.shuffle else None), self._optimizer, rates(it),
                    **family)
                if done.failed_step >= 0:
                    # scikit-learn goes on where the loss overflows, and its weights
                    # become NaN; so do these, without the steps
                    for W, b in params:
                        W[...] = np.nan
                        b[...] = np.nan
                self.n_iter_ += 1
                self.loss_ = self._epoch_loss(done, total_weight, constant)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_:d}, loss = {self.loss_:.8f}")

                # update no_improvement_count based on training loss or
                # validation score according to early_stopping
                self._update_no_improvement_count(early_stopping, X_val, y_val,
                                                  sample_weight_val)
                # for learning rate that needs to be updated at iteration end
                if hasattr(self._optimizer, "iteration_ends"):
                    self._optimizer.iteration_ends(self.t_)

                if stop_after is not None and self.n_iter_ >= stop_after:
                    break
                if self._no_improvement_count > self.n_iter_no_change and stop_after is None:
                    # not better than last `n_iter_no_change` iterations by tol
                    # stop or decrease learning rate
                    if early_stopping:
                        msg = ("Validation score did not improve more than "
                               f"tol={self.tol:f} for {self.n_iter_no_change:d} consecutive "
                               "epochs.")
                    else:
                        msg = (f"Training loss did not improve more than tol={self.tol:f}"
                               f" for {self.n_iter_no_change:d} consecutive epochs.")
                    stop_after = self._stall(msg, rates, it, steps)
                    if stop_after == self.n_iter_:
                        break
                    if stop_after is None:
                        self._no_improvement_count = 0

                if incremental:
                    break

                planned = self._schedule is not None and anneals(self._schedule)
                if self.n_iter_ == self.max_iter and not planned:
                    # (a schedule planned over max_iter epochs has run its course)
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter:d}) "
                        "reached and the optimization hasn't converged yet.",
                        ConvergenceWarning, stacklevel=5,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=5)

        if early_stopping:
            # restore best weights
            for coef, best in zip(self.coefs_, self._best_coefs):
                coef[...] = best
            for intercept, best in zip(self.intercepts_, self._best_intercepts):
                intercept[...] = best

    def _learning_rates(self, steps, incremental=False):
        """``rates(epoch)``: the learning rate of each step of epoch ``epoch`` (0-based).

        scikit-learn's solvers step at the optimizer's current rate, which
        ``'invscaling'`` and ``'adaptive'`` change between epochs; ``'adamw'``
        follows ``learning_rate`` (``'onecycle'``, ``'cosine'``, or the
        constant ``learning_rate_init``) over the ``max_iter`` epochs, or,
        once annealing, the anneal that ``_stall`` set. ``partial_fit``
        (``incremental``), which knows no end to plan for, steps at
        ``learning_rate_init``.
        """
        self._schedule = None
        if self.solver == "adamw" and self.learning_rate in _SCHEDULES and not incremental:
            self._schedule = get_schedule(self.learning_rate)
        total = self.max_iter * steps

        def rates(epoch):
            if self._schedule is None:
                return np.full(steps, float(self._optimizer.learning_rate))
            first = epoch * steps
            return np.array([self.learning_rate_init * self._schedule(first + k, total)
                             for k in range(steps)])

        return rates

    def _stall(self, msg, rates, it, steps):
        """Training has stalled: the epoch count (``n_iter_``) to stop after, or None to go on.

        scikit-learn's rule (``trigger_stopping``: stop, or for
        ``'adaptive'`` divide the rate by 5 and go on). With
        ``solver='adamw'`` and a schedule that anneals, early stopping
        anneals the rate over ``anneal_epochs`` more epochs first, and
        without early stopping every epoch of the schedule runs.
        """
        if self._schedule is not None and anneals(self._schedule):
            if not self.early_stopping:
                return None
            if self.anneal_epochs > 0:
                if self.verbose:
                    print(msg + f" Annealing the learning rate over {self.anneal_epochs} "
                          "epochs.")
                self._schedule = annealed(self._schedule, (it + 1) * steps,
                                          self.anneal_epochs * steps)
                return self.n_iter_ + self.anneal_epochs
        stopping = getattr(self._optimizer, "trigger_stopping", None)
        if stopping is None:
            if self.verbose:
                print(msg + " Stopping.")
            return self.n_iter_
        return self.n_iter_ if stopping(msg, self.verbose) else None

    def _loss_constant(self, y, sample_weight):
        """What scikit-learn's loss adds to the network's (the Poisson deviance's
        ``y log y - y``, averaged over the samples): 0 but for ``loss='poisson'``."""
        if self.out_activation_ != "exp":
            return 0.0
        rows = (xlogy(y, y) - y).sum(axis=1)
        return float(np.average(rows, weights=sample_weight))

    def _epoch_loss(self, done, total_weight, constant) -> float:
        """scikit-learn's ``loss_`` of an epoch from its steps' loss sum and L2 penalty.

        The backends' squared error sums over outputs, scikit-learn's averages
        (its gradient is the sum's); its Poisson loss adds a constant.
        """
        if done.failed_step >= 0:
            return np.nan
        data = done.loss_sum / (self.n_outputs_ if self.out_activation_ == "identity" else 1)
        penalty = getattr(self._optimizer, "penalty_sum", 0.0)
        return float((data + penalty) / max(total_weight, np.finfo(float).tiny) + constant)

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            # compute validation score (can be NaN), use that for stopping
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _full_batch(self, params, X, Y, targets, sample_weight, total_weight):
        """The loss (scikit-learn's, without the L2 term) and the gradients of all of
        ``X``, on the backend in effect: one forward and backward pass, or one per
        chunk of rows for a sparse or large ``X``, their sums combined."""
        backend = backends.get_backend()
        dtype = params[0][0].dtype
        rows = self._rows(X, dtype)
        family = self._family()
        backward_family = {"activation": self.activation} if self.activation != "relu" else {}
        n = X.shape[0]
        chunk = n if n <= 2 * _CHUNK and not scipy.sparse.issparse(X) else _CHUNK
        loss, grads = 0.0, None
        for begin in range(0, n, chunk):
            end = min(begin + chunk, n)
            x = X[begin:end] if rows is None else rows.transform(X[begin:end], dtype)
            w = None if sample_weight is None else sample_weight[begin:end]
            out, cache = backend.forward(params, x, **family)
            losses = _row_losses(self.out_activation_, Y[begin:end], out)
            part = float(losses.sum() if w is None else np.dot(w, losses))
            if w is None:
                g = backend.backward(params, cache, targets[begin:end], **backward_family)
                share = end - begin
            else:
                g = backend.backward(params, cache, targets[begin:end], w, **backward_family)
                share = backends.weight_total(w)
            loss += part
            if chunk == n:
                grads = [[dW, db] for dW, db in g]
            else:  # the chunk's mean gradient times its weight, summed
                g = [[dW * (share / total_weight), db * (share / total_weight)]
                     for dW, db in g]
                grads = g if grads is None else [[a + c, b + d] for (a, b), (c, d)
                                                 in zip(grads, g)]
        return loss / total_weight, grads

    def _fit_lbfgs(self, X, y, sample_weight, params):
        dtype = params[0][0].dtype
        targets = self._targets(y, dtype)
        Y = np.asarray(y, dtype)
        total_weight = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
        shapes = [coef.shape for coef in self.coefs_]
        sizes = [math.prod(shape) for shape in shapes] + [b.size for b in self.intercepts_]
        bounds = np.cumsum([0] + sizes)
        layers = len(params)

        def unpack(theta):
            for l, (W, b) in enumerate(params):
                W[...] = theta[bounds[l]:bounds[l + 1]].reshape(shapes[l]).T
                b[...] = theta[bounds[layers + l]:bounds[layers + l + 1]]

        def loss_grad(theta):
            unpack(theta)
            loss, grads = self._full_batch(params, X, Y, targets, sample_weight, total_weight)
            # scikit-learn's L2 term: alpha / 2 * sum(W**2) / n, gradient alpha * W / n
            values = sum(float(np.dot(W.ravel(), W.ravel())) for W, _ in params)
            loss += (0.5 * self.alpha) * values / total_weight
            for (W, _), grad in zip(params, grads):
                grad[0] = grad[0] + (self.alpha / total_weight) * W
            return loss, _pack([dW.T for dW, _ in grads], [db for _, db in grads])

        iprint = 1 if self.verbose is True or self.verbose >= 1 else -1
        try:
            from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
            extra = _get_additional_lbfgs_options_dict("iprint", iprint)
        except ImportError:  # scikit-learn before 1.7 passed iprint as it is
            extra = {"iprint": iprint}
        opt_res = scipy.optimize.minimize(
            loss_grad, _pack(self.coefs_, self.intercepts_), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **extra})
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        unpack(opt_res.x)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The input data. A sparse matrix (CSR or CSC) is densified a batch
            of rows at a time.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                f" optimizers. {self.solver} is not stochastic."
            )
        return True

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Private score method without input validation."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __setstate__(self, state):
        if "model_" in state or "epochs" in state:
            raise TypeError(
                f"this pickle holds a fastmlp.sklearn.{type(self).__name__} of fastmlp's "
                "first estimator interface (epochs=, optimizer=, schedule=, a fitted "
                "model_), which this version cannot load. Refit it with scikit-learn's "
                "parameter names (docs/user_guide/sklearn.md, 'From the old parameter "
                "names'), or, with the old fastmlp installed, save its network with "
                "clf.model_.save(path) and load that with fastmlp.MLP.load(path)"
            )
        super().__setstate__(state)


_ATTRIBUTES_DOC = """
    Attributes
    ----------
    loss_ : float
        The current loss computed with the loss function (with the L2 term).
    best_loss_ : float or None
        The minimum loss reached by the solver throughout fitting; None with
        ``early_stopping=True``.
    loss_curve_ : list of shape (`n_iter_`,)
        The loss of every iteration (stochastic solvers).
    validation_scores_ : list of shape (`n_iter_`,) or None
        The score of each iteration on the held-out validation set, with
        ``early_stopping=True``; else None.
    best_validation_score_ : float or None
        The best of ``validation_scores_``, or None.
    t_ : int
        The number of training samples seen by the solver during fitting.
    coefs_ : list of shape (n_layers - 1,)
        ``coefs_[i]``, shape ``(n_in, n_out)``, is layer ``i``'s weight matrix:
        a view of the backend's ``W`` of shape ``(n_out, n_in)``, updated by
        ``partial_fit`` and warm fits. Assigning new arrays is allowed: the next
        fit or prediction reads them.
    intercepts_ : list of shape (n_layers - 1,)
        ``intercepts_[i]`` is the bias vector of layer ``i + 1``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.
    n_iter_ : int
        The number of iterations the solver ran in the last fit.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Name of the output activation function.
"""

_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam', 'adamw'}, default='adam'
        ``'lbfgs'``: SciPy's L-BFGS-B on the full-batch loss and gradient,
        computed by the backend. ``'sgd'``, ``'adam'``: scikit-learn's update
        rules (``fastmlp.optim.SklearnSGD``, ``SklearnAdam``). ``'adamw'``:
        fastmlp's AdamW (decoupled ``weight_decay``; ``alpha`` is not used), with
        the schedules ``learning_rate='onecycle'`` or ``'cosine'``.
    alpha : float, default=0.0001
        Strength of the L2 regularization term, divided by the sample size (of
        the batch) when added to the loss.
    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers; ``'auto'`` is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'onecycle', 'cosine'}, \
default='constant'
        Learning rate schedule. scikit-learn's three are used by
        ``solver='sgd'`` (``'invscaling'``: ``learning_rate_init / pow(t,
        power_t)``; ``'adaptive'``: divided by 5 each time training stalls);
        fastmlp's ``'onecycle'`` and ``'cosine'`` are planned over
        ``max_iter`` epochs for ``solver='adamw'``, and then every epoch runs
        unless ``early_stopping`` ends training.
    learning_rate_init : float, default=0.001
        The initial (for ``'onecycle'``, the peak) learning rate.
    power_t : float, default=0.5
        The exponent of ``'invscaling'``.
    max_iter : int, default=200
        Maximum number of iterations: epochs for the stochastic solvers.
    shuffle : bool, default=True
        Whether to shuffle samples in each iteration.
    random_state : int, RandomState instance, default=None
        Weight initialisation, the early-stopping split and the shuffling, as
        scikit-learn draws them: the same seed gives the same model.
    tol : float, default=1e-4
        Tolerance of the convergence test (see ``n_iter_no_change``), and
        L-BFGS-B's ``gtol``.
    verbose : bool, default=False
        Whether to print progress messages to stdout, as scikit-learn prints them.
    warm_start : bool, default=False
        Reuse the solution of the previous call to fit as initialization.
    momentum : float, default=0.9
        Momentum of ``solver='sgd'``.
    nesterovs_momentum : bool, default=True
        Whether ``solver='sgd'`` uses Nesterov's momentum.
    early_stopping : bool, default=False
        Set ``validation_fraction`` of the training data aside and stop when its
        score has not improved by at least ``tol`` for ``n_iter_no_change``
        epochs, keeping the best epoch's weights.
    validation_fraction : float, default=0.1
        The proportion of training data set aside for early stopping.
    beta_1 : float, default=0.9
        Decay rate of Adam's (and AdamW's) first moment estimates.
    beta_2 : float, default=0.999
        Decay rate of the second moment estimates.
    epsilon : float, default=1e-8
        Adam's (and AdamW's) numerical-stability term.
    n_iter_no_change : int, default=10
        Maximum number of epochs not to meet the ``tol`` improvement.
    max_fun : int, default=15000
        ``solver='lbfgs'``'s most loss function calls."""

_FASTMLP_DOC = """
    backend : {'loop', 'einsum', 'matmul', 'numba'} or None, default=None
        fastmlp backend of fit and prediction; None is the one in effect
        (``fastmlp.use_backend``, ``set_backend``, ``FASTMLP_BACKEND``).
    dtype : {'float32', 'float64'} or None, default=None
        The weights' dtype. None is scikit-learn's rule: float32 ``X`` gives
        float32 weights and predictions, anything else float64. Given, ``X``
        of either float dtype or raw ``uint8`` is read as it is and cast a
        batch at a time.
    standardize : bool, default=False
        Standardise inputs with ONE mean and ONE standard deviation of all
        training values (fastmlp's ``InputScaler``, which suits pixels); the
        weights then apply to the standardised inputs.
    weight_decay : float or None, default=None
        ``solver='adamw'``'s decoupled weight decay; None is 0.05.
    anneal_epochs : int, default=5
        With ``solver='adamw'``, ``learning_rate='onecycle'`` or
        ``'cosine'`` and ``early_stopping``: the epochs that anneal the rate
        once validation has stalled, before training stops (0 stops at the
        stall)."""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer Perceptron classifier: scikit-learn's, trained by a fastmlp backend.

    The constructor, defaults, fitted attributes and behaviour of
    ``sklearn.neural_network.MLPClassifier`` (scikit-learn 1.9), so code
    written for it runs unchanged; the same ``random_state`` gives the same
    model to rounding. Binary problems have one logistic output, multiclass
    a softmax, multilabel ``y`` (an indicator matrix) one logistic unit per
    label.

    Parameters
    ----------""" + _PARAMETERS_DOC + _FASTMLP_DOC + """
    class_weight : dict, 'balanced' or None, default=None
        Weight of each class, multiplying ``sample_weight`` (single-output
        ``y``); ``'balanced'`` is ``n_samples / (n_classes * count)``
        (not in ``partial_fit``, whose counts are one batch's).
""" + _ATTRIBUTES_DOC + """    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.

    See Also
    --------
    MLPRegressor : The regressor.
    sklearn.neural_network.MLPClassifier : scikit-learn's own.

    Notes
    -----
    Where the answers differ from scikit-learn's, and why, is in the user
    guide (``docs/user_guide/sklearn.md``): mainly rounding, as the backends
    sum products in other orders, and the training loss under
    ``sample_weight``, averaged over the epoch's weight rather than its rows.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y,
    ...                                                     random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X_train, y_train)
    >>> clf.predict(X_test[:5, :])
    array([1, 0, 1, 0, 1])
    >>> clf.score(X_test, y_test) > 0.8
    True
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [None, dict, StrOptions({"balanced"})],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, backend=None, dtype=None, standardize=False,
                 class_weight=None, weight_decay=None, anneal_epochs=5):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.standardize = standardize
        self.class_weight = class_weight
        self.weight_decay = weight_decay
        self.anneal_epochs = anneal_epochs

    loss = "log_loss"  # scikit-learn's classifier has it as a fixed attribute

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=self._input_dtypes(), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        # bool: no float64 copy of the targets beside float32 data
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _class_weighted(self, y, sample_weight, incremental):
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported with multilabel y")
        classes = self.classes_
        index = y[:, 0].astype(np.int64) if y.shape[1] == 1 else np.argmax(y, axis=1)
        class_weight = self.class_weight
        if isinstance(class_weight, str):
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported in partial_fit: one call's "
                    "class counts are not the data set's. Pass a dict, such as "
                    "dict(zip(classes, compute_class_weight('balanced', classes=classes, "
                    "y=y_all))) from sklearn.utils.class_weight")
        else:
            # labels to class indices; numbers compare by value (1 == 1.0 == np.int64(1))
            position = {label: i for i, label in enumerate(classes.tolist())}
            unknown = [label for label in class_weight if label not in position]
            if unknown:
                raise ValueError(f"class_weight has labels {unknown} that are not in the "
                                 f"classes {classes.tolist()}")
            class_weight = {position[label]: w for label, w in class_weight.items()}
        return training_weights(index, len(classes), sample_weight, class_weight)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(X, y, sample_weight=sample_weight,
                                            score_function=accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Return the log of probability estimates.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class (column ``k`` is ``classes_[k]``),
            in the weights' dtype.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer Perceptron regressor: scikit-learn's, trained by a fastmlp backend.

    The constructor, defaults, fitted attributes and behaviour of
    ``sklearn.neural_network.MLPRegressor`` (scikit-learn 1.9): squared error
    with an identity output, or Poisson with an exp output; several targets
    are several outputs.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss function.""" + _PARAMETERS_DOC + _FASTMLP_DOC + "\n" + _ATTRIBUTES_DOC + """
    See Also
    --------
    MLPClassifier : The classifier.
    sklearn.neural_network.MLPRegressor : scikit-learn's own.

    Notes
    -----
    ``partial_fit`` is not available with ``solver='lbfgs'`` (scikit-learn
    1.9's regressor offers it and runs L-BFGS; its classifier refuses).

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=200, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1).fit(X, y)
    >>> regr.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, backend=None, dtype=None, standardize=False,
                 weight_decay=None, anneal_epochs=5):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.standardize = standardize
        self.weight_decay = weight_decay
        self.anneal_epochs = anneal_epochs

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples, n_outputs)
            The predicted values, in the weights' dtype.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(X, y, sample_weight=sample_weight,
                                            score_function=r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=self._input_dtypes(), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
