"""The network family: hidden activations, output functions and their losses, as tables.

As scikit-learn's ``sklearn/neural_network/_base.py`` keeps them, each choice
is one entry of a dict of small in-place NumPy functions, and every backend
reads these tables (or, for numba, one compiled table of the same functions):
a new activation is one entry here and one in the numba backend's table, not
a new kernel.

``ACTIVATIONS[name](Z)``
    Follows every layer but the last, written over ``Z``.
``DERIVATIVES[name](A, delta)``
    Multiplies ``delta`` by ``f'(z)`` computed from the layer's OUTPUT ``A =
    f(z)`` (logistic ``A (1 - A)``, tanh ``1 - A**2``, relu ``A > 0``): the
    outputs are what the backends keep for ``backward``.
``OUTPUTS[name](Z)``
    Follows the last layer, written over ``Z`` (row-wise for softmax).
``LOSSES[name](P, Y, sample_weight=None)``
    The output's canonical loss, summed over outputs and averaged over
    samples (weighted: ``sum_i w[i] loss[i] / sum_i w[i]``). Each output and
    its loss make the gradient with respect to the last layer's
    pre-activation ``P - Y``, so every backend's output delta is ``(P - Y) /
    n`` (or ``(P - Y) w / sum(w)``) whatever the output:

    ========  ============================  ===================================
    output    ``P`` from ``z``              loss of a row
    ========  ============================  ===================================
    softmax   ``exp(z) / sum(exp(z))``      ``-sum_j Y_j log P_j`` (cross-entropy)
    logistic  ``1 / (1 + exp(-z))``         ``-sum_j Y_j log P_j + (1 - Y_j) log(1 - P_j)``
    identity  ``z``                         ``sum_j (P_j - Y_j)**2 / 2``
    exp       ``exp(z)``                    ``sum_j P_j - Y_j log P_j`` (Poisson)
    ========  ============================  ===================================

``Y`` is a float target matrix ``(n_samples, n_outputs)``; for softmax it may
also be 1-D integer labels (``Y`` one-hot), the classic classifier.

Examples
--------
>>> import numpy as np
>>> from fastmlp import family
>>> Z = np.array([[-1.0, 0.0, 2.0]])
>>> family.ACTIVATIONS["relu"](Z.copy())
array([[0., 0., 2.]])
>>> A = family.ACTIVATIONS["tanh"](Z.copy())
>>> delta = np.ones_like(A)
>>> np.allclose(family.DERIVATIVES["tanh"](A, delta), 1 - np.tanh(Z) ** 2)
True
>>> round(family.LOSSES["identity"](np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])), 3)
2.5
"""

from __future__ import annotations

import numpy as np

# leaky_relu's slope below 0 (PyTorch's and Keras's default)
LEAKY_SLOPE = 0.01


def inplace_identity(Z):
    """``Z`` unchanged."""
    return Z


def inplace_logistic(Z):
    """``Z = 1 / (1 + exp(-Z))``, in place; 0 where ``exp(-Z)`` overflows."""
    with np.errstate(over="ignore"):
        np.negative(Z, out=Z)
        np.exp(Z, out=Z)
    Z += 1
    np.reciprocal(Z, out=Z)
    return Z


def inplace_tanh(Z):
    """``Z = tanh(Z)``, in place."""
    return np.tanh(Z, out=Z)


def inplace_relu(Z):
    """``Z = max(Z, 0)``, in place (NaN stays NaN)."""
    return np.maximum(Z, 0, out=Z)


def inplace_leaky_relu(Z):
    """``Z = Z`` where ``Z > 0``, else ``0.01 Z``, in place."""
    Z *= np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(LEAKY_SLOPE))
    return Z


def inplace_softmax(Z):
    """Row-wise softmax of ``Z`` (its last axis), in place.

    ``exp(z - max z)`` never overflows and gives the same ratios.
    """
    Z -= Z.max(axis=-1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=-1, keepdims=True)
    return Z


def inplace_exp(Z):
    """``Z = exp(Z)``, in place (``inf`` where it overflows)."""
    with np.errstate(over="ignore"):
        return np.exp(Z, out=Z)


def inplace_identity_derivative(A, delta):
    """``delta`` unchanged: the identity's derivative is 1."""
    return delta


def inplace_logistic_derivative(A, delta):
    """``delta *= A (1 - A)``, the logistic's derivative from its output ``A``."""
    delta *= A
    delta *= 1 - A
    return delta


def inplace_tanh_derivative(A, delta):
    """``delta *= 1 - A**2``, tanh's derivative from its output ``A``."""
    delta *= 1 - A ** 2
    return delta


def inplace_relu_derivative(A, delta):
    """``delta *= (A > 0)``, ReLU's derivative from its output ``A``."""
    delta *= A > 0
    return delta


def inplace_leaky_relu_derivative(A, delta):
    """``delta *= 1`` where ``A > 0``, else ``0.01``: from the output's sign, which is z's."""
    delta *= np.where(A > 0, delta.dtype.type(1), delta.dtype.type(LEAKY_SLOPE))
    return delta


ACTIVATIONS = {
    "identity": inplace_identity,
    "logistic": inplace_logistic,
    "tanh": inplace_tanh,
    "relu": inplace_relu,
    "leaky_relu": inplace_leaky_relu,
}

DERIVATIVES = {
    "identity": inplace_identity_derivative,
    "logistic": inplace_logistic_derivative,
    "tanh": inplace_tanh_derivative,
    "relu": inplace_relu_derivative,
    "leaky_relu": inplace_leaky_relu_derivative,
}

OUTPUTS = {
    "softmax": inplace_softmax,
    "logistic": inplace_logistic,
    "identity": inplace_identity,
    "exp": inplace_exp,
}

ACTIVATION_NAMES = tuple(ACTIVATIONS)
OUTPUT_NAMES = tuple(OUTPUTS)

# The loss each output is trained with, in words (for messages and docs).
LOSS_NAMES = {"softmax": "cross-entropy", "logistic": "binary cross-entropy",
              "identity": "squared error", "exp": "Poisson deviance"}


def check_activation(name) -> str:
    """``name`` if it is a hidden activation of ``ACTIVATIONS``; else ``ValueError``.

    Examples
    --------
    >>> check_activation("swish")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown activation 'swish'; valid activations are 'identity', 'logistic', ...
    """
    if not isinstance(name, str) or name not in ACTIVATIONS:
        valid = ", ".join(map(repr, ACTIVATION_NAMES))
        raise ValueError(f"unknown activation {name!r}; valid activations are {valid}")
    return name


def check_output(name) -> str:
    """``name`` if it is an output function of ``OUTPUTS``; else ``ValueError``."""
    if not isinstance(name, str) or name not in OUTPUTS:
        valid = ", ".join(map(repr, OUTPUT_NAMES))
        raise ValueError(f"unknown output {name!r}; valid outputs are {valid}")
    return name


def _tiny(P):
    return np.finfo(P.dtype).tiny if np.issubdtype(P.dtype, np.floating) else 1e-300


def _log(P):
    # log P, clipped at the dtype's smallest normal number: finite where P is 0
    return np.log(np.maximum(P, _tiny(P)))


def _softmax_rows(P, Y):
    P = np.atleast_2d(P)
    Y = np.asarray(Y)
    if Y.ndim <= 1 and np.issubdtype(Y.dtype, np.integer):
        Y = np.atleast_1d(Y)
        return -_log(P[np.arange(Y.shape[0]), Y])
    Y = np.atleast_2d(Y)
    # (Y_j log P_j is 0 where Y_j is 0, even where P_j underflowed)
    return -np.where(Y != 0, Y * _log(P), 0).sum(axis=-1)


def _logistic_rows(P, Y):
    P, Y = _as_matrices(P, Y)
    return -(np.where(Y != 0, Y * _log(P), 0)
             + np.where(Y != 1, (1 - Y) * _log(1 - P), 0)).sum(axis=-1)


def _identity_rows(P, Y):
    P, Y = _as_matrices(P, Y)
    return 0.5 * ((P - Y) ** 2).sum(axis=-1)


def _exp_rows(P, Y):
    P, Y = _as_matrices(P, Y)
    return (P - np.where(Y != 0, Y * _log(P), 0)).sum(axis=-1)


def _as_matrices(P, Y):
    P = np.atleast_2d(P)
    Y = np.asarray(Y)
    return P, Y.reshape(P.shape) if Y.size == P.size else np.atleast_2d(Y)


# Each sample's loss, shape (n_samples,), for each output
ROW_LOSSES = {"softmax": _softmax_rows, "logistic": _logistic_rows,
              "identity": _identity_rows, "exp": _exp_rows}


def _mean(rows, sample_weight):
    if sample_weight is None:
        return float(rows.mean())
    weights = np.asarray(sample_weight, np.float64)
    return float(np.dot(weights, rows)) / (float(weights.sum()) or 1.0)


def cross_entropy_loss(P, Y, sample_weight=None) -> float:
    """Mean cross-entropy of softmax outputs ``P`` for labels or a target matrix ``Y``."""
    return _mean(_softmax_rows(P, Y), sample_weight)


def binary_cross_entropy_loss(P, Y, sample_weight=None) -> float:
    """Binary cross-entropy of logistic outputs, summed over outputs, mean over samples."""
    return _mean(_logistic_rows(P, Y), sample_weight)


def squared_loss(P, Y, sample_weight=None) -> float:
    """``(P - Y)**2 / 2`` summed over outputs, mean over samples."""
    return _mean(_identity_rows(P, Y), sample_weight)


def poisson_loss(P, Y, sample_weight=None) -> float:
    """``P - Y log P`` summed over outputs, mean over samples (Poisson deviance up to a
    term in ``Y`` alone)."""
    return _mean(_exp_rows(P, Y), sample_weight)


LOSSES = {"softmax": cross_entropy_loss, "logistic": binary_cross_entropy_loss,
          "identity": squared_loss, "exp": poisson_loss}


def _softmax_hits(P, Y):
    labels = Y if is_labels(Y) else np.atleast_2d(Y).argmax(-1)
    return int(np.count_nonzero(np.atleast_2d(P).argmax(axis=-1) == np.atleast_1d(labels)))


def _logistic_hits(P, Y):
    # every output on the right side of 1/2 (scikit-learn's exact match for multilabel)
    P, Y = _as_matrices(P, Y)
    return int(np.count_nonzero(((P > 0.5) == (Y > 0.5)).all(axis=-1)))


def _no_hits(P, Y):
    return 0


# Samples whose prediction was right, for the accuracy fit reports: the most probable
# class for softmax, every label on the right side of 1/2 for logistic; none for
# regression outputs (identity, exp), whose "accuracy" is not defined.
HITS = {"softmax": _softmax_hits, "logistic": _logistic_hits,
        "identity": _no_hits, "exp": _no_hits}


def targets(y, n_samples: int, n_outputs: int, dtype) -> np.ndarray:
    """The target matrix ``Y`` ``(n_samples, n_outputs)`` in ``dtype`` of 1-D integer labels
    (one-hot) or of a matrix (or, for one output, a 1-D array) of float targets.

    Labels are taken as they are (the caller checked them); a float ``y`` of
    another shape raises ``ValueError``.
    """
    y = np.asarray(y)
    if y.ndim <= 1 and np.issubdtype(y.dtype, np.integer):
        Y = np.zeros((n_samples, n_outputs), dtype)
        Y[np.arange(n_samples), np.atleast_1d(y)] = 1
        return Y
    if y.ndim <= 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    y = np.atleast_2d(y)
    if y.shape != (n_samples, n_outputs):
        raise ValueError(f"targets have shape {y.shape}; the network's output needs "
                         f"({n_samples}, {n_outputs})")
    return np.asarray(y, dtype)


def is_labels(y) -> bool:
    """Whether ``y`` is integer class labels (1-D or one scalar), not a target matrix."""
    y = np.asarray(y)
    return y.ndim <= 1 and np.issubdtype(y.dtype, np.integer)


def target_matrix(y, P) -> np.ndarray:
    """Float targets ``y`` as ``backward`` takes them, shaped and typed like the 2-D outputs
    ``P`` ``(n_samples, n_outputs)``: a view when they already are.

    Raises
    ------
    ValueError
        If ``y`` does not hold one target per output of every sample.
    """
    Y = np.asarray(y)
    if Y.size != P.size:
        raise ValueError(f"targets have shape {Y.shape}; the outputs have shape {P.shape}")
    return np.asarray(Y, P.dtype).reshape(P.shape)
