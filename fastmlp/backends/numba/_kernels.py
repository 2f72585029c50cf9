"""Every compiled kernel of the numba backend.

They live in one module because numba's on-disk cache keys a kernel on its own
module: a cached kernel calling a kernel of another module can keep a stale
compiled copy of it after that module changes.

The matrix products are written here, not delegated to BLAS. BLAS chooses how
to split a product by its thread count, which is process-wide state, and the
split changes the rounding; a kernel here gives every element the same
arithmetic wherever it lies, whichever thread runs it and however many run at
once, and it runs on one core so that the callers can split rows across
numba's threads themselves.

Kernels trust their inputs (no bounds checks): the Python wrappers check
shapes, dtypes and labels first. Every kernel releases the GIL.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# cache: compiled code is kept on disk. nogil: threads predicting at once run
# in parallel. error_model="numpy": x / 0 gives inf or nan as in NumPy, without
# a zero check that would keep loops from vectorising.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

# A product's k-loop is summed in whatever order LLVM vectorises it: the same
# order for every element, since every element goes through the same loop.
_DOT = {**_JIT, "fastmath": {"reassoc", "contract"}}

# Rows of a, and rows of b, that one register block of gemm_nt computes; bytes
# of a per cache tile (a tile of a stays in the core's cache while b streams
# past; of 16 KiB to 1 GiB, 48-64 KiB ran fastest at every shape of training).
BLOCK_A = 2
BLOCK_B = 4
TILE_BYTES = 64 * 1024

# What gemm_nt does with each sum before storing it.
PLAIN, BIAS_RELU, RELU_MASK = range(3)

# Slots of a row of the layout table of the fused epoch (one row per layer).
N_OUT, N_IN, W_AT, B_AT, UNIT_AT = range(5)

# Update rules of the fused epoch, and the slots of its hyper-parameter vector.
SGD_RULE, ADAM_RULE = 0, 1
MOMENTUM, WEIGHT_DECAY, NESTEROV, BETA1, BETA2, EPS, DECOUPLED = range(7)
N_HYPER = 7


@njit(**_DOT)
def gemm_nt_into(a, b, out, i0, i1, mode, bias, mask, out_t):
    """``out[i, j] = sum_k a[i, k] * b[j, k]`` for rows ``i0:i1`` of ``a``, every row of ``b``.

    ``a`` and ``b`` are C-contiguous with the same row length. Blocks of 2
    rows of ``a`` by 4 rows of ``b`` keep 8 sums in registers, each vectorised
    over k. A block that runs past the last row reads a row of zeros instead,
    so every element is summed by the same code in the same order, whatever
    its position: splitting the rows differently never changes a bit.

    Each tile of rows, still in cache, then goes through ``mode``: ``PLAIN``
    keeps the sums ``s``; ``BIAS_RELU`` makes them ``max(s + bias[j], 0)``;
    ``RELU_MASK`` keeps ``s`` where ``mask[i, j] > 0``, else ``0 * s``. Unless
    ``out_t`` is empty, the result also goes to ``out_t[j, i]``: the transposed
    copy that a sum over the batch wants. (Arguments a mode does not read may
    be empty arrays.)
    """
    K = a.shape[1]
    m = b.shape[0]
    zero = a.dtype.type(0)
    zeros = np.zeros(K, a.dtype)
    tile = max(BLOCK_A, TILE_BYTES // max(1, K * a.itemsize) // BLOCK_A * BLOCK_A)
    for t0 in range(i0, i1, tile):
        t1 = min(t0 + tile, i1)
        for j in range(0, m, BLOCK_B):
            b0 = b[j]
            b1 = b[j + 1] if j + 1 < m else zeros
            b2 = b[j + 2] if j + 2 < m else zeros
            b3 = b[j + 3] if j + 3 < m else zeros
            for i in range(t0, t1, BLOCK_A):
                a0 = a[i]
                a1 = a[i + 1] if i + 1 < t1 else zeros
                s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
                for k in range(K):
                    x0, x1 = a0[k], a1[k]
                    v0, v1, v2, v3 = b0[k], b1[k], b2[k], b3[k]
                    s00 += x0 * v0
                    s01 += x0 * v1
                    s02 += x0 * v2
                    s03 += x0 * v3
                    s10 += x1 * v0
                    s11 += x1 * v1
                    s12 += x1 * v2
                    s13 += x1 * v3
                _store_block(out[i], j, m, s00, s01, s02, s03)
                if i + 1 < t1:
                    _store_block(out[i + 1], j, m, s10, s11, s12, s13)
        _epilogue_rows(out, t0, t1, mode, bias, mask, out_t)


@njit(**_JIT)
def _store_block(row, j, m, s0, s1, s2, s3):
    # row[j:j + 4] = s0..s3, nothing past the last column
    row[j] = s0
    if j + 3 < m:
        row[j + 1], row[j + 2], row[j + 3] = s1, s2, s3
    else:
        if j + 1 < m:
            row[j + 1] = s1
        if j + 2 < m:
            row[j + 2] = s2


@njit(**_JIT)
def _epilogue_rows(out, i0, i1, mode, bias, mask, out_t):
    # gemm_nt_into's mode on rows i0:i1 of out, then their transposed copy
    zero = out.dtype.type(0)
    if mode == BIAS_RELU:
        for i in range(i0, i1):
            row = out[i]
            for j in range(row.shape[0]):
                v = row[j] + bias[j]
                row[j] = zero if v < 0 else v  # NaN stays NaN, as with np.maximum
    elif mode == RELU_MASK:
        relu_backward_rows(out, mask, i0, i1)
    if out_t.shape[0]:
        transpose_rows(out, out_t, i0, i1)


@njit(**_JIT)
def gemm_nt(a, b, out, i0, i1):
    """``out[i] = a[i] @ b.T`` for rows ``i0:i1``: ``gemm_nt_into`` in mode ``PLAIN``."""
    none = np.empty((0, 0), a.dtype)
    # np.int64: a bare PLAIN would be typed as a literal, compiling a copy of its own
    gemm_nt_into(a, b, out, i0, i1, np.int64(PLAIN), np.empty(0, a.dtype), none, none)


@njit(**_JIT)
def softmax_row(z, out):
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
def softmax(z, out):
    for i in range(z.shape[0]):
        softmax_row(z[i], out[i])


@njit(**_JIT)
def bias_softmax_rows(z, b, i0, i1):
    for i in range(i0, i1):
        row = z[i]
        for j in range(row.shape[0]):
            row[j] += b[j]
        softmax_row(row, row)


@njit(**_JIT)
def dense(a, W, b, out, last, i0, i1):
    """Rows ``i0:i1`` of a layer: ``out = softmax(a @ W.T + b)`` if ``last``, else ReLU."""
    none = np.empty((0, 0), a.dtype)
    gemm_nt_into(a, W, out, i0, i1, PLAIN if last else BIAS_RELU, b, none, none)
    if last:
        bias_softmax_rows(out, b, i0, i1)


@njit(**_JIT)
def predict_one(Ws, bs, x, scale, offset):
    """Probabilities of one raw sample ``x``, scaled first as ``scale * x + offset``.

    The scaling rounds as NumPy's does in the parameters' dtype (a product,
    then a sum, no fused multiply-add), and the layers are ``dense`` on a batch
    of one row, so the result equals ``forward`` of the scaled row exactly.
    """
    n_in = x.shape[0]
    for l in range(len(Ws)):
        if Ws[l].shape[1] != n_in or bs[l].shape[0] != Ws[l].shape[0]:
            raise ValueError("predict_one: layer shapes do not match each other or x")
        n_in = Ws[l].shape[0]
    cast = Ws[0].dtype.type
    s, o = cast(scale), cast(offset)
    a = np.empty((1, x.shape[0]), Ws[0].dtype)
    for i in range(x.shape[0]):
        a[0, i] = cast(x[i]) * s + o
    last = len(Ws) - 1
    for l in range(len(Ws)):
        z = np.empty((1, Ws[l].shape[0]), a.dtype)
        dense(a, Ws[l], bs[l], z, l == last, 0, 1)
        a = z
    return a[0]


@njit(**_JIT)
def output_delta(p, y, delta):
    # softmax + cross-entropy: delta = (p - onehot(y)) / n
    n, k = p.shape
    for i in range(n):
        for j in range(k):
            delta[i, j] = p[i, j]
        delta[i, y[i]] -= 1
        for j in range(k):
            delta[i, j] /= n


@njit(**_JIT)
def column_sums(a, out):
    # out[j] = sum over i of a[i, j], in row order
    out[:] = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]


@njit(**_JIT)
def relu_backward_rows(delta, a, i0, i1):
    # delta *= (a > 0), the ReLU derivative from the layer's output
    for i in range(i0, i1):
        for j in range(delta.shape[1]):
            if not a[i, j] > 0:
                delta[i, j] = delta[i, j] * 0  # keeps NaN * 0 = NaN, as the multiply does


@njit(**_JIT)
def transpose_rows(src, dst, i0, i1):
    # dst[:, i] = src[i] for rows i0:i1. Blocks of 32 rows by 4 columns: each
    # row of dst gets 32 neighbouring values per visit, and each row of src
    # gives 4 (a plain double loop ran at 0.8 ns per value, this at 0.5)
    m = src.shape[1]
    for b0 in range(i0, i1, 32):
        b1 = min(b0 + 32, i1)
        for k in range(0, m - m % 4, 4):
            d0, d1, d2, d3 = dst[k], dst[k + 1], dst[k + 2], dst[k + 3]
            for i in range(b0, b1):
                row = src[i]
                d0[i], d1[i], d2[i], d3[i] = row[k], row[k + 1], row[k + 2], row[k + 3]
        for k in range(m - m % 4, m):
            column = dst[k]
            for i in range(b0, b1):
                column[i] = src[i, k]


@njit(**_JIT)
def _block(flat, offset, rows, cols):
    # rows x cols C-contiguous view of flat[offset:]
    return flat[offset:offset + rows * cols].reshape(rows, cols)


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


@njit(**_JIT)
def _update_slice(theta, grad, state1, state2, lo, hi, rule, hyper, lr, t):
    """Update ``theta[lo:hi]`` from ``grad[lo:hi]`` by ``rule``.

    ``state1, state2`` are the optimizer's state (SGD velocity; Adam m and v).
    As in ``fastmlp.optim``, the arithmetic is in the parameters' dtype, with
    the products by the (float64) learning rate rounded back to it.
    """
    cast = theta.dtype.type
    if rule == SGD_RULE:
        _sgd_update(theta[lo:hi], grad[lo:hi], state1[lo:hi], lr, cast(hyper[MOMENTUM]),
                    cast(hyper[WEIGHT_DECAY]), hyper[NESTEROV] != 0)
    else:
        beta1, beta2, decoupled = hyper[BETA1], hyper[BETA2], hyper[DECOUPLED] != 0
        step_size = lr / (1 - beta1 ** float(t))
        inv_bias2 = cast(1 / math.sqrt(1 - beta2 ** float(t)))
        shrink = 1 - lr * hyper[WEIGHT_DECAY] if decoupled else 1.0
        coupled_decay = cast(0) if decoupled else cast(hyper[WEIGHT_DECAY])
        _adam_update(theta[lo:hi], grad[lo:hi], state1[lo:hi], state2[lo:hi], step_size,
                     inv_bias2, cast(beta1), cast(1 - beta1), cast(beta2), cast(1 - beta2),
                     cast(hyper[EPS]), coupled_decay, shrink)


@njit(**_JIT)
def _softmax_cross_entropy_rows(z, b, y, n_batch, tiny, delta, losses, hits, i0, i1):
    """Softmax of ``z + b`` for rows ``i0:i1``, each row's loss and hit, and its delta.

    Writes ``losses[i] = -log max(p[y], tiny)``, ``hits[i] = argmax p == y`` and
    ``delta[i] = (p - onehot(y)) / n_batch``.
    """
    k = z.shape[1]
    for i in range(i0, i1):
        p = delta[i]
        for j in range(k):
            p[j] = z[i, j] + b[j]
        softmax_row(p, p)
        best = 0
        for j in range(1, k):
            if p[j] > p[best]:
                best = j
        label = y[i]
        hits[i] = best == label
        # clip at tiny, keeping NaN, as np.maximum does
        p_label = p[label]
        if p_label < tiny:
            p_label = tiny
        losses[i] = -np.log(p_label)
        p[label] -= 1
        for j in range(k):
            p[j] /= n_batch


@njit(**_JIT)
def _rows_forward_deltas(theta, layout, buffers, tiny, n, r0, r1):
    """Forward pass, loss and deltas of rows ``r0:r1`` of the batch of ``n`` rows.

    Each layer's output and delta also go, transposed, to ``buffers.zt`` and
    ``buffers.dt``: the weight gradients sum over the batch, and ``gemm_nt``
    wants the summed index contiguous.
    """
    L = layout.shape[0]
    none = np.empty((0, 0), theta.dtype)
    # One product per step, 2 L - 1 steps, through one call of gemm_nt_into:
    # numba compiles every call site of a kernel anew, and this one is large.
    for step in range(2 * L - 1):
        if step < L:
            # forward: z[l] = max(a[l] @ W[l].T + b[l], 0); logits for the last layer
            l = step
            n_out, n_in, w_at, b_at, unit_at = layout[l]
            a = buffers.xb[:n] if l == 0 else _block(buffers.z, layout[l - 1, UNIT_AT] * n, n,
                                                      n_in)
            b, out = _block(theta, w_at, n_out, n_in), _block(buffers.z, unit_at * n, n, n_out)
            hidden = l < L - 1
            mode, bias, mask = BIAS_RELU if hidden else PLAIN, theta[b_at:b_at + n_out], none
            out_t = _block(buffers.zt, unit_at * n, n_out, n) if hidden else none
        else:
            # backward: delta[l-1] = (delta[l] @ W[l]) * (a[l] > 0), W[l].T kept in buffers.wt
            l = 2 * L - 1 - step
            n_out, n_in, w_at, _, unit_at = layout[l]
            below = layout[l - 1, UNIT_AT]
            a, b = _block(buffers.d, unit_at * n, n, n_out), _block(buffers.wt, w_at, n_in, n_out)
            out = _block(buffers.d, below * n, n, n_in)
            mode, bias, mask = RELU_MASK, theta[:0], _block(buffers.z, below * n, n, n_in)
            out_t = _block(buffers.dt, below * n, n_in, n)
        gemm_nt_into(a, b, out, r0, r1, mode, bias, mask, out_t)
        if step == L - 1:
            delta = _block(buffers.d, unit_at * n, n, n_out)
            _softmax_cross_entropy_rows(out, bias, buffers.yb, n, tiny, delta, buffers.losses,
                                        buffers.hits, r0, r1)
            transpose_rows(delta, _block(buffers.dt, unit_at * n, n_out, n), r0, r1)


@njit(**_JIT)
def _gather_rows(x, y, order, buffers, n, r0, r1, scale, offset):
    # rows scale * x[order[i]] + offset, rounded as InputScaler.transform rounds
    # them (a product, then a sum), and labels y[order[i]] of the batch; then
    # the rows transposed, for the first layer's weight gradient
    cast = buffers.xb.dtype.type
    s, o = cast(scale), cast(offset)
    for i in range(r0, r1):
        buffers.yb[i] = y[order[i]]
        source, row = x[order[i]], buffers.xb[i]
        for j in range(row.shape[0]):
            row[j] = cast(source[j]) * s + o
    transpose_rows(buffers.xb, _block(buffers.xt, 0, x.shape[1], n), r0, r1)


@njit(**_JIT, parallel=True)
def _forward_deltas(theta, layout, x, y, order, scale, offset, buffers, tiny, tasks):
    # One range of the batch's rows per task: gather them, then the layers, the
    # loss and the deltas of those rows. (The gather is a function of its own:
    # written inline in this loop, numba 0.68 miscompiled it.)
    n = order.shape[0]
    size = -(-n // tasks)
    for c in prange(tasks):
        r0 = min(c * size, n)
        r1 = min(r0 + size, n)
        _gather_rows(x, y, order, buffers, n, r0, r1, scale, offset)
        _rows_forward_deltas(theta, layout, buffers, tiny, n, r0, r1)


@njit(**_JIT, parallel=True)
def _gradients_and_update(theta, state1, state2, layout, buffers, n, rule, hyper, lr, t,
                          tasks):
    # Task c owns a range of rows j0:j1 of every W and b: it computes their
    # gradient, dW[j0:j1] = delta[:, j0:j1].T @ a and db[j0:j1], then updates
    # them while the gradient is still in its cache, and refreshes their
    # columns of W.T for the next step's backward pass.
    grad = buffers.grad
    for c in prange(tasks):
        for l in range(layout.shape[0]):
            n_out, n_in, w_at, b_at, unit_at = layout[l]
            size = -(-n_out // tasks)
            j0 = min(c * size, n_out)
            j1 = min(j0 + size, n_out)
            if j0 == j1:
                continue
            delta_t = _block(buffers.dt, unit_at * n, n_out, n)
            if l == 0:
                a_t = _block(buffers.xt, 0, n_in, n)
            else:
                a_t = _block(buffers.zt, layout[l - 1, UNIT_AT] * n, n_in, n)
            gemm_nt(delta_t, a_t, _block(grad, w_at, n_out, n_in), j0, j1)
            # db[j] = sum of delta[:, j] in batch order, summed for all j at once
            db = grad[b_at + j0:b_at + j1]
            db[:] = 0
            delta = _block(buffers.d, unit_at * n, n, n_out)
            for i in range(n):
                row = delta[i]
                for j in range(j0, j1):
                    db[j - j0] += row[j]
            _update_slice(theta, grad, state1, state2, w_at + j0 * n_in, w_at + j1 * n_in,
                          rule, hyper, lr, t)
            _update_slice(theta, grad, state1, state2, b_at + j0, b_at + j1, rule, hyper, lr, t)
            if l > 0:
                transpose_rows(_block(theta, w_at, n_out, n_in),
                               _block(buffers.wt, w_at, n_in, n_out), j0, j1)


@njit(**_JIT)
def train_epoch(theta, state1, state2, layout, x, y, order, scale, offset, batch_size,
                learning_rates, rule, hyper, t, tiny, buffers, tasks):
    """All steps of one epoch; returns (loss_sum, correct, failed_step, steps_done).

    Every layer's ``W`` and ``b`` live in the flat vector ``theta`` (the
    optimizer state and the gradient alike), where row l of ``layout`` is
    indexed by ``N_OUT, N_IN, W_AT, B_AT, UNIT_AT``: the layer's sizes, the
    offsets of its ``W`` and ``b``, and the offset of its units among all
    units. ``hyper`` is indexed by ``MOMENTUM, ..., DECOUPLED``. Batch k is
    rows ``order[k * batch_size:(k + 1) * batch_size]`` of ``x`` (``order`` may
    pick any rows, a part of an epoch's shuffle for instance), scaled as
    ``scale * x + offset`` and gathered into ``buffers`` (see
    ``_fused.EpochBuffers``), where they stay in cache for the whole step.
    Each step's loss is summed row by row in batch order, so neither the
    result nor the parameters depend on ``tasks``.
    """
    n_samples = order.shape[0]
    loss_sum = 0.0
    correct = 0
    step = 0
    L = layout.shape[0]
    for l in range(1, L):
        transpose_rows(_block(theta, layout[l, W_AT], layout[l, N_OUT], layout[l, N_IN]),
                       _block(buffers.wt, layout[l, W_AT], layout[l, N_IN], layout[l, N_OUT]),
                       0, layout[l, N_OUT])
    for begin in range(0, n_samples, batch_size):
        n = min(begin + batch_size, n_samples) - begin
        _forward_deltas(theta, layout, x, y, order[begin:begin + n], scale, offset, buffers,
                        tiny, min(tasks, n))
        batch_loss = 0.0
        for i in range(n):
            batch_loss += buffers.losses[i]
        if not np.isfinite(batch_loss):
            return loss_sum, correct, step, step
        loss_sum += batch_loss
        for i in range(n):
            correct += buffers.hits[i]
        if rule == ADAM_RULE:
            t += 1
        _gradients_and_update(theta, state1, state2, layout, buffers, n, rule, hyper,
                              learning_rates[step], t, tasks)
        step += 1
    return loss_sum, correct, -1, step
