"""The BLAS backend: whole-batch matrix products with ``@``.

Each layer is one GEMM, ``z = a @ W.T + b``; element-wise steps work in place
on the GEMM's output so a forward pass allocates one array per layer and a
backward pass one per gradient.
"""

from __future__ import annotations

import numpy as np


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    # exp(z - max z) never overflows and gives the same ratios.
    out = z - z.max(axis=-1, keepdims=True)
    return inplace_softmax(out)


def inplace_softmax(z):
    """Softmax of ``z`` row by row, written over ``z``."""
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def forward(params, x):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    a = np.asarray(x)
    cache = [a]
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = a @ W.T
        z += b
        a = inplace_softmax(z) if l == last else np.maximum(z, 0, out=z)
        cache.append(a)
    return a, cache


def backward(params, cache, y):
    """Gradients of the mean cross-entropy. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    y = np.atleast_1d(y)
    n = y.shape[0]
    # softmax + cross-entropy: delta = (p - onehot(y)) / n
    delta = cache[-1].copy()
    delta[np.arange(n), y] -= 1
    delta /= n
    grads = []
    for l in range(len(params) - 1, -1, -1):
        a = cache[l]
        grads.append((delta.T @ a, delta.sum(axis=0)))
        if l > 0:
            delta = delta @ params[l][0]
            delta *= a > 0  # ReLU derivative, from the layer's output
    return grads[::-1]
