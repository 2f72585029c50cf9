"""The numba backend's ``forward``, ``backward``, ``softmax`` and ``predict_one``."""

from __future__ import annotations

import math
import operator
import sys
import threading

import numpy as np

from ..._validation import check_labels
from ...family import check_activation, check_output, is_labels
from . import _blocking, _compile_helper
from . import _kernels as k
from ._blocking import (
    ALIGNMENT,
    PANEL_KEEP_BYTES,
    PANELS_KEPT,
    PARALLEL_WORK,
    REUSE_BYTES,
    REUSE_KEPT,
    REUSE_KEPT_BYTES,
)
from ._compile_notice import compile_notice, noticed_call
from ._threads import num_threads, split_rows, thread_limits

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# (The thresholds read here, PARALLEL_WORK to PANELS_KEPT, are _blocking's, with the
# measurements behind them.)


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts at a multiple of ``ALIGNMENT`` bytes."""
    dtype = np.dtype(dtype)
    nbytes = (math.prod(shape) if isinstance(shape, tuple) else int(shape)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)



class _Kept(threading.local):
    def __init__(self):
        self.buffers: list[np.ndarray] = []
        self.panels: dict[tuple, np.ndarray] = {}


_kept = _Kept()


def _fresh(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, in memory an earlier large output no longer uses.

    A large array from ``np.empty`` is memory glibc maps for it and unmaps when
    it is freed, so each call faults its pages in again (MNIST's 60 000-row
    forward pass: 62-65 ms with glibc told to keep freed memory, 70-160 ms
    without). The calling thread keeps the buffers of its large outputs (at
    most ``REUSE_KEPT`` of them and ``REUSE_KEPT_BYTES`` in all) and hands one
    out again once no array refers to it: a view of it, such as an output the
    caller still holds, keeps it from being reused.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < REUSE_BYTES:
        return np.empty(shape, dtype)
    buffers = _kept.buffers
    for i in range(len(buffers)):
        # The views handed out refer to the memory's owner, the buffer's base: 2 is the
        # buffer's reference and getrefcount's own argument, and a live view adds one.
        if buffers[i].nbytes == nbytes and sys.getrefcount(buffers[i].base) == 2:
            buffers.append(buffers.pop(i))
            return buffers[-1].view(dtype).reshape(shape)
    buffer = aligned_empty(nbytes, np.uint8)
    buffers.append(buffer)
    while len(buffers) > 1 and (len(buffers) > REUSE_KEPT
                                or sum(b.nbytes for b in buffers) > REUSE_KEPT_BYTES):
        del buffers[0]
    return buffer.view(dtype).reshape(shape)


def settings() -> dict:
    """The backend's speed settings, for benchmarks to print.

    The tile and blocking compiled in (``_blocking.BLOCKING``; ``panel_width``
    in float32 columns), the caches they were derived from (``caches``, a
    dict of bytes and where they were read), the overrides in effect
    (``overrides``: ``FASTMLP_NUMBA_TILE``, ``FASTMLP_NUMBA_BLOCKING`` and
    ``FASTMLP_NUMBA_PARALLEL_WORK`` as they were at import, where set),
    ``threads``, :func:`num_threads`
    in the calling thread, and ``thread_limits``, the bounds it is the
    smallest of.
    """
    blocking = _blocking.BLOCKING
    return {"parallel_work": PARALLEL_WORK, "tile": str(blocking.tile),
            "row_tile": blocking.row_tile, "k_block": blocking.k_block,
            "forward_tile": blocking.forward_tile,
            "column_tile_rows": blocking.column_tile_rows,
            "narrow_vectors": blocking.narrow_vectors,
            "rows_dot_groups": blocking.rows_dot_groups,
            "rows_dot_alias": blocking.rows_dot_alias,
            "panel_width": blocking.panel_width(4), "gather_ahead": blocking.gather_ahead,
            "columns_from": blocking.columns_from, "column_rows": blocking.column_rows,
            "b_block": blocking.b_block, "pack_rows": blocking.pack_rows,
            "pack_stride": blocking.pack_stride, "refresh_bytes": blocking.refresh_bytes,
            "caches": _blocking.CACHES._asdict(),
            "overrides": dict(_blocking.OVERRIDES),
            "threads": num_threads(), "thread_limits": thread_limits()}


def kernel_array(a, dtype) -> np.ndarray:
    """``a`` as the one kind of array each kernel is compiled for: C-contiguous and
    writeable, in ``dtype``. (numba compiles a kernel again for every other
    layout, dtype or read-only flag; a copy of an input is cheaper.)"""
    return np.require(a, dtype, ["C", "W"])


def _float_dtype(*arrays) -> np.dtype:
    dtype = np.result_type(*arrays)
    return dtype if dtype in FLOATS else np.dtype(np.float64)


def check_layers(Ws, bs, n_in):
    """Raise ``ValueError`` naming the first layer whose ``W`` is not ``(n_out, n_in)``
    (``n_in`` the width below it) or whose ``b`` is not ``(n_out,)``."""
    for l, (W, b) in enumerate(zip(Ws, bs)):
        if W.ndim != 2 or W.shape[1] != n_in or b.shape != (W.shape[0],):
            raise ValueError(
                f"layer {l}: W must be (n_out, {n_in}) and b (n_out,), got {W.shape} and {b.shape}"
            )
        n_in = W.shape[0]


def _layers(params, dtype, n_in):
    """Tuples of the ``W`` and of the ``b``, C-contiguous in ``dtype``, shapes checked."""
    Ws = tuple(kernel_array(W, dtype) for W, _ in params)
    bs = tuple(kernel_array(b, dtype) for _, b in params)
    if not Ws:
        raise ValueError("params must hold at least one (W, b) layer")
    check_layers(Ws, bs, n_in)
    return Ws, bs


def _tasks(rows, work):
    """Row ranges to split a product of ``work`` multiply-adds into: 1 when it is small."""
    if work < PARALLEL_WORK:
        return 1
    threads = num_threads()  # a few microseconds: asked only for large products
    return min(threads, rows) if threads > 1 else 1


def _gemm(a, b):
    """``a @ b`` of C-contiguous ``a`` and ``b``; rows split across threads when large."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    with compile_notice(k.gemm):
        split_rows(k.gemm, a.shape[0], _tasks(a.shape[0], a.size * b.shape[1]), a, b, out)
    return out


def _gemm_t(a, b):
    """``a.T @ b``, reading ``a`` in place; split as in ``_gemm``."""
    out = np.empty((a.shape[1], b.shape[1]), a.dtype)
    with compile_notice(k.gemm_t):
        split_rows(k.gemm_t, a.shape[1], _tasks(a.shape[1], a.size * b.shape[1]), a, b, out)
    return out


def _paneled(W, slot=0):
    """``W.T`` in column panels of ``k.panel_width`` (``gemm_into``'s layout of ``b``).

    Each panel, ``(n_in, panel_width)``, is contiguous, so the tile reads its
    rows one after the other instead of ``4 n_out`` bytes apart (4 KB at 1024
    units: every row in the same cache set). A copy of up to ``PANEL_KEEP_BYTES``
    is the calling thread's scratch for ``slot`` and ``W``'s shape and dtype,
    which its next call for them overwrites. (A fresh copy of a 784 x 128 layer
    faulted its memory in on every call: a forward pass of 64 rows took 330 us,
    half of it outside the products.) Rows of ``W`` are split as in ``_gemm``.
    """
    key = (slot, W.shape, W.dtype)
    panels = _kept.panels
    out = panels.get(key)
    width = k.panel_width(W.dtype)
    if out is None:
        n_out, n_in = W.shape
        out = aligned_empty((-(-n_out // width) * n_in, width), W.dtype)
        if out.nbytes <= PANEL_KEEP_BYTES:
            if len(panels) >= PANELS_KEPT:
                panels.clear()
            panels[key] = out
    tasks = _tasks(W.shape[0], 64 * W.size)
    with compile_notice(k.transpose_rows):
        split_rows(k.transpose_rows, W.shape[0], tasks, W, out, width)
    return out


def softmax(z):
    """Row-wise softmax of ``z``, shape ``(n_classes,)`` or ``(n_samples, n_classes)``."""
    z = np.asarray(z)
    dtype = z.dtype if z.dtype in FLOATS else np.dtype(np.float64)
    rows = kernel_array(np.atleast_2d(z), dtype)
    out = np.empty_like(rows)
    if out.size:
        k.softmax(rows, out)
    return out.reshape(z.shape)


# gemm_into's clocks where nothing is timed: an empty array made once (np.empty in the
# compiled forward pass would compile an allocation of its own)
_UNTIMED = np.empty(0, np.int64)


def forward(params, x, activation="relu", output="softmax"):
    """Forward pass. See ``fastmlp.backends`` for the contract.

    Every row's result is the same bits whatever the batch around it, the
    thread that calls and the number of numba threads.
    """
    codes = k.ACTIVATION_CODES[check_activation(activation)], k.OUTPUT_CODES[check_output(output)]
    x = np.asarray(x)
    dtype = _float_dtype(x, *[array for layer in params for array in layer])
    a = kernel_array(np.atleast_2d(x), dtype)
    Ws, bs = _layers(params, dtype, a.shape[1])
    n = a.shape[0]
    W_ps = tuple(_paneled(W, slot=l) for l, W in enumerate(Ws))
    outs = tuple(_fresh((n, W.shape[0]), dtype) for W in Ws)
    work = n * sum(W.size for W in Ws)
    _compile_helper.wait_for(_compile_helper.FORWARD)  # (then loaded from numba's cache)
    with compile_notice(k.forward_rows):
        split_rows(k.forward_rows, n, _tasks(n, work), a, W_ps, bs, outs, _UNTIMED,
                   k.forward_callees(dtype, *codes), *codes)
    cache = [a, *outs]
    if x.ndim == 1:
        cache = [c[0] for c in cache]
    return cache[-1], cache


def backward(params, cache, y, sample_weight=None, activation="relu"):
    """Gradients of the (weighted) mean loss of the output. See ``fastmlp.backends``."""
    code = k.ACTIVATION_CODES[check_activation(activation)]
    dtype = _float_dtype(*cache, *[array for layer in params for array in layer])
    cache = [kernel_array(np.atleast_2d(a), dtype) for a in cache]
    Ws, _ = _layers(params, dtype, cache[0].shape[1])
    n, n_classes = cache[-1].shape
    labels = is_labels(y)
    if labels:
        y = kernel_array(check_labels(y, n, n_classes), np.int64)
    else:
        y = np.asarray(y)
        if y.size != n * n_classes:
            raise ValueError(f"targets have shape {y.shape}; the outputs have shape "
                             f"{(n, n_classes)}")
        y = kernel_array(y.reshape(n, n_classes), dtype)
    for l, W in enumerate(Ws):
        if cache[l].shape != (n, W.shape[1]):
            raise ValueError(f"cache[{l}] has shape {cache[l].shape}, expected {(n, W.shape[1])}")
    if sample_weight is None:
        weights = np.empty(0)  # the same compiled kernel as with weights
    else:
        weights = kernel_array(np.atleast_1d(sample_weight), np.float64)
        if weights.shape != (n,):
            raise ValueError(f"sample_weight has shape {weights.shape}, expected {(n,)}")
    delta = np.empty_like(cache[-1])
    if labels:
        k.output_delta(cache[-1], y, weights, delta)
    else:
        k.target_delta(cache[-1], y, weights, delta)
    grads = []
    for l in range(len(Ws) - 1, -1, -1):
        a = cache[l]
        dW = _gemm_t(delta, a)  # delta.T @ a, one FMA chain over the batch
        db = np.empty(delta.shape[1], dtype)
        k.column_sums(delta, db)
        grads.append((dW, db))
        if l > 0:
            # delta[l-1] = (delta @ W) * f'(z), from the layer's output (ReLU: a > 0)
            delta = _gemm(delta, Ws[l])
            if code == k.RELU:
                k.relu_backward_rows(delta, a, 0, n)
            else:
                k.derivative(delta, a, code)
    return grads[::-1]


def predict_one(params, x, scale=1.0, offset=0.0, activation="relu", output="softmax"):
    """The outputs (class probabilities by default) of one raw sample, without batch
    machinery.

    Parameters
    ----------
    params : list of (W, b)
    x : ndarray, shape (n_in,)
        Any real dtype (``uint8`` images included); the network sees
        ``scale * x + offset``, rounded as NumPy rounds it in the parameters' dtype.
    scale, offset : float
        The model's input scaling.
    activation, output : str
        The network's hidden activation and output function, as ``forward`` takes them.

    Returns
    -------
    ndarray, shape (n_out,)
        In the parameters' dtype, equal to ``forward`` of the scaled sample.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"predict_one takes one sample of shape (n_in,), got shape {x.shape}")
    Ws, bs = _kernel_layers(params, x.shape[0])
    # x in the parameters' dtype: the kernel's cast of each value, done here, so
    # that inputs of every dtype and layout share one compiled kernel
    dtype = Ws[0].dtype
    if x.dtype != dtype or not x.flags.carray:
        x = x.astype(dtype, order="C")
    # (checks and conversions kept to a few microseconds: they are as long as the kernel)
    try:
        codes = k.ACTIVATION_CODES[activation], k.OUTPUT_CODES[output]
    except KeyError:  # the names' checks say which is unknown
        raise ValueError(check_activation(activation) and check_output(output)) from None
    return noticed_call(k.predict_one, Ws, bs, x, float(scale), float(offset), *codes,
                        k.forward_callees(dtype, *codes, False))


class _Last(threading.local):
    def __init__(self):
        self.layers: list = []  # the (W, b) tuples of the thread's last predict_one
        self.kernel_layers: tuple = ()


_last = _Last()


def _kernel_layers(params, n_in):
    """``(Ws, bs)``, tuples of ``params``' arrays as the kernel takes them.

    When ``params`` holds the very ``(W, b)`` tuples of the calling thread's
    previous call (tuples, so they hold the same arrays), and those needed no
    conversion, they are the same tuples
    again: numba types new tuples of arrays and checks them anew (about 2 us a
    call, a fifth of one sample's prediction). Converted copies are never
    reused: they would miss a change to the arrays they were made from.
    """
    params = list(params)
    last = _last.layers
    if len(last) == len(params) and all(map(operator.is_, params, last)):
        return _last.kernel_layers
    Ws = tuple([W for W, _ in params])
    bs = tuple([b for _, b in params])
    if not _kernel_ready(Ws + bs):
        return _layers(params, _float_dtype(*Ws, *bs), n_in)
    # only tuples: a list [W, b] may hold other arrays by the next call
    if all(type(layer) is tuple for layer in params):
        _last.layers, _last.kernel_layers = params, (Ws, bs)
    return Ws, bs


def _kernel_ready(arrays) -> bool:
    """Whether ``arrays`` are what a kernel is compiled for as they are: one float
    dtype, C-contiguous, aligned and writeable (numba types the others apart)."""
    dtype = arrays[0].dtype
    return dtype in FLOATS and all(a.dtype == dtype and a.flags.carray for a in arrays)
