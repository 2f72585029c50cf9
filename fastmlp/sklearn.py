"""A scikit-learn classifier around ``fastmlp.MLP``.

Needs the ``sklearn`` extra (``pip install "fastmlp[sklearn]"``); ``import
fastmlp`` alone never imports scikit-learn.

>>> from sklearn.datasets import load_digits
>>> from fastmlp.sklearn import MLPClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(32,), epochs=5, random_state=0).fit(X, y)
>>> clf.predict_proba(X[:2]).shape
(2, 10)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import numpy as np

try:
    from sklearn import get_config
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'fastmlp.sklearn needs scikit-learn >= 1.6: pip install "fastmlp[sklearn]"'
    ) from exc

from . import backends
from ._validation import check_dtype, check_positive_int
from .model import MLP
from .train import fit as train
from .train import training_optimizer, training_weights

__all__ = ["MLPClassifier"]

_OTHER_FLOAT = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.float32}


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier (ReLU hidden layers, softmax output) trained by fastmlp.

    A scikit-learn estimator: it works in ``Pipeline``, ``GridSearchCV``,
    ``cross_val_score``, ``clone`` and ``pickle``, on numeric data of any
    number of features and labels of any kind (strings too).

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (128, 128)
        Units of each hidden layer; ``()`` gives softmax regression.
    backend : str or None, default None
        fastmlp backend for ``fit`` and prediction (``'loop'``, ``'einsum'``,
        ``'matmul'``, ``'numba'``); None uses the one in effect at the call
        (``fastmlp.use_backend``, ``fastmlp.set_backend``, ``FASTMLP_BACKEND``).
    dtype : {'float32', 'float64'}, default 'float32'
        Dtype of the weights and of every computation; ``predict_proba``
        returns this dtype.
    epochs : int, default 15
        Passes over the training data in ``fit`` (scikit-learn's ``max_iter``):
        every one runs, unless ``early_stopping`` ends training sooner.
    batch_size : int, default 128
        Samples per gradient step.
    optimizer : str or optimizer object, default 'adamw'
        A name from ``fastmlp.optim.OPTIMIZERS`` (``'sgd'``, ``'momentum'``,
        ``'nesterov'``, ``'adam'``, ``'adamw'``) or an object with
        ``step(params, grads, learning_rate)`` such as ``fastmlp.optim.Adam()``,
        which ``fit`` copies rather than changes.
    learning_rate : float or None, default None
        Base (peak) learning rate; None takes the named optimizer's default
        (3e-3 for ``'adamw'``, 1e-3 for ``'adam'``) or the object's own. This
        is scikit-learn's ``learning_rate_init``; scikit-learn's own
        ``learning_rate`` names a schedule, which here is ``schedule``.
    weight_decay : float or None, default None
        Weight decay of a named optimizer; None takes its default (0.05 for
        ``'adamw'``). Set it on the object for an optimizer object.
    schedule : {'onecycle', 'cosine', 'constant'}, default 'onecycle'
        Learning-rate schedule over all steps of ``fit``. ``partial_fit``
        does not know how long training will be and always steps at the
        constant base rate.
    standardize : bool, default True
        Standardise inputs with ONE mean and ONE standard deviation of all
        training values (fastmlp's ``InputScaler``), which suits pixels. For
        features on different scales put a ``StandardScaler`` first in a
        ``Pipeline``.
    random_state : int, RandomState instance or None, default None
        Seeds the weight initialisation and the shuffling of every epoch;
        an int makes ``fit`` reproducible.
    verbose : int, default 0
        Above 0, print one line per epoch: loss, training accuracy, seconds.
    warm_start : bool, default False
        When True, ``fit`` on a fitted estimator continues training the
        fitted network for ``epochs`` more epochs instead of initialising a
        new one: from its weights, with the optimizer's state (Adam's moments
        and step count) and the shuffling where the last call left them, as
        ``partial_fit`` does. ``n_iter_`` and ``loss_curve_`` count on.
        ``schedule`` runs over the warm fit's own steps, so ``'onecycle'``
        warms up and anneals again (a restart); ``'constant'`` continues at the
        base rate. The data must have the network's features and classes, and
        ``hidden_layer_sizes``, ``dtype`` and ``standardize`` must be those it
        was made with (``ValueError`` names what differs); ``epochs``,
        ``batch_size``, ``learning_rate``, ``schedule`` and ``backend`` may
        change. A changed ``optimizer`` or ``weight_decay`` starts that
        optimizer with fresh state on the current weights.
    early_stopping : bool, default False
        Hold out a stratified ``validation_fraction`` of the training data in
        ``fit`` and stop when its accuracy has not improved by more than
        ``tol`` for ``n_iter_no_change`` epochs, ending with the weights of the
        best epoch, as scikit-learn does; with a ``schedule`` that comes down
        (``'onecycle'``, ``'cosine'``), after ``anneal_epochs`` epochs more
        that anneal the learning rate. ``partial_fit`` ignores it.
    validation_fraction : float, default 0.1
        Share of the training data held out by ``early_stopping``.
    n_iter_no_change : int, default 10
        Epochs without an improvement of more than ``tol`` that
        ``early_stopping`` allows; training stops at the next.
    tol : float, default 1e-4
        The smallest rise of validation accuracy that counts as an improvement.
    anneal_epochs : int, default 5
        With ``early_stopping``, the epochs trained once validation accuracy
        has stalled, while the learning rate anneals from where ``schedule``
        has it to the schedule's final value; then training stops. 0 stops
        at the stall, as scikit-learn does (see ``fastmlp.fit``).
    class_weight : dict, 'balanced' or None, default None
        Weight of each class in the loss, multiplying ``sample_weight``: a
        dict maps class labels (as in ``y``) to weights, a class it does not
        name weighing 1; ``'balanced'`` weighs class ``k`` by ``n_samples /
        (n_classes * count_k)`` (scikit-learn's ``compute_class_weight``,
        counting ``sample_weight`` when given), so that every class weighs the
        same in all. ``partial_fit`` takes a dict only: one call's counts are
        not the data set's.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; column ``k`` of ``predict_proba`` is ``classes_[k]``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen in ``fit``, when ``X`` had string column names.
    model_ : fastmlp.MLP
        The trained network, layer sizes ``(n_features_in_, *hidden_layer_sizes,
        n_classes)``; ``model_.save(path)`` writes it for the ``fastmlp`` CLI.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape ``(n_in, n_out)``, layer ``i``'s weights as
        scikit-learn lays them out: read-only views of ``model_``'s.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape ``(n_out,)``, layer ``i``'s biases:
        read-only views of ``model_``'s.
    optimizer_ : optimizer object
        The optimizer with its state (moment estimates, step count), which
        ``partial_fit`` and a warm ``fit`` continue.
    n_iter_ : int
        Epochs run since the weights were initialised (``partial_fit`` calls
        count one each, a warm ``fit`` adds its epochs).
    loss_ : float
        Mean training cross-entropy of the last epoch (weighted by
        ``sample_weight`` and ``class_weight`` when given).
    loss_curve_ : list of float
        Mean training cross-entropy of every epoch (weighted, as ``loss_``).
    best_loss_ : float or None
        The lowest of ``loss_curve_``; None with ``early_stopping``, as in scikit-learn.
    validation_scores_ : list of float or None
        With ``early_stopping``, the validation accuracy of every epoch of
        ``fit`` (a warm ``fit`` adds its own); else None.
    best_validation_score_ : float or None
        The highest of ``validation_scores_``, or None.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : scikit-learn's own, with L-BFGS;
        fastmlp's trains the same network several times faster.

    Notes
    -----
    Parameter names follow scikit-learn's ``MLPClassifier`` where it has them
    (``hidden_layer_sizes``, ``batch_size``, ``random_state``, ``verbose``);
    ``epochs``, ``learning_rate`` and ``schedule`` stand for its ``max_iter``,
    ``learning_rate_init`` and ``learning_rate``. The activation is always
    ReLU and the loss cross-entropy of a softmax, also for two classes.

    ``warm_start`` differs from scikit-learn's (1.9) in three ways: a warm fit
    here continues the optimizer's state and the shuffling, where
    scikit-learn's starts a new optimizer and draws the shuffles from
    ``random_state`` again; ``n_iter_`` counts every epoch since the
    initialisation, where scikit-learn's counts the last call's; and a
    changed ``hidden_layer_sizes`` is an error, which scikit-learn ignores.

    ``early_stopping``, ``validation_fraction``, ``n_iter_no_change`` and ``tol``
    are scikit-learn's, passed to ``fastmlp.fit`` as ``monitor='val_accuracy'``,
    ``patience=n_iter_no_change + 1`` and ``min_delta=tol``: the run stalls
    at the epoch where scikit-learn's rule stops it. With a one-cycle or
    cosine schedule, planned for ``epochs`` epochs, the learning rate is then
    still high; ``anneal_epochs`` more epochs bring it down before training
    stops (``anneal_epochs=0`` stops at the stall). Without
    ``early_stopping`` scikit-learn also stops when the training loss stalls;
    here every epoch runs, as a learning-rate schedule over ``epochs``
    expects.

    With ``sample_weight`` or ``class_weight``, each mini-batch's loss is the
    weighted mean ``sum_i w_i loss_i / sum_i w_i`` of its samples, as in
    scikit-learn's ``MLPClassifier``, and the input standardisation is fitted
    with the weights too; a batch whose weights are all 0 takes a step with a
    zero gradient. An integer weight is not the same as repeating a sample
    when there is more than one batch per epoch: repeated rows land in other
    batches, and the epoch has more steps.

    The defaults are tuned for MNIST's 60 000 images (470 steps an epoch). A few
    hundred samples give a handful of steps an epoch and need a smaller batch, a
    higher learning rate or more epochs, as in the example.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, y = make_blobs(n_samples=200, centers=3, random_state=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), epochs=20, batch_size=32,
    ...                     learning_rate=0.03, random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (128, 128), *,
                 backend: str | None = None, dtype="float32", epochs: int = 15,
                 batch_size: int = 128, optimizer="adamw", learning_rate: float | None = None,
                 weight_decay: float | None = None, schedule: str = "onecycle",
                 standardize: bool = True, random_state=None, verbose: int = 0,
                 warm_start: bool = False, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 tol: float = 1e-4, anneal_epochs: int = 5, class_weight=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.backend = backend
        self.dtype = dtype
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.anneal_epochs = anneal_epochs
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None) -> MLPClassifier:
        """Initialise the network and train it for ``epochs`` epochs.

        With ``warm_start`` and a fitted estimator, train the fitted network
        ``epochs`` more epochs instead, continuing the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs, numeric and finite. float32, float64 and uint8
            arrays are used as they are (uint8 pixels need no float copy with
            the numba backend); other dtypes are converted to ``dtype``. The
            same values give the same model whatever their dtype.
        y : array-like of shape (n_samples,)
            Class labels, of any kind; at least two classes.
        sample_weight : array-like of shape (n_samples,), default None
            Finite, non-negative weight of each sample, not all 0; at least two
            classes must keep a positive weight. Multiplied by ``class_weight``.

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        warm = self.warm_start and hasattr(self, "model_")
        X, y = self._validate_fit_data(X, y, reset=not warm)
        classes, y_index = np.unique(y, return_inverse=True)
        if warm:
            self._continue(classes)
        elif len(classes) < 2:
            raise ValueError(
                f"y has only one class ({classes.tolist()[0]!r}); "
                "a classifier needs at least two classes"
            )
        weights = self._weights(X, y_index, classes, sample_weight, "balanced")
        if weights is not None:
            weighed = np.unique(y_index[weights > 0])
            if len(weighed) < 2:
                raise ValueError(
                    f"only class {classes.tolist()[weighed[0]]!r} has samples of positive weight "
                    "(sample_weight times class_weight); a classifier needs at least two classes"
                )
        if not warm:
            self._initialise(classes)
        self._train(X, y_index, self.epochs, self.schedule, self.early_stopping, weights)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> MLPClassifier:
        """Train for one epoch over ``(X, y)``, continuing from the current state.

        The first call initialises the network and needs ``classes``; later
        calls continue the weights, the optimizer's state (Adam's moments and
        step count) and the shuffling. Each call steps at the constant base
        learning rate, whatever ``schedule`` says.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels, all among ``classes``.
        classes : array-like of shape (n_classes,), optional
            Every class of all calls; required on the first call, and if given
            later it must equal ``classes_``.
        sample_weight : array-like of shape (n_samples,), default None
            Finite, non-negative weight of each sample, not all 0. Multiplied
            by ``class_weight``, which must be a dict here (or None).

        Returns
        -------
        MLPClassifier
            ``self``.
        """
        first_call = not hasattr(self, "classes_")
        X, y = self._validate_fit_data(X, y, reset=first_call)
        if first_call:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit "
                    "(every class of all calls, e.g. np.unique(y_all))"
                )
            classes = np.unique(np.asarray(classes))
            if len(classes) < 2:
                raise ValueError(
                    f"classes has only one class ({classes.tolist()[0]!r}); "
                    "a classifier needs at least two classes"
                )
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes {np.unique(classes).tolist()} are not the classes "
                f"{self.classes_.tolist()} of the first call to partial_fit"
            )
        classes = classes if first_call else self.classes_
        known = np.isin(y, classes)
        if not known.all():
            raise ValueError(
                f"y has labels {np.unique(y[~known]).tolist()} that are not in the "
                f"classes {classes.tolist()}"
            )
        y_index = np.searchsorted(classes, y)
        weights = self._weights(X, y_index, classes, sample_weight, "balanced in partial_fit")
        if first_call:
            self._initialise(classes)
        self._train(X, y_index, 1, "constant", False, weights)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Column ``k`` is the probability of ``classes_[k]``; rows sum to 1.
            Of the estimator's ``dtype``.
        """
        X = self._validate_predict_data(X)
        with self._backend():
            return self.model_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithms of the class probabilities, computed from the logits.

        ``log(predict_proba(X))`` up to rounding, but computed as the
        log-softmax of the network's logits (``fastmlp.MLP.predict_log_proba``):
        where a probability underflows to 0 (a logit more than about 104
        below the largest in float32, 745 in float64) this gives its large
        negative logarithm, not ``-inf`` as scikit-learn's ``MLPClassifier``
        does by taking the log of its probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Column ``k`` is the log-probability of ``classes_[k]``. Of the
            estimator's ``dtype``.
        """
        X = self._validate_predict_data(X)
        with self._backend():
            return self.model_.predict_log_proba(X)

    def predict(self, X) -> np.ndarray:
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        probs = self.predict_proba(X)
        return self.classes_[np.argmax(probs, axis=1)]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Each layer's weights, shape ``(n_in, n_out)``: read-only views of ``model_``'s.

        ``coefs_[i]`` is laid out as in scikit-learn's ``MLPClassifier``: the
        transpose of ``model_.params[i][0]``, which is ``(n_out, n_in)``. No
        copy is made, so the list always describes the current network, and a
        view held across ``partial_fit`` or a warm ``fit`` changes with it;
        ``.copy()`` keeps a snapshot. The views are read-only so that a write
        by mistake cannot change the model behind training's back;
        ``model_.params`` holds the writeable weights. Unlike scikit-learn's,
        the weights apply to the inputs as ``model_.scaler`` transforms them:
        with ``standardize``, to ``(X - model_.scaler.mean) / model_.scaler.std``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit`` or ``partial_fit``.
        """
        check_is_fitted(self)
        return [_read_only_view(W.T) for W, _ in self.model_.params]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Each layer's biases, shape ``(n_out,)``: read-only views of ``model_``'s.

        ``intercepts_[i]`` is ``model_.params[i][1]``, viewed as ``coefs_`` is.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit`` or ``partial_fit``.
        """
        check_is_fitted(self)
        return [_read_only_view(b) for _, b in self.model_.params]

    def _input_dtypes(self) -> list:
        # Float inputs of either width, and uint8 pixels, are taken as they are:
        # the model's scaler is a function of the values, not of their dtype, and
        # casts them while scaling (numba's epoch gathers uint8 rows raw, with no
        # float copy of the data set). Anything else becomes the model's dtype.
        dtype = check_dtype(self.dtype)
        return [dtype.type, _OTHER_FLOAT[dtype], np.uint8]

    def _validate_predict_data(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self._input_dtypes(),
                             ensure_all_finite=True)

    def _validate_fit_data(self, X, y, *, reset: bool):
        X, y = validate_data(self, X, y, reset=reset, dtype=self._input_dtypes(),
                             ensure_all_finite=True)
        check_classification_targets(y)
        return X, y

    def _weights(self, X, y_index, classes, sample_weight, balanced):
        """Each sample's weight (``sample_weight`` times ``class_weight``), or None.

        ``balanced`` is ``'balanced'`` where that is allowed, else the words
        saying where it is not.
        """
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
        class_weight = self.class_weight
        if isinstance(class_weight, str) and class_weight == "balanced":
            if balanced != "balanced":
                raise ValueError(
                    "class_weight='balanced' is not supported in partial_fit: one call's "
                    "class counts are not the data set's. Pass a dict, such as "
                    "dict(zip(classes, compute_class_weight('balanced', classes=classes, "
                    "y=y_all))) from sklearn.utils.class_weight"
                )
        elif isinstance(class_weight, Mapping):
            # the labels' class indices; numbers compare by value (1 == 1.0 == np.int64(1))
            index = {label: i for i, label in enumerate(classes.tolist())}
            unknown = [label for label in class_weight if label not in index]
            if unknown:
                raise ValueError(f"class_weight has labels {unknown} that are not in the "
                                 f"classes {classes.tolist()}")
            class_weight = {index[label]: weight for label, weight in class_weight.items()}
        elif class_weight is not None:
            raise ValueError("class_weight must be None, 'balanced' or a dict mapping class "
                             f"labels to weights, got {class_weight!r}")
        return training_weights(y_index, len(classes), sample_weight, class_weight)

    def _backend(self):
        return nullcontext() if self.backend is None else backends.use_backend(self.backend)

    def _hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        if not all(isinstance(n, (int, np.integer)) and n >= 1 for n in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        return tuple(int(n) for n in sizes)

    def _new_optimizer(self):
        """A new optimizer from ``optimizer`` and ``weight_decay``, as ``fit`` makes it; an
        optimizer object is copied, so that training leaves the parameter as it was."""
        optimizer = training_optimizer(self.optimizer, self.learning_rate, self.weight_decay)
        return optimizer if isinstance(self.optimizer, str) else copy.deepcopy(optimizer)

    def _initialise(self, classes) -> None:
        """New network, optimizer and shuffling generator from the hyper-parameters."""
        sizes = self._hidden_layer_sizes()
        if self.backend is not None:
            backends.load_backend(self.backend)  # ValueError naming the choices
        optimizer = self._new_optimizer()
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        self.model_ = MLP((self.n_features_in_, *sizes, len(classes)), dtype=self.dtype,
                          seed=int(init_seed), standardize=self.standardize)
        self.classes_ = classes
        self.optimizer_ = optimizer
        self._optimizer_made_from = (self.optimizer, self.weight_decay)
        self._shuffle_rng = np.random.default_rng(int(shuffle_seed))
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.validation_scores_ = self.best_validation_score_ = None

    def _continue(self, classes) -> None:
        """Check that a warm fit's ``classes`` and hyper-parameters describe the fitted network.

        ``ValueError`` names every difference. A changed ``optimizer`` or
        ``weight_decay`` gets a new ``optimizer_``; the rest carries on.
        """
        model = self.model_
        differences = [
            f"{name} {wanted} where the fitted network has {fitted}"
            for name, wanted, fitted in [
                ("y has classes", classes.tolist(), self.classes_.tolist()),
                ("hidden_layer_sizes is", self._hidden_layer_sizes(), model.layer_sizes[1:-1]),
                ("dtype is", check_dtype(self.dtype).name, model.dtype.name),
                ("standardize is", bool(self.standardize), model.scaler.standardize),
            ]
            if wanted != fitted
        ]
        if differences:
            raise ValueError(
                f"warm_start=True continues the fitted network, but {'; '.join(differences)}; "
                "set warm_start=False to fit a new network"
            )
        made_from, weight_decay = self._optimizer_made_from
        same_optimizer = made_from is self.optimizer or (
            isinstance(made_from, str) and made_from == self.optimizer)
        if not (same_optimizer and weight_decay == self.weight_decay):
            self.optimizer_ = self._new_optimizer()
            self._optimizer_made_from = (self.optimizer, self.weight_decay)

    def _train(self, X, y_index, epochs: int, schedule: str, early_stopping: bool,
               sample_weight=None) -> None:
        """Run ``epochs`` epochs of ``fastmlp.train.fit`` on the current model and optimizer."""
        if early_stopping:
            check_positive_int(self.n_iter_no_change, "n_iter_no_change")
            if not (isinstance(self.tol, (int, float, np.floating)) and 0 <= self.tol < np.inf):
                raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        # scikit-learn stops once more than n_iter_no_change epochs have not improved
        stopping = dict(early_stopping=True, validation_fraction=self.validation_fraction,
                        monitor="val_accuracy", patience=self.n_iter_no_change + 1,
                        min_delta=self.tol, anneal_epochs=self.anneal_epochs
                        ) if early_stopping else {}
        first_epoch = self.n_iter_

        def report(epoch, history):
            if self.verbose > 0:
                score = history.val_accuracy[-1]
                validation = "" if score is None else f", validation score {score:.4f}"
                print(f"epoch {first_epoch + epoch}: loss {history.loss[-1]:.4f}, "
                      f"training accuracy {history.train_accuracy[-1]:.4f}{validation}, "
                      f"{history.seconds[-1]:.2f} s", flush=True)

        start = time.perf_counter()
        with self._backend():
            history = train(self.model_, X, y_index, epochs=epochs, batch_size=self.batch_size,
                            optimizer=self.optimizer_, learning_rate=self.learning_rate,
                            schedule=schedule, seed=int(self._shuffle_rng.integers(2**31)),
                            callback=report, sample_weight=sample_weight,
                            # validate_data has checked X for NaN and inf, unless told
                            # to assume it finite: then fit checks
                            check_finite=get_config()["assume_finite"], **stopping)
        if self.verbose > 0 and epochs > 1:
            print(f"trained {epochs} epochs in {time.perf_counter() - start:.2f} s", flush=True)
        self.n_iter_ += len(history)
        self.loss_curve_.extend(history.loss)
        self.loss_ = self.loss_curve_[-1]
        if early_stopping:
            self.validation_scores_ = [*(self.validation_scores_ or []), *history.val_accuracy]
            self.best_validation_score_ = max(self.validation_scores_)
            self.best_loss_ = None
        else:
            self.best_loss_ = min(self.loss_curve_)


def _read_only_view(array: np.ndarray) -> np.ndarray:
    # A guard against writing by mistake, not a lock: NumPy lets the owner of a
    # view of writeable memory set WRITEABLE back. Writes belong to model_.params.
    view = array.view()
    view.flags.writeable = False
    return view
