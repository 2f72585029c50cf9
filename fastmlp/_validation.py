"""Input checks shared by the model, the trainer and the public kernels.

Kernels trust their inputs (numba code has no bounds checks), so everything a
user hands in passes through here first and fails with a message that names
the problem.
"""

from __future__ import annotations

import numpy as np

# Values per piece of the element-wise finiteness test: its booleans stay in cache.
_FINITE_PIECE = 1 << 16


def refuse_sparse(x, name: str = "x") -> None:
    """Raise ``TypeError`` naming the remedy if ``x`` is a SciPy sparse matrix or array.

    ``np.asarray`` would make a 0-D object array of it, and the error that
    follows would speak of dtype object.
    """
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # without importing SciPy
        raise TypeError(
            f"{name} is a sparse matrix ({getattr(x, 'format', 'sparse')}); fastmlp takes dense "
            f"arrays: pass {name}.toarray(), or its rows a batch at a time"
        )


def check_features(x, n_features: int, name: str = "x", *,
                   check_finite: bool = True) -> np.ndarray:
    """Return ``x`` as an array of shape ``(n_samples, n_features)`` or ``(n_features,)``.

    Raises ``ValueError`` for a wrong number of dimensions or features, an
    empty batch, NaN or inf (unless ``check_finite`` is False: a caller that
    has checked already skips the only test that reads every value);
    ``TypeError`` for a non-numeric dtype or a SciPy sparse matrix.
    """
    refuse_sparse(x, name)
    x = np.asarray(x)
    kind = x.dtype.kind
    if kind not in "biuf":  # bool, signed, unsigned, float
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (one sample) or 2-D (n_samples, n_features), "
            f"got {x.ndim}-D array of shape {x.shape}"
        )
    if x.shape[-1] != n_features:
        raise ValueError(
            f"{name} has {x.shape[-1]} features per sample but the model expects {n_features}"
        )
    if x.ndim == 2 and x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (0 samples)")
    if check_finite and kind == "f":
        bad = _non_finite(x)
        if bad is not None:
            raise ValueError(f"{name} contains {bad}; inputs must be finite")
    return x


def _non_finite(x: np.ndarray) -> str | None:
    """``'NaN'`` if float ``x`` (1-D or 2-D) holds a NaN, else ``'inf'`` if it holds an
    infinity, else None.

    All finite, the common case, costs one pass and no memory: a sum is finite
    only if every term is (a NaN or inf makes every partial sum after it NaN or
    inf). Only when the sum is not (or finite values overflow it) are the values
    tested, ``_FINITE_PIECE`` at a time (at least a row), not with an array of
    booleans of the size of ``x``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(x, axis=None)):
            return None
    rows = np.atleast_2d(x)
    rows_per_piece = max(1, _FINITE_PIECE // rows.shape[1])
    bad = None
    for begin in range(0, len(rows), rows_per_piece):
        piece = rows[begin:begin + rows_per_piece]
        if np.isnan(piece).any():
            return "NaN"
        if bad is None and np.isinf(piece).any():
            bad = "inf"
    return bad


def check_labels(y, n_samples: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Return ``y`` as an int64 array of class indices of shape ``(n_samples,)``.

    Raises ``ValueError`` for a wrong length, non-integer values or labels
    outside ``[0, n_classes)``; ``TypeError`` for a non-numeric dtype.
    """
    y = np.asarray(y)
    if y.ndim == 0:
        y = y.reshape(1)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but x has {n_samples} samples")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    elif not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"{name} has label {bad} out of range: labels must be in [0, {n_classes})")
    return y.astype(np.int64, copy=False)


def check_positive_int(value, name: str) -> int:
    """Return ``value`` if it is an integer >= 1, else raise ``ValueError`` naming ``name``."""
    if not (isinstance(value, (int, np.integer)) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_non_negative_int(value, name: str) -> int:
    """Return ``value`` if it is an integer >= 0, else raise ``ValueError`` naming ``name``."""
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            and value >= 0):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def check_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as float32 or float64, else raise ``ValueError``."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_sample_weight(sample_weight, n_samples: int, name: str = "sample_weight") -> np.ndarray:
    """Return ``sample_weight`` as a new C-contiguous float64 array of shape ``(n_samples,)``.

    Raises ``ValueError`` for a wrong shape, NaN, inf or a negative weight;
    ``TypeError`` for a non-numeric dtype. All zeros pass: whether that is an
    error is the caller's to say (``fit`` has nothing to average over; a
    batch of zero total weight has a zero gradient).
    """
    weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {weights.dtype}")
    if weights.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {weights.shape}")
    if weights.shape[0] != n_samples:
        raise ValueError(f"{name} has {weights.shape[0]} weights but x has {n_samples} samples")
    # a copy, so that the caller's array is never changed
    weights = np.array(weights, dtype=np.float64, order="C")
    if not np.isfinite(weights).all():
        bad = "NaN" if np.isnan(weights).any() else "inf"
        raise ValueError(f"{name} contains {bad}; weights must be finite")
    if weights.size and weights.min() < 0:
        at = int(np.argmin(weights))
        raise ValueError(f"{name} has a negative weight ({weights[at]} at sample {at}); "
                         "weights must be >= 0")
    return weights


def check_targets(y, n_samples: int, n_outputs: int, output: str = "softmax", dtype=np.float64,
                  name: str = "y") -> np.ndarray:
    """``y`` as training and ``backward`` take it for a network whose last layer has
    ``n_outputs`` units followed by ``output`` (see ``fastmlp.family``).

    For softmax, 1-D ``y`` is class labels (``check_labels``: int64 of shape
    ``(n_samples,)``). Otherwise, and for a 2-D ``y`` with softmax, it is a
    float target matrix, returned in ``dtype`` with shape ``(n_samples,
    n_outputs)`` (1-D ``y`` is one output's column): finite, in ``[0, 1]``
    for the logistic and softmax outputs (rows of softmax targets summing to
    1), and ``>= 0`` for exp (Poisson counts or rates).

    Raises
    ------
    ValueError
        Naming the problem: a wrong shape, a NaN or inf, a value outside the
        output's range.
    """
    y = np.asarray(y)
    if output == "softmax" and y.ndim <= 1:
        return check_labels(y, n_samples, n_outputs, name)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {y.dtype}")
    if y.ndim <= 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape != (n_samples, n_outputs):
        if output == "softmax":
            raise ValueError(f"{name} must be a 1-D array of class indices or a matrix of "
                             f"target rows of shape ({n_samples}, {n_outputs}), got shape "
                             f"{y.shape}")
        raise ValueError(f"{name} has shape {y.shape}; a network of {n_outputs} {output} "
                         f"outputs needs targets of shape ({n_samples}, {n_outputs})")
    Y = np.asarray(y, dtype)
    if not np.isfinite(Y).all():
        raise ValueError(f"{name} holds NaN or inf targets")
    if output in ("softmax", "logistic") and Y.size and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(f"{name} holds targets outside [0, 1]; {output} outputs are "
                         "probabilities")
    if output == "softmax" and Y.size and not np.allclose(Y.sum(axis=1), 1, atol=1e-3):
        raise ValueError(f"{name}'s rows must sum to 1 for softmax outputs (one-hot or "
                         "probabilities)")
    if output == "exp" and Y.size and Y.min() < 0:
        raise ValueError(f"{name} holds negative targets; exp outputs (Poisson) need "
                         "targets >= 0")
    return Y
