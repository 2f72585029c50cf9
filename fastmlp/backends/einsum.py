"""The einsum backend: every contraction written as ``np.einsum``.

Plain ``np.einsum`` runs its own C loops and never reaches BLAS, which made the
original notebook's forward pass take 10 s on MNIST. With ``optimize=True``
einsum hands two-operand contractions like these to ``tensordot`` and so to
BLAS.
"""

from __future__ import annotations

import numpy as np

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


def forward(params, x):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    a = np.asarray(x)
    cache = [a]
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = _einsum("...i,oi->...o", a, W)
        z += b
        a = softmax(z) if l == last else np.maximum(z, 0, out=z)
        cache.append(a)
    return a, cache


def backward(params, cache, y, sample_weight=None):
    """Gradients of the (weighted) mean cross-entropy. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    y = np.atleast_1d(y)
    n = y.shape[0]
    # softmax + cross-entropy: delta = (p - onehot(y)) / n, or (p - onehot(y)) w / sum(w)
    delta = cache[-1].copy()
    delta[np.arange(n), y] -= 1
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
            delta = _einsum("no,oi->ni", delta, params[l][0])
            delta *= a > 0  # ReLU derivative, from the layer's output
    return grads[::-1]


# What fit runs: fastmlp.steps.ComposedSteps, the one loop, over this module's functions.
run_steps = ComposedSteps(forward, backward)
