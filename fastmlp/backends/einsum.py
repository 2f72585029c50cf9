"""The einsum backend: every contraction written as ``np.einsum``.

Plain ``np.einsum`` runs its own C loops and never reaches BLAS, which made the
original notebook's forward pass take 10 s on MNIST. With ``optimize=True``
einsum hands two-operand contractions like these to ``tensordot`` and so to
BLAS.
"""

from __future__ import annotations

import numpy as np

from ..family import ACTIVATIONS, DERIVATIVES, OUTPUTS, is_labels, target_matrix
from ..steps import ComposedSteps
from . import weight_total


def _einsum(subscripts, *operands):
    return np.einsum(subscripts, *operands, optimize=True)


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / np.einsum("...k->...", e)[..., None]


def forward(params, x, activation="relu", output="softmax"):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    a = np.asarray(x)
    cache = [a]
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = _einsum("...i,oi->...o", a, W)
        z += b
        if l < last:
            a = ACTIVATIONS[activation](z)
        else:
            a = softmax(z) if output == "softmax" else OUTPUTS[output](z)
        cache.append(a)
    return a, cache


def backward(params, cache, y, sample_weight=None, activation="relu"):
    """Gradients of the (weighted) mean loss of the output. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    # each output with its loss: delta = (p - y) / n, or (p - y) w / sum(w), where y is
    # onehot(labels) for labels
    if is_labels(y):
        y = np.atleast_1d(y)
        n = y.shape[0]
        delta = cache[-1].copy()
        delta[np.arange(n), y] -= 1
    else:
        delta = cache[-1] - target_matrix(y, cache[-1])
        n = delta.shape[0]
    if sample_weight is None:
        delta /= n
    else:
        delta *= np.asarray(sample_weight)[:, None]
        delta /= weight_total(sample_weight)
    grads = []
    for l in range(len(params) - 1, -1, -1):
        a = cache[l]
        # dW = delta.T @ a; with the operands in this order einsum returns dW C-contiguous,
        # not a transposed view, which the optimizer's element-wise update walks 2x slower
        grads.append((_einsum("ni,no->oi", a, delta), np.einsum("no->o", delta)))
        if l > 0:
            # times the activation's derivative, from the layer's output
            delta = DERIVATIVES[activation](a, _einsum("no,oi->ni", delta, params[l][0]))
    return grads[::-1]


# What fit runs: fastmlp.steps.ComposedSteps, the one loop, over this module's functions.
run_steps = ComposedSteps(forward, backward)
