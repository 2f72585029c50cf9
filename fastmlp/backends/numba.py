"""The numba backend: BLAS for the products, one compiled pass for everything else.

Each layer is one GEMM (``np.dot`` inside ``@njit``, which calls SciPy's BLAS,
or for a few rows a compiled loop that skips BLAS's packing of ``W``)
followed by a single compiled sweep over its output that does all the
element-wise work of the layer::

    hidden layer   a = max(z + b, 0)
    output layer   p = softmax(z + b), loss -log p[y], argmax p,
                   delta = (p - onehot(y)) / n and db = sum of delta over the batch
    backward       delta[l-1] = (delta[l] @ W[l]) * (a[l] > 0), db[l-1] in the same sweep

``train_epoch`` runs every step of an epoch (batch slice, forward, loss,
backward, optimizer update) in one compiled call, with every buffer allocated
once per call. Each batch is split into one chunk of rows per numba thread,
each running single-threaded BLAS: on two cores this beats one BLAS call
with two threads at every batch size measured (32 to 1000).

All compiled kernels live in this module, because a cached kernel can keep a
stale copy of a callee cached from another module. Kernels trust their inputs
(no bounds checks); the Python wrappers check shapes, dtypes and labels first.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import numpy as np
from numba import get_num_threads, njit, prange

from .._validation import check_labels, check_positive_int
from ..optim import SGD, Adam, AdamW

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# forward() splits batches of at least this many rows across numba's threads.
_CHUNKED_FORWARD_ROWS = 1024

# Update rules of the optimizers train_epoch runs itself, by exact type: a
# subclass may override step(), so it goes through the generic loop.
_SGD_RULE, _ADAM_RULE = 0, 1
_RULES = {SGD: _SGD_RULE, Adam: _ADAM_RULE, AdamW: _ADAM_RULE}

# Every kernel is cached on disk. error_model="numpy": x / 0 gives inf or nan
# as in NumPy, without the zero check that would keep loops from vectorising.
_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _inplace_bias_relu(z, b):
    # z = max(z + b, 0); NaN stays NaN, as with np.maximum
    n, k = z.shape
    for i in range(n):
        for j in range(k):
            v = z[i, j] + b[j]
            if v < 0:
                z[i, j] = 0
            else:
                z[i, j] = v


@njit(**_JIT)
def _softmax_row(z, out):
    # exp(z - max z) never overflows and gives the same ratios
    top = z[0]
    for j in range(1, z.shape[0]):
        if z[j] > top:
            top = z[j]
    total = z.dtype.type(0)
    for j in range(z.shape[0]):
        e = np.exp(z[j] - top)
        out[j] = e
        total += e
    for j in range(z.shape[0]):
        out[j] /= total


@njit(**_JIT)
def _inplace_bias_softmax(z, b):
    n, k = z.shape
    for i in range(n):
        for j in range(k):
            z[i, j] += b[j]
        _softmax_row(z[i], z[i])


@njit(**_JIT)
def _softmax(z, out):
    for i in range(z.shape[0]):
        _softmax_row(z[i], out[i])


@njit(**_JIT)
def _dense_relu(a, W, b, out):
    # out = max(a @ W.T + b, 0)
    np.dot(a, W.T, out)
    _inplace_bias_relu(out, b)


@njit(**_JIT)
def _dense_softmax(a, W, b, out):
    # out = softmax(a @ W.T + b)
    np.dot(a, W.T, out)
    _inplace_bias_softmax(out, b)


@njit(**_JIT, parallel=True)
def _dense_rows(a, W, b, out, last, chunks):
    # The layer on `chunks` chunks of rows in parallel; run with single-threaded BLAS.
    n = a.shape[0]
    size = -(-n // chunks)
    for c in prange(chunks):
        r0 = c * size
        r1 = min(n, r0 + size)
        if r0 < r1:
            if last:
                _dense_softmax(a[r0:r1], W, b, out[r0:r1])
            else:
                _dense_relu(a[r0:r1], W, b, out[r0:r1])


@njit(**_JIT)
def _softmax_cross_entropy(z, b, y, n_batch, tiny, delta, db):
    """Softmax of ``z + b``, loss and hits; writes delta = (p - onehot(y)) / n_batch and db.

    Returns the summed loss ``-log max(p[y], tiny)`` and the count of argmax p == y.
    """
    n, k = z.shape
    db[:] = 0
    loss = 0.0
    correct = 0
    for i in range(n):
        p = delta[i]
        for j in range(k):
            p[j] = z[i, j] + b[j]
        _softmax_row(p, p)
        best = 0
        for j in range(1, k):
            if p[j] > p[best]:
                best = j
        label = y[i]
        correct += best == label
        # clip at tiny, keeping NaN, as np.maximum does
        p_label = p[label]
        if p_label < tiny:
            p_label = tiny
        loss -= np.log(p_label)
        # softmax + cross-entropy: delta = (p - onehot(y)) / n
        p[label] -= 1
        for j in range(k):
            p[j] /= n_batch
            db[j] += p[j]
    return loss, correct


@njit(**_JIT)
def _output_delta(p, y, delta, db):
    # delta = (p - onehot(y)) / n, db = sum over the batch of delta
    n, k = p.shape
    db[:] = 0
    for i in range(n):
        for j in range(k):
            delta[i, j] = p[i, j]
        delta[i, y[i]] -= 1
        for j in range(k):
            delta[i, j] /= n
            db[j] += delta[i, j]


@njit(**_JIT)
def _inplace_relu_backward(delta, a, db):
    # delta *= (a > 0), the ReLU derivative from the layer's output; db = sum over the batch
    n, k = delta.shape
    db[:] = 0
    for i in range(n):
        for j in range(k):
            if a[i, j] > 0:
                db[j] += delta[i, j]
            else:
                delta[i, j] = delta[i, j] * 0  # keeps NaN * 0 = NaN, as the multiply does


@njit(**_JIT)
def _layer_backward(delta, a, W, dW, back, db_back):
    # dW = delta.T @ a; back = (delta @ W) * (a > 0) with its column sums in db_back
    np.dot(delta.T, a, dW)
    np.dot(delta, W, back)
    _inplace_relu_backward(back, a, db_back)


@njit(**_JIT)
def _weight_grad(delta, a, dW):
    np.dot(delta.T, a, dW)


@njit(**_JIT, fastmath={"reassoc", "contract"})
def _predict_one(Ws, bs, x, scale, offset):
    # Checked here rather than in Python, where the checks cost more than the product.
    n_in = x.shape[0]
    for l in range(len(Ws)):
        if Ws[l].shape[1] != n_in or bs[l].shape[0] != Ws[l].shape[0]:
            raise ValueError("predict_one: layer shapes do not match each other or x")
        n_in = Ws[l].shape[0]
    dtype = Ws[0].dtype
    # the model's input scaling, a = scale * x + offset, in the parameters' dtype
    a = np.empty(x.shape[0], dtype)
    for i in range(x.shape[0]):
        a[i] = x[i] * scale + offset
    last = len(Ws) - 1
    for l in range(len(Ws)):
        W = Ws[l]
        z = np.empty(W.shape[0], dtype)
        for j in range(W.shape[0]):
            # z = W a + b (summed in any order: reassoc lets it vectorise), ReLU if hidden
            s = dtype.type(0)
            for i in range(W.shape[1]):
                s += W[j, i] * a[i]
            s += bs[l][j]
            if l < last and s < 0:
                z[j] = 0
            else:
                z[j] = s
        a = z
    _softmax_row(a, a)
    return a


@njit(**_JIT)
def _sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    # torch.optim.SGD: g += wd p; v = mu v + g; p -= lr (g + mu v) (Nesterov) or lr v
    cast = p.dtype.type
    for i in range(p.shape[0]):
        gi = g[i]
        step = lr
        if weight_decay != 0:
            gi = p[i] * weight_decay + gi
        if momentum != 0:
            vi = v[i] * momentum + gi
            v[i] = vi
            if nesterov:
                p[i] = p[i] - cast(gi * lr)
                step = lr * momentum
            gi = vi
        p[i] = p[i] - cast(gi * step)


@njit(**_JIT)
def _adam_update(p, g, m, v, step_size, inv_bias2, beta1, one_minus_beta1, beta2,
                 one_minus_beta2, eps, coupled_decay, shrink):
    # torch.optim.Adam / AdamW:
    #   AdamW: p *= 1 - lr wd (shrink);  Adam: g += wd p (coupled_decay)
    #   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    #   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    cast = p.dtype.type
    for i in range(p.shape[0]):
        if shrink != 1:
            p[i] = cast(p[i] * shrink)
        gi = g[i]
        if coupled_decay != 0:
            gi = p[i] * coupled_decay + gi
        mi = m[i] * beta1 + gi * one_minus_beta1
        vi = v[i] * beta2 + gi * gi * one_minus_beta2
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - cast(mi / (np.sqrt(vi) * inv_bias2 + eps) * step_size)


# With at most _SMALL_ROWS rows per thread, out = a @ W.T runs in _small_matmul_t
# instead of BLAS, whose packing of all of W on each call costs more than the
# product; only for rows of at least _SMALL_MIN_K, as shorter sums vectorise poorly.
_SMALL_ROWS = 64
_SMALL_MIN_K = 64


@njit(**_JIT, fastmath={"reassoc", "contract"})
def _small_matmul_t(a, W, out):
    """``out = a @ W.T`` for a few rows of ``a``, without BLAS.

    out[i, j] is the dot product of the contiguous rows a[i] and W[j]. Blocks of
    4 rows by 4 units make 16 sums from 8 loads per k; reassoc lets LLVM
    vectorise each sum over k.
    """
    n, K = a.shape
    m = W.shape[0]
    zero = a.dtype.type(0)
    n4 = n - n % 4
    m4 = m - m % 4
    for j in range(0, m4, 4):
        w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
        for i in range(0, n4, 4):
            a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(K):
                x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
                v0, v1, v2, v3 = w0[k], w1[k], w2[k], w3[k]
                s00 += x0 * v0
                s01 += x0 * v1
                s02 += x0 * v2
                s03 += x0 * v3
                s10 += x1 * v0
                s11 += x1 * v1
                s12 += x1 * v2
                s13 += x1 * v3
                s20 += x2 * v0
                s21 += x2 * v1
                s22 += x2 * v2
                s23 += x2 * v3
                s30 += x3 * v0
                s31 += x3 * v1
                s32 += x3 * v2
                s33 += x3 * v3
            o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
            o0[j], o0[j + 1], o0[j + 2], o0[j + 3] = s00, s01, s02, s03
            o1[j], o1[j + 1], o1[j + 2], o1[j + 3] = s10, s11, s12, s13
            o2[j], o2[j + 1], o2[j + 2], o2[j + 3] = s20, s21, s22, s23
            o3[j], o3[j + 1], o3[j + 2], o3[j + 3] = s30, s31, s32, s33
        for i in range(n4, n):
            s0 = s1 = s2 = s3 = zero
            for k in range(K):
                s0 += a[i, k] * w0[k]
                s1 += a[i, k] * w1[k]
                s2 += a[i, k] * w2[k]
                s3 += a[i, k] * w3[k]
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s0, s1, s2, s3
    for j in range(m4, m):
        for i in range(n):
            s = zero
            for k in range(K):
                s += a[i, k] * W[j, k]
            out[i, j] = s


@njit(**_JIT)
def _matmul_t(a, W, out):
    # out = a @ W.T
    if a.shape[0] <= _SMALL_ROWS and a.shape[1] >= _SMALL_MIN_K:
        _small_matmul_t(a, W, out)
    else:
        np.dot(a, W.T, out)


# OpenBLAS runs a product of at most 100**3 multiply-adds through its small-matrix
# kernel, which skips packing: 110 GFLOP/s here against 80 for the packed path
# at the shapes of the weight gradients (dW of 64 x 784 from 32 rows).
_BLAS_SMALL = 100**3


@njit(**_JIT)
def _block(flat, offset, rows, cols):
    # rows x cols C-contiguous view of flat[offset:]
    return flat[offset:offset + rows * cols].reshape(rows, cols)


@njit(**_JIT)
def _chunk_forward_deltas(theta, layout, x, y, tiny, Z, D, db_chunks, c, r0, r1):
    """Forward pass and deltas of rows ``r0:r1`` of the batch ``x``.

    Writes chunk c's share of each bias gradient into ``db_chunks[c]`` and
    returns the summed loss and the hits of those rows.
    """
    n = x.shape[0]
    L = layout.shape[0]
    if r0 == r1:
        db_chunks[c] = 0
        return 0.0, 0
    a = x[r0:r1]
    for l in range(L):
        n_out, n_in, w_at, b_at, unit_at = layout[l]
        z = _block(Z, unit_at * n, n, n_out)[r0:r1]
        _matmul_t(a, _block(theta, w_at, n_out, n_in), z)
        b = theta[b_at:b_at + n_out]
        if l < L - 1:
            _inplace_bias_relu(z, b)
            a = z
        else:
            loss, hits = _softmax_cross_entropy(z, b, y[r0:r1], n, tiny,
                                                _block(D, unit_at * n, n, n_out)[r0:r1],
                                                db_chunks[c, unit_at:unit_at + n_out])
    for l in range(L - 1, 0, -1):
        # delta[l-1] = (delta[l] @ W[l]) * (a[l] > 0)
        n_out, n_in, w_at, _, unit_at = layout[l]
        below = layout[l - 1, 4]
        back = _block(D, below * n, n, n_in)[r0:r1]
        np.dot(_block(D, unit_at * n, n, n_out)[r0:r1], _block(theta, w_at, n_out, n_in), back)
        _inplace_relu_backward(back, _block(Z, below * n, n, n_in)[r0:r1],
                               db_chunks[c, below:below + n_in])
    return loss, hits


@njit(**_JIT, parallel=True)
def _forward_deltas(theta, layout, x, y, order, XB, YB, tiny, Z, D, db_chunks, losses, hits):
    # One chunk of the batch's rows per thread, each with single-threaded GEMMs.
    # The thread first gathers its rows x[order[i]] into XB (element by element:
    # a row-slice assignment ran at half the speed on shuffled rows).
    n = order.shape[0]
    chunks = losses.shape[0]
    rows = -(-n // chunks)
    for c in prange(chunks):
        r0 = min(c * rows, n)
        r1 = min(r0 + rows, n)
        for i in range(r0, r1):
            row = order[i]
            YB[i] = y[row]
            for j in range(x.shape[1]):
                XB[i, j] = x[row, j]
        loss, hit = _chunk_forward_deltas(theta, layout, XB[:n], YB[:n], tiny, Z, D, db_chunks,
                                          c, r0, r1)
        losses[c] = loss
        hits[c] = hit


@njit(**_JIT)
def _update_slice(theta, grad, state1, state2, lo, hi, rule, hyper, lr, t):
    """Update ``theta[lo:hi]`` from ``grad[lo:hi]`` by ``rule``.

    ``state1, state2`` are the optimizer's state (SGD velocity; Adam m and v).
    As in ``fastmlp.optim``, the arithmetic is in the parameters' dtype, with
    the products by the (float64) learning rate rounded back to it.
    """
    cast = theta.dtype.type
    if rule == _SGD_RULE:
        _sgd_update(theta[lo:hi], grad[lo:hi], state1[lo:hi], lr, cast(hyper[0]),
                    cast(hyper[1]), hyper[2] != 0)
    else:
        beta1, beta2, decoupled = hyper[3], hyper[4], hyper[6] != 0
        step_size = lr / (1 - beta1 ** float(t))
        inv_bias2 = cast(1 / math.sqrt(1 - beta2 ** float(t)))
        shrink = 1 - lr * hyper[1] if decoupled else 1.0
        coupled_decay = cast(0) if decoupled else cast(hyper[1])
        _adam_update(theta[lo:hi], grad[lo:hi], state1[lo:hi], state2[lo:hi], step_size,
                     inv_bias2, cast(beta1), cast(1 - beta1), cast(beta2), cast(1 - beta2),
                     cast(hyper[5]), coupled_decay, shrink)


@njit(**_JIT, parallel=True)
def _gradients_and_update(theta, grad, state1, state2, layout, x, Z, D, db_chunks, scratch,
                          rule, hyper, lr, t):
    # Thread c owns a block of rows j0:j1 of every W and b: it computes
    # dW[j0:j1] = delta[:, j0:j1].T @ a and db[j0:j1] (the sum of the chunks'
    # shares), then updates those rows while their gradient is still in its cache.
    n = x.shape[0]
    chunks = scratch.shape[0]
    for c in prange(chunks):
        for l in range(layout.shape[0]):
            n_out, n_in, w_at, b_at, unit_at = layout[l]
            rows = -(-n_out // chunks)
            j0 = min(c * rows, n_out)
            j1 = min(j0 + rows, n_out)
            if j0 == j1:
                continue
            delta = _block(D, unit_at * n, n, n_out)
            delta_t = _block(scratch[c], 0, j1 - j0, n)
            for i in range(n):
                for j in range(j0, j1):
                    delta_t[j - j0, i] = delta[i, j]
            a = x if l == 0 else _block(Z, layout[l - 1, 4] * n, n, n_in)
            # dW[j0:j1] = delta_t @ a, split into equal row blocks of at most
            # _BLAS_SMALL multiply-adds when such blocks still have >= 8 rows
            most = _BLAS_SMALL // (n * n_in)
            blocks = -(-(j1 - j0) // most) if most >= 8 else 1
            size = -(-(j1 - j0) // blocks)
            for g0 in range(0, j1 - j0, size):
                g1 = min(g0 + size, j1 - j0)
                np.dot(delta_t[g0:g1], a, _block(grad, w_at + (j0 + g0) * n_in, g1 - g0, n_in))
            for j in range(j0, j1):
                total = db_chunks[0, unit_at + j]
                for k in range(1, chunks):
                    total += db_chunks[k, unit_at + j]
                grad[b_at + j] = total
            _update_slice(theta, grad, state1, state2, w_at + j0 * n_in, w_at + j1 * n_in,
                          rule, hyper, lr, t)
            _update_slice(theta, grad, state1, state2, b_at + j0, b_at + j1, rule, hyper, lr, t)


@njit(**_JIT)
def _train_epoch(theta, state1, state2, layout, x, y, order, batch_size, learning_rates, rule,
                 hyper, t, tiny, Z, D, grad, db_chunks, scratch, XB, YB):
    """All steps of one epoch; returns (loss_sum, correct, failed_step, steps_done).

    Every layer's ``W`` and ``b`` live in the flat vector ``theta`` (the
    optimizer state and the gradient ``grad`` alike), where row l of
    ``layout`` is (n_out, n_in, offset of W, offset of b, offset of the
    layer's units among all units). ``Z`` holds each layer's output (logits
    for the last) and ``D`` its delta, layer by layer as ``(n, n_out)`` blocks;
    ``db_chunks[c]`` holds chunk c's share of the bias gradients and
    ``scratch[c]`` thread c's workspace. ``hyper`` is (momentum,
    weight_decay, nesterov, beta1, beta2, eps, decoupled). Batch k is rows
    ``order[k * batch_size:(k + 1) * batch_size]`` of ``x``, gathered into
    ``XB`` and ``YB``, where they stay in cache for the whole step.
    """
    n = x.shape[0]
    chunks = scratch.shape[0]
    losses = np.empty(chunks)
    hits = np.empty(chunks, np.int64)
    loss_sum = 0.0
    correct = 0
    step = 0
    for begin in range(0, n, batch_size):
        end = min(begin + batch_size, n)
        _forward_deltas(theta, layout, x, y, order[begin:end], XB, YB, tiny, Z, D, db_chunks,
                        losses, hits)
        xb = XB[:end - begin]
        mean_loss = losses.sum() / (end - begin)
        if not np.isfinite(mean_loss):
            return loss_sum, correct, step, step
        loss_sum += mean_loss * (end - begin)
        correct += hits.sum()
        if rule == _ADAM_RULE:
            t += 1
        _gradients_and_update(theta, grad, state1, state2, layout, xb, Z, D, db_chunks,
                              scratch, rule, hyper, learning_rates[step], t)
        step += 1
    return loss_sum, correct, -1, step


def _float_dtype(*arrays) -> np.dtype:
    dtype = np.result_type(*arrays)
    return dtype if dtype in _FLOATS else np.dtype(np.float64)


def _layers(params, dtype, n_in):
    """Tuples of the ``W`` and of the ``b``, C-contiguous in ``dtype``, shapes checked."""
    Ws, bs = [], []
    for l, (W, b) in enumerate(params):
        W = np.ascontiguousarray(W, dtype)
        b = np.ascontiguousarray(b, dtype)
        if W.ndim != 2 or W.shape[1] != n_in or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W must be (n_out, {n_in}) and b (n_out,), got {W.shape} and {b.shape}"
            )
        n_in = W.shape[0]
        Ws.append(W)
        bs.append(b)
    if not Ws:
        raise ValueError("params must hold at least one (W, b) layer")
    return tuple(Ws), tuple(bs)


def _labels(y, n_samples, n_classes):
    # The kernels index with y unchecked: the shared label checks, then a contiguous int64 copy.
    return np.ascontiguousarray(check_labels(y, n_samples, n_classes))


def _indices(order, n):
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.shape != (n,):
        raise ValueError(f"order has shape {order.shape}, expected ({n},)")
    if order.min() < 0 or order.max() >= n:
        raise ValueError(f"order must hold row indices in [0, {n})")
    return order


@functools.cache
def _blas_controller():
    # Load the BLAS that numba's np.dot calls, so the controller sees it.
    from scipy.linalg import cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_single_blas_lock = threading.Lock()
_single_blas_users = 0
_single_blas_limiter = None


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS on one thread while any Python thread is inside this block.

    The limit is process-wide, so concurrent callers share one: the first to
    enter sets it and the last to leave restores the BLAS thread counts.
    (Separate ``threadpoolctl`` limits could restore each other's "1".)
    """
    global _single_blas_users, _single_blas_limiter
    with _single_blas_lock:
        if _single_blas_users == 0:
            _single_blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _single_blas_users += 1
    try:
        yield
    finally:
        with _single_blas_lock:
            _single_blas_users -= 1
            if _single_blas_users == 0:
                _single_blas_limiter.restore_original_limits()
                _single_blas_limiter = None


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    dtype = z.dtype if z.dtype in _FLOATS else np.dtype(np.float64)
    rows = np.ascontiguousarray(np.atleast_2d(z), dtype)
    out = np.empty_like(rows)
    if out.size:
        _softmax(rows, out)
    return out.reshape(z.shape)


def forward(params, x):
    """Forward pass. See ``fastmlp.backends`` for the contract."""
    x = np.asarray(x)
    dtype = _float_dtype(x, *[array for layer in params for array in layer])
    a = np.ascontiguousarray(np.atleast_2d(x), dtype)
    Ws, bs = _layers(params, dtype, a.shape[1])
    cache = [a]
    last = len(Ws) - 1
    # A large batch is split into one chunk of rows per numba thread, each with
    # single-threaded BLAS, rather than handed to multithreaded BLAS: OpenBLAS's
    # workers keep spinning after a call and slowed the training epoch that
    # follows (fit's validation, then the next epoch) by 25 %.
    threads = get_num_threads()
    chunked = a.shape[0] >= _CHUNKED_FORWARD_ROWS and threads > 1
    blas = _single_threaded_blas() if chunked else contextlib.nullcontext()
    with blas:
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z = np.empty((a.shape[0], W.shape[0]), dtype)
            if chunked:
                _dense_rows(a, W, b, z, l == last, threads)
            elif l == last:
                _dense_softmax(a, W, b, z)
            else:
                _dense_relu(a, W, b, z)
            cache.append(z)
            a = z
    if x.ndim == 1:
        cache = [c[0] for c in cache]
    return cache[-1], cache


def backward(params, cache, y):
    """Gradients of the mean cross-entropy. See ``fastmlp.backends``."""
    dtype = _float_dtype(*cache, *[array for layer in params for array in layer])
    cache = [np.ascontiguousarray(np.atleast_2d(a), dtype) for a in cache]
    Ws, _ = _layers(params, dtype, cache[0].shape[1])
    n, n_classes = cache[-1].shape
    y = _labels(y, n, n_classes)
    for l, W in enumerate(Ws):
        if cache[l].shape != (n, W.shape[1]):
            raise ValueError(f"cache[{l}] has shape {cache[l].shape}, expected {(n, W.shape[1])}")
    delta = np.empty_like(cache[-1])
    db = np.empty(n_classes, dtype)
    _output_delta(cache[-1], y, delta, db)
    grads = []
    for l in range(len(Ws) - 1, -1, -1):
        dW = np.empty_like(Ws[l])
        if l == 0:
            _weight_grad(delta, cache[0], dW)
            grads.append((dW, db))
            break
        back = np.empty_like(cache[l])
        db_back = np.empty(back.shape[1], dtype)
        _layer_backward(delta, cache[l], Ws[l], dW, back, db_back)
        grads.append((dW, db))
        delta, db = back, db_back
    return grads[::-1]


def predict_one(params, x, scale=1.0, offset=0.0):
    """Class probabilities of one raw sample, without batch machinery.

    Parameters
    ----------
    params : list of (W, b)
    x : ndarray, shape (n_in,)
        Any real dtype (``uint8`` images included); the network sees
        ``scale * x + offset``, computed in the parameters' dtype.
    scale, offset : float
        The model's input scaling.

    Returns
    -------
    ndarray, shape (n_out,)
        In the parameters' dtype (float32 stays float32).
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"predict_one takes one sample of shape (n_in,), got shape {x.shape}")
    Ws, bs = zip(*params)
    dtypes = {a.dtype for a in Ws + bs}
    if len(dtypes) != 1 or Ws[0].dtype not in _FLOATS:
        Ws, bs = _layers(params, _float_dtype(*Ws, *bs), x.shape[0])
    return _predict_one(Ws, bs, x, scale, offset)


def train_epoch(params, x, y, batch_size, optimizer, learning_rates, order=None):
    """One pass of mini-batch training in one compiled call.

    Same contract and result as ``fastmlp.train.train_epoch``: consecutive
    batches of ``batch_size``, forward, loss, backward and the update of
    ``optimizer``, which must be exactly ``fastmlp.optim.SGD``, ``Adam`` or
    ``AdamW``. The parameters and the optimizer's own state arrays are updated
    in place and ``optimizer.t`` is advanced, so fused and generic epochs can
    be mixed.

    Each batch is split into one chunk of rows per numba thread; every thread
    runs the layers on its chunk with single-threaded BLAS, then updates its
    share of every layer's rows.

    Parameters
    ----------
    params : list of (W, b)
        Writeable arrays, all float32 or all float64.
    x : ndarray, shape (n_samples, n_in)
        Same dtype as the parameters.
    y : ndarray of int, shape (n_samples,)
    batch_size : int
    optimizer : SGD, Adam or AdamW
    learning_rates : array_like of float
        ``learning_rates[k]`` is the learning rate of step ``k``.
    order : ndarray of int, shape (n_samples,), optional
        Row indices: batch ``k`` is ``x[order[k * batch_size:(k + 1) * batch_size]]``,
        gathered inside the kernel. Default: the rows in order.

    Returns
    -------
    (loss_sum, correct, failed_step) or None
        As the generic ``train_epoch``; None for another optimizer, or arrays
        of other dtypes, which the generic loop handles.
    """
    rule = _RULES.get(type(optimizer))
    flat = [array for layer in params for array in layer]
    x = np.asarray(x)
    if rule is None or not flat or x.dtype not in _FLOATS or not all(
        isinstance(p, np.ndarray) and p.dtype == x.dtype and p.flags.writeable for p in flat
    ):
        return None
    dtype = x.dtype
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_in), got shape {x.shape}")
    check_positive_int(batch_size, "batch_size")
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    Ws, _ = _layers(params, dtype, x.shape[1])
    y = _labels(y, n, Ws[-1].shape[0])
    steps = -(-n // batch_size)
    learning_rates = np.ascontiguousarray(learning_rates, np.float64)
    if learning_rates.ndim != 1 or learning_rates.shape[0] < steps:
        raise ValueError(f"learning_rates needs one rate for each of the {steps} steps")
    if n == 0:
        return 0.0, 0, -1
    order = np.arange(n) if order is None else _indices(order, n)

    optimizer.init_state(params)
    if rule == _SGD_RULE:
        states = [optimizer.velocity] if optimizer.momentum else []
        hyper = [optimizer.momentum, optimizer.weight_decay, optimizer.nesterov, 0, 0, 0, 0]
    else:
        states = [optimizer.m, optimizer.v]
        hyper = [0, optimizer.weight_decay, 0, optimizer.beta1, optimizer.beta2, optimizer.eps,
                 optimizer.decoupled_weight_decay]
    for state in states:
        if len(state) != len(flat) or not all(
            isinstance(s, np.ndarray) and s.dtype == dtype and s.shape == p.shape
            for s, p in zip(state, flat)
        ):
            return None

    # Parameters and optimizer state travel as flat vectors, so the compiled
    # epoch has one signature per dtype whatever the depth; they are copied
    # back into the caller's arrays afterwards.
    offsets = np.cumsum([0] + [p.size for p in flat])
    units = np.cumsum([0] + [W.shape[0] for W in Ws])
    layout = np.array([(W.shape[0], W.shape[1], offsets[2 * l], offsets[2 * l + 1], units[l])
                       for l, W in enumerate(Ws)], np.int64)
    theta = np.concatenate([p.ravel() for p in flat])
    packed = [np.concatenate([s.ravel() for s in state]) for state in states]
    unused = np.empty(0, dtype)
    state1, state2 = (packed + [unused, unused])[:2]

    rows = min(batch_size, n)
    chunks = min(get_num_threads(), rows)
    block = max(-(-W.shape[0] // chunks) for W in Ws)
    # The chunks already use every core: BLAS gets one thread each.
    with _single_threaded_blas():
        loss_sum, correct, failed_step, steps_done = _train_epoch(
            theta, state1, state2, layout, x, y, order, batch_size, learning_rates, rule,
            np.array(hyper, np.float64), optimizer.t if rule == _ADAM_RULE else 0,
            np.finfo(dtype).tiny, np.empty(rows * units[-1], dtype),
            np.empty(rows * units[-1], dtype), np.empty_like(theta),
            np.empty((chunks, units[-1]), dtype), np.empty((chunks, block * rows), dtype),
            np.empty((rows, x.shape[1]), dtype), np.empty(rows, np.int64),
        )
    for vector, arrays in zip([theta] + packed, [flat] + states):
        for array, begin, end in zip(arrays, offsets[:-1], offsets[1:]):
            array[...] = vector[begin:end].reshape(array.shape)
    if rule == _ADAM_RULE:
        optimizer.t += steps_done
    return float(loss_sum), int(correct), int(failed_step)
