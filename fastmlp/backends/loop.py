"""The reference backend: one sample at a time, plain vector math.

This is the living definition of the network. Every other backend is tested
against it, so it stays as close to the derivation as Python allows and makes
no attempt to be fast.

For one sample with input ``a[0] = x`` and layers ``l = 0 .. L-1``::

    z[l]   = W[l] @ a[l] + b[l]
    a[l+1] = relu(z[l])        for hidden layers
    p      = softmax(z[L-1])   for the output layer

The loss is ``-log p[y]`` averaged over the batch; its gradients are::

    delta[L-1] = p - onehot(y)                      (softmax + cross-entropy)
    dW[l]      = outer(delta[l], a[l])
    db[l]      = delta[l]
    delta[l-1] = (W[l].T @ delta[l]) * (a[l] > 0)   (ReLU derivative)

With sample weights ``w`` the loss is the weighted mean ``sum_i w[i] l[i] /
sum_i w[i]`` (scikit-learn's ``MLPClassifier``), so each sample's output delta
is ``w[i] (p - onehot(y))`` and the sums are divided by ``sum_i w[i]``
instead of ``n``. A batch whose weights sum to 0 has a zero gradient.
"""

from __future__ import annotations

import numpy as np

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


def _forward_sample(params, x):
    activations = [x]
    a = x
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = W @ a + b
        a = _softmax_vector(z) if l == last else np.maximum(z, 0)
        activations.append(a)
    return activations


def forward(params, x):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    x = np.asarray(x)
    if x.ndim == 1:
        cache = _forward_sample(params, x)
        return cache[-1], cache
    dtype = np.result_type(x, *[W for W, _ in params])
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    cache = [np.empty((x.shape[0], size), dtype) for size in sizes]
    for i in range(x.shape[0]):
        for l, a in enumerate(_forward_sample(params, x[i])):
            cache[l][i] = a
    return cache[-1], cache


def backward(params, cache, y, sample_weight=None):
    """Gradients of the (weighted) mean cross-entropy. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    y = np.atleast_1d(y)
    n = y.shape[0]
    total = n if sample_weight is None else weight_total(sample_weight)
    dtype = cache[-1].dtype
    grads = [(np.zeros(W.shape, dtype), np.zeros(b.shape, dtype)) for W, b in params]
    for i in range(n):
        delta = cache[-1][i].copy()
        delta[y[i]] -= 1
        if sample_weight is not None:
            delta *= sample_weight[i]
        for l in range(len(params) - 1, -1, -1):
            a = cache[l][i]
            dW, db = grads[l]
            dW += np.outer(delta, a)
            db += delta
            if l > 0:
                delta = (params[l][0].T @ delta) * (a > 0)
    for dW, db in grads:
        dW /= total
        db /= total
    return grads


# What fit runs: fastmlp.steps.ComposedSteps, the one loop, over this module's functions.
run_steps = ComposedSteps(forward, backward)
