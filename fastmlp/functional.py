"""The network's math as functions, dispatched to the backend in effect.

These validate their inputs and then call ``forward``, ``softmax`` or
``backward`` of ``fastmlp.get_backend()``; the loss functions are shared by
all backends.
"""

from __future__ import annotations

import numpy as np

from . import backends
from ._validation import check_features, check_sample_weight, check_targets
from .family import LOSSES, check_activation, check_output


def softmax(z):
    """Row-wise, numerically stable softmax.

    Parameters
    ----------
    z : array_like, shape (n_classes,) or (n_samples, n_classes)
        Logits; any finite magnitude.

    Returns
    -------
    ndarray, same shape as ``z``
        Probabilities; each row sums to 1.

    Examples
    --------
    >>> import fastmlp
    >>> fastmlp.softmax([1e4, 0.0]).round(6)
    array([1., 0.])
    """
    z = np.asarray(z)
    if z.ndim not in (1, 2):
        raise ValueError(f"softmax expects 1-D or 2-D input, got shape {z.shape}")
    return backends.get_backend().softmax(z)


def log_softmax(z):
    """Row-wise, numerically stable ``log(softmax(z))``.

    Computed as ``z - max(z) - log(sum(exp(z - max(z))))``, so it stays finite
    where ``softmax`` underflows to 0.
    """
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(probs, y, sample_weight=None):
    """Mean cross-entropy ``-log probs[i, y[i]]`` of predicted probabilities.

    Probabilities are clipped at the dtype's smallest normal number, so a
    predicted probability of exactly 0 gives a large but finite loss (about 87
    in float32, 708 in float64) instead of ``inf``.

    Parameters
    ----------
    probs : ndarray, shape (n_samples, n_classes) or (n_classes,)
    y : array_like of int, shape (n_samples,) or scalar
    sample_weight : array_like of float, shape (n_samples,), optional
        Non-negative weights: the result is the weighted mean ``sum_i w[i]
        loss[i] / sum_i w[i]``, which training minimises with these weights;
        0 when every weight is 0 (see ``fastmlp.backends.weight_total``).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    >>> round(fastmlp.cross_entropy(probs, [0, 0], sample_weight=[1, 3]), 4)
    0.2523
    """
    losses = _row_losses(probs, y)
    if sample_weight is None:
        return float(losses.mean())
    weights = np.asarray(sample_weight, np.float64)
    return float(np.dot(weights, losses)) / backends.weight_total(weights)


def _row_losses(probs, y) -> np.ndarray:
    """Each sample's cross-entropy ``-log probs[i, y[i]]``, clipped as in :func:`cross_entropy`.

    Returns
    -------
    ndarray, shape (n_samples,)
        In the dtype of ``probs``.
    """
    probs = np.atleast_2d(probs)
    y = np.atleast_1d(y)
    picked = probs[np.arange(y.shape[0]), y]
    tiny = np.finfo(probs.dtype).tiny if np.issubdtype(probs.dtype, np.floating) else 1e-300
    return -np.log(np.maximum(picked, tiny))


def _check_params(params):
    params = list(params)
    if not params:
        raise ValueError("params must hold at least one (W, b) layer")
    n_in = None
    for l, layer in enumerate(params):
        W, b = (np.asarray(a) for a in layer)
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W must be (n_out, n_in) and b (n_out,), got {W.shape} and {b.shape}"
            )
        if n_in is not None and W.shape[1] != n_in:
            raise ValueError(f"layer {l}: W has {W.shape[1]} inputs, previous layer gives {n_in}")
        n_in = W.shape[0]
    return params


def forward(params, x, activation: str = "relu", output: str = "softmax"):
    """Forward pass through the network with the backend in effect.

    Parameters
    ----------
    params : list of (W, b)
        ``W`` of shape ``(n_out, n_in)``, ``b`` of shape ``(n_out,)``.
    x : array_like, shape (n_samples, n_in) or (n_in,)
    activation : str, default 'relu'
        What follows every layer but the last: a name of
        ``fastmlp.family.ACTIVATIONS`` (``'identity'``, ``'logistic'``,
        ``'tanh'``, ``'relu'``, ``'leaky_relu'``).
    output : str, default 'softmax'
        What follows the last layer: ``'softmax'``, ``'logistic'``,
        ``'identity'`` or ``'exp'`` (``fastmlp.family.OUTPUTS``).

    Returns
    -------
    outputs : ndarray, shape (n_samples, n_out) or (n_out,)
        Probabilities for softmax (and per-output ones for logistic), the
        predicted values for identity and exp.
    cache : list of ndarray
        Every layer's input, then ``outputs``; pass it to ``backward``.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> params = [(np.array([[1.0, -1.0]]), np.array([0.0]))]
    >>> with fastmlp.use_backend("matmul"):
    ...     fastmlp.forward(params, [[2.0, 1.0]], output="identity")[0]
    array([[1.]])
    """
    params = _check_params(params)
    x = check_features(x, params[0][0].shape[1])
    activation, output = check_activation(activation), check_output(output)
    if (activation, output) == ("relu", "softmax"):
        return backends.get_backend().forward(params, x)
    return backends.get_backend().forward(params, x, activation=activation, output=output)


def backward(params, cache, y, sample_weight=None, activation: str = "relu",
             output: str = "softmax"):
    """Gradients of the mean loss of the output with the backend in effect.

    The loss is the output's own (``fastmlp.family.LOSSES``): cross-entropy
    for softmax, binary cross-entropy for logistic, squared error for
    identity, Poisson for exp; each makes the output delta ``(p - y) / n``.

    Parameters
    ----------
    params : list of (W, b)
    cache : list of ndarray
        As returned by ``forward``.
    y : array_like
        Class labels, int of shape ``(n_samples,)`` or a scalar, for softmax;
        or float targets ``(n_samples, n_out)`` for any output (1-D for one
        output; for softmax, one-hot rows or probabilities).
    sample_weight : array_like of float, shape (n_samples,), optional
        Finite, non-negative weights: the gradients are those of the weighted
        mean loss ``sum_i w[i] loss[i] / sum_i w[i]`` (scikit-learn's), zero
        when every weight is 0.
    activation : str, default 'relu'
        The hidden layers' activation, as given to ``forward``.
    output : str, default 'softmax'
        The output function given to ``forward``: it decides what ``y`` may
        be (the gradient's form is the same for every output).

    Returns
    -------
    list of (dW, db)
        Shaped like ``params``.

    Raises
    ------
    ValueError
        If ``sample_weight`` does not have one weight per sample, or holds a
        NaN, an inf or a negative weight; the message names the problem.
    """
    params = _check_params(params)
    activation, output = check_activation(activation), check_output(output)
    probs = np.atleast_2d(cache[-1])
    y = check_targets(y, probs.shape[0], probs.shape[1], output, probs.dtype)
    family = {} if activation == "relu" else {"activation": activation}
    if sample_weight is None:
        return backends.get_backend().backward(params, cache, y, **family)
    sample_weight = check_sample_weight(np.atleast_1d(sample_weight), probs.shape[0])
    return backends.get_backend().backward(params, cache, y, sample_weight, **family)


def loss(outputs, y, output: str = "softmax", sample_weight=None) -> float:
    """The mean loss of a network's ``outputs`` against ``y``: the output's own loss.

    Parameters
    ----------
    outputs : ndarray, shape (n_samples, n_out) or (n_out,)
        What ``forward`` returned with this ``output``.
    y : array_like
        As for ``backward``: labels or float targets.
    output : str, default 'softmax'
        Picks the loss (``fastmlp.family.LOSSES``): cross-entropy (softmax),
        binary cross-entropy (logistic), ``(p - y)**2 / 2`` (identity), ``p -
        y log p`` (exp, Poisson); each summed over outputs and averaged over
        samples.
    sample_weight : array_like of float, shape (n_samples,), optional
        The weighted mean ``sum_i w[i] loss[i] / sum_i w[i]`` instead.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> fastmlp.functional.loss(np.array([[1.0, 3.0]]), [[0.0, 1.0]], output="identity")
    2.5
    """
    output = check_output(output)
    probs = np.atleast_2d(outputs)
    y = check_targets(y, probs.shape[0], probs.shape[1], output, probs.dtype)
    if sample_weight is not None:
        sample_weight = check_sample_weight(np.atleast_1d(sample_weight), probs.shape[0])
    return LOSSES[output](probs, y, sample_weight)
