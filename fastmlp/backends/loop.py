"""The reference backend: one sample at a time, plain vector math.

This is the living definition of the network. Every other backend is tested
against it, so it stays as close to the derivation as Python allows and makes
no attempt to be fast.

For one sample with input ``a[0] = x``, layers ``l = 0 .. L-1``, a hidden
activation ``f`` and an output function ``g`` (``fastmlp.family``'s
``ACTIVATIONS`` and ``OUTPUTS``; ReLU and softmax by default)::

    z[l]   = W[l] @ a[l] + b[l]
    a[l+1] = f(z[l])           for hidden layers
    p      = g(z[L-1])         for the output layer

Each output is trained with its own loss (``family.LOSSES``: softmax with
cross-entropy, logistic with binary cross-entropy, identity with squared
error, exp with Poisson), chosen so that the loss's gradient with respect to
``z[L-1]`` is ``p - y`` for the target row ``y`` (``onehot(label)`` for
labels). Averaged over the batch, its gradients are::

    delta[L-1] = p - y
    dW[l]      = outer(delta[l], a[l])
    db[l]      = delta[l]
    delta[l-1] = (W[l].T @ delta[l]) * f'(z[l-1])

where ``f'`` is computed from the layer's output ``a[l]`` (``family.DERIVATIVES``:
ReLU ``a > 0``, tanh ``1 - a**2``, logistic ``a (1 - a)``).

With sample weights ``w`` the loss is the weighted mean ``sum_i w[i] l[i] /
sum_i w[i]`` (scikit-learn's ``MLPClassifier``), so each sample's output delta
is ``w[i] (p - y)`` and the sums are divided by ``sum_i w[i]`` instead of
``n``. A batch whose weights sum to 0 has a zero gradient.
"""

from __future__ import annotations

import numpy as np

from ..family import ACTIVATIONS, DERIVATIVES, OUTPUTS, is_labels, target_matrix
from ..steps import ComposedSteps
from . import weight_total


def _softmax_vector(z):
    # Shift by the max so exp never overflows; the result is unchanged.
    e = np.exp(z - z.max())
    return e / e.sum()


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    if z.ndim == 1:
        return _softmax_vector(z)
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        out[i] = _softmax_vector(z[i])
    return out


def _forward_sample(params, x, activation, output):
    activations = [x]
    a = x
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = W @ a + b
        a = OUTPUTS[output](z) if l == last else ACTIVATIONS[activation](z)
        activations.append(a)
    return activations


def forward(params, x, activation="relu", output="softmax"):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    x = np.asarray(x)
    if x.ndim == 1:
        cache = _forward_sample(params, x, activation, output)
        return cache[-1], cache
    dtype = np.result_type(x, *[W for W, _ in params])
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    cache = [np.empty((x.shape[0], size), dtype) for size in sizes]
    for i in range(x.shape[0]):
        for l, a in enumerate(_forward_sample(params, x[i], activation, output)):
            cache[l][i] = a
    return cache[-1], cache


def backward(params, cache, y, sample_weight=None, activation="relu"):
    """Gradients of the (weighted) mean loss of the output. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    labels = is_labels(y)
    y = np.atleast_1d(y) if labels else target_matrix(y, cache[-1])
    n = y.shape[0]
    total = n if sample_weight is None else weight_total(sample_weight)
    dtype = cache[-1].dtype
    derivative = DERIVATIVES[activation]
    grads = [(np.zeros(W.shape, dtype), np.zeros(b.shape, dtype)) for W, b in params]
    for i in range(n):
        # the output's loss and function give delta = p - y (onehot(y) for labels)
        if labels:
            delta = cache[-1][i].copy()
            delta[y[i]] -= 1
        else:
            delta = cache[-1][i] - y[i]
        if sample_weight is not None:
            delta *= sample_weight[i]
        for l in range(len(params) - 1, -1, -1):
            a = cache[l][i]
            dW, db = grads[l]
            dW += np.outer(delta, a)
            db += delta
            if l > 0:
                delta = derivative(a, params[l][0].T @ delta)
    for dW, db in grads:
        dW /= total
        db /= total
    return grads


# What fit runs: fastmlp.steps.ComposedSteps, the one loop, over this module's functions.
run_steps = ComposedSteps(forward, backward)
