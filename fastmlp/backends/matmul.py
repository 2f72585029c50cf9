"""The BLAS backend: whole-batch matrix products with ``@``.

Each layer is one GEMM, ``z = a @ W.T + b``, written into a preallocated
array; the element-wise steps work in place on it. ``forward`` and
``backward`` allocate their results, as the interface asks; ``run_steps``,
what ``fit`` runs, is ``fastmlp.steps``'s one loop over a forward and backward
that write into arrays allocated once per run and reused for every batch.
"""

from __future__ import annotations

import numpy as np

from ..family import ACTIVATIONS, DERIVATIVES, OUTPUTS, is_labels, target_matrix
from ..steps import NO_TIMER, Batches, ComposedSteps
from . import weight_total


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    return inplace_softmax(z.copy())


def inplace_softmax(z):
    """Softmax of ``z`` row by row, written over ``z``."""
    # exp(z - max z) never overflows and gives the same ratios.
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _forward_into(params, x, activations, activation="relu", output="softmax"):
    """Write every layer's output for input ``x`` into ``activations[1:]``; return the last."""
    a = x
    last = len(params) - 1
    for l, (W, b) in enumerate(params):
        z = activations[l + 1]
        np.matmul(a, W.T, out=z)
        z += b
        if l < last:
            ACTIVATIONS[activation](z)
        elif output == "softmax":
            inplace_softmax(z)
        else:
            OUTPUTS[output](z)
        a = z
    return a


def _backward_into(params, activations, y, deltas, masks, grads, sample_weight=None,
                   activation="relu"):
    """Gradients of the (weighted) mean loss of the output into ``grads``; ``deltas`` and
    ``masks`` are scratch.

    ``activations`` is the forward cache (input first, outputs last), all 2-D
    with the same number of rows as ``y`` (and ``sample_weight``): int labels,
    or the float targets' matrix.
    """
    # each output with its loss: delta = (p - y) / n, or (p - y) w / sum(w), where y is
    # onehot(labels) for labels
    delta = deltas[-1]
    n = delta.shape[0]
    if is_labels(y):
        np.copyto(delta, activations[-1])
        delta[np.arange(n), y] -= 1
    else:
        np.subtract(activations[-1], target_matrix(y, delta), out=delta)
    if sample_weight is None:
        delta *= delta.dtype.type(1 / n)
    else:
        delta *= np.asarray(sample_weight)[:, None]
        delta *= delta.dtype.type(1 / weight_total(sample_weight))
    for l in range(len(params) - 1, -1, -1):
        a = activations[l]
        dW, db = grads[l]
        np.matmul(delta.T, a, out=dW)
        np.sum(delta, axis=0, out=db)
        if l > 0:
            previous = deltas[l - 1]
            np.matmul(delta, params[l][0], out=previous)
            if activation == "relu":
                # ReLU derivative, from the layer's output: zero where a == 0
                np.greater(a, 0, out=masks[l - 1])
                previous *= masks[l - 1]
            else:
                DERIVATIVES[activation](a, previous)
            delta = previous
    return grads


def _layer_widths(params):
    return [W.shape[0] for W, _ in params]


def forward(params, x, activation="relu", output="softmax"):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    x = np.asarray(x)
    dtype = np.result_type(x, *[W for W, _ in params])
    rows = x.shape[:-1]
    activations = [x] + [np.empty(rows + (width,), dtype) for width in _layer_widths(params)]
    return _forward_into(params, x, activations, activation, output), activations


def backward(params, cache, y, sample_weight=None, activation="relu"):
    """Gradients of the (weighted) mean loss of the output. See ``fastmlp.backends``."""
    cache = [np.atleast_2d(a) for a in cache]
    y = np.atleast_1d(y) if is_labels(y) else y
    dtype = cache[-1].dtype
    deltas = [np.empty_like(a) for a in cache[1:]]
    masks = [np.empty(a.shape, dtype) for a in cache[1:-1]]
    grads = [(np.empty(W.shape, dtype), np.empty(b.shape, dtype)) for W, b in params]
    return _backward_into(params, cache, y, deltas, masks, grads, sample_weight, activation)


class _Buffers:
    """The arrays of a run of steps, allocated once for batches of up to ``rows`` rows:
    every layer's activations and deltas, the ReLU masks and the gradients."""

    def __init__(self, params, rows, dtype):
        widths = _layer_widths(params)
        self.activations = [np.empty((rows, width), dtype) for width in widths]
        self.deltas = [np.empty((rows, width), dtype) for width in widths]
        self.masks = [np.empty((rows, width), dtype) for width in widths[:-1]]
        self.grads = [(np.empty_like(W), np.empty_like(b)) for W, b in params]

    def forward(self, params, x, activation="relu", output="softmax"):
        """``forward`` into the buffers' first ``len(x)`` rows."""
        activations = [x] + [a[:x.shape[0]] for a in self.activations]
        return _forward_into(params, x, activations, activation, output), activations

    def backward(self, params, cache, y, sample_weight=None, activation="relu"):
        """``backward`` into the buffers; the gradients are overwritten by the next call."""
        m = y.shape[0]
        return _backward_into(params, cache, y, [d[:m] for d in self.deltas],
                              [k[:m] for k in self.masks], self.grads, sample_weight,
                              activation)


def run_steps(params, batches: Batches, optimizer, learning_rates, timer=NO_TIMER, *,
              activation="relu", output="softmax"):
    """What ``fit`` runs: ``fastmlp.steps.ComposedSteps`` over a forward and
    backward into buffers allocated once for the run.

    See ``fastmlp.backends`` for the contract. Same result, bit for bit, as
    ``ComposedSteps(forward, backward)``, without allocating for every batch.
    """
    x, order, batch_size, scaler, dtype = (batches.x, batches.order, batches.batch_size,
                                           batches.scaler, batches.dtype)
    n = x.shape[0] if order is None else len(order)
    buffers = _Buffers(params, max(1, min(batch_size, n)), x.dtype if scaler is None else dtype)
    return ComposedSteps(buffers.forward, buffers.backward)(
        params, batches, optimizer, learning_rates, timer, activation=activation, output=output)


def train_epoch(params, x, y, batch_size, optimizer, learning_rates, order=None, *,
                sample_weight=None):
    """One epoch of mini-batch training with buffers allocated once.

    Same contract and result as ``fastmlp.train.train_epoch``: ``run_steps`` on
    inputs used as they are (already scaled).
    """
    return run_steps(params, Batches(x, y, order, batch_size, None, None, sample_weight),
                     optimizer, learning_rates)
