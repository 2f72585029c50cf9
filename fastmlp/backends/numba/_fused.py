"""The fused training epoch: the Python half (packing, buffers, threads) of the compiled one.

``run_steps`` is what ``fit`` runs (see ``fastmlp.backends``): every step of
a run in one compiled call, or, when the compiled epoch cannot run the
optimizer or the parameters' dtypes, ``fastmlp.steps``'s one loop over this
backend's ``forward`` and ``backward``, with a ``PerformanceWarning`` saying
why. ``train_epoch`` is the same fused epoch for a caller that has not
checked its arguments: it checks them, and runs nothing when it cannot fuse.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import NamedTuple

import numpy as np

from ..._flat import base_vector
from ..._validation import check_labels, check_positive_int, check_sample_weight
from ...exceptions import PerformanceWarning
from ...family import check_activation, check_output, is_labels
from ...optim import FUSED_RULES
from ...steps import NO_TIMER, Batches, ComposedSteps, StepsDone, Timer
from . import _api, _compile_helper
from . import _kernels as k
from ._api import FLOATS, aligned_empty, backward, check_layers, forward
from ._compile_notice import compile_notice
from ._threads import num_threads, run_in_caller, run_workers


class EpochBuffers(NamedTuple):
    """Work arrays of one fused epoch, allocated once per call.

    ``rows`` is the batch size (at most the number of samples), ``units`` the
    total width of all layers. Per-layer blocks of the flat arrays sit at the
    layer's offsets in the layout table (``UNIT_AT * n`` for activations,
    ``W_AT`` for weights), shaped for the current batch of ``n`` rows.
    """

    xb: np.ndarray      # (rows, n_in): the batch's inputs, gathered by the shuffled order
    yb: np.ndarray      # (rows,) int64: the batch's labels
    z: np.ndarray       # (rows * units,): each layer's output (logits of the last)
    d: np.ndarray       # (rows * units,): each layer's delta, dLoss/dz
    d_t: np.ndarray     # (rows * units,): delta.T of the layers by columns, (n_out, n) each
    wt: np.ndarray      # like theta: each W transposed (the first layer's working copy),
                        # but those of the layers by columns (kernels.forward_by_columns),
                        # which keep W in panels there for delta @ W (kernels.w_panel)
    s1t: np.ndarray     # like state1 (or empty): the first layer's block transposed
    s2t: np.ndarray     # like state2 (or empty): the same
    grad: np.ndarray    # like theta: the step's gradient (the first layer's as dW.T)
    losses: np.ndarray  # (rows,) float64: each row's loss
    hits: np.ndarray    # (rows,) int64: 1 where the row's prediction was right
    wb: np.ndarray      # (rows,) float64, or empty when unweighted: the batch's weights
    tb: np.ndarray      # (rows, n_out), or (0, 0) with labels: the batch's target rows
    penalties: np.ndarray  # (chunks,) float64: sum(W^2) by chunk (k.penalty_chunks), or empty
    a_t: np.ndarray     # (workers, size): each worker's rows of a layer's input, transposed
    z_t: np.ndarray     # (workers, size): ... and of its output, for products by columns

    @classmethod
    def allocate(cls, rows, n_in, units, theta, state1, state2, weighted=False, n_targets=0,
                 penalty_chunks=0, workers=1, columns=()):
        # the products' operands aligned (see _api.ALIGNMENT): the batch, the layers'
        # outputs and deltas, the transposed weights and the gradient
        dtype = theta.dtype
        column_rows = min(k.COLUMN_ROWS, -(-rows // workers))
        return cls(xb=aligned_empty((rows, n_in), dtype),
                   yb=np.empty(rows, np.int64), z=aligned_empty(rows * units, dtype),
                   d=aligned_empty(rows * units, dtype), wt=aligned_empty(theta.shape, dtype),
                   d_t=aligned_empty(rows * units if columns else 0, dtype),
                   s1t=aligned_empty(state1.shape, dtype),
                   s2t=aligned_empty(state2.shape, dtype),
                   grad=aligned_empty(theta.shape, dtype), losses=np.empty(rows),
                   hits=np.empty(rows, np.int64), wb=np.empty(rows if weighted else 0),
                   tb=np.empty((rows, n_targets) if n_targets else (0, 0), dtype),
                   penalties=np.zeros(penalty_chunks),
                   # columns: the sizes (n_in, n_out) of the layers whose forward runs by
                   # columns
                   a_t=aligned_empty((workers, max((i for i, _ in columns), default=0)
                                      * column_rows), dtype),
                   z_t=aligned_empty((workers, max((o for _, o in columns), default=0)
                                      * column_rows), dtype))


def _fallback(reason: str):
    warnings.warn(f"numba backend: {reason}; training runs the generic per-step loop, "
                  "2-3x slower", PerformanceWarning, stacklevel=3)


def _why_not_fused(flat) -> str | None:
    """Why the fused epoch cannot train the parameter arrays ``flat``, in words; None if it can."""
    dtypes = {array.dtype for array in flat}
    if len(dtypes) != 1 or flat[0].dtype not in FLOATS:
        return (f"parameters of dtypes {', '.join(sorted(map(str, dtypes)))} (the fused "
                "epoch needs all float32 or all float64)")
    return None


def _describe(optimizer, params):
    """The optimizer's update as ``((rule, hyper vector, state lists, t), None)``, or
    ``(None, reason)`` saying in words why the fused epoch cannot run it."""
    describe = getattr(optimizer, "fused_update", None)
    update = describe(params) if describe is not None else None
    name = type(optimizer).__name__
    if update is None:
        return None, f"optimizer {name} does not describe its update (fused_update)"
    if update.rule not in k.RULE_IDS:
        return None, (f"optimizer {name} uses update rule {update.rule!r}, which the fused "
                      f"epoch does not implement")
    names = FUSED_RULES[update.rule]  # the kernel's slots, in order
    unknown = sorted(set(update.hyper) - set(names))
    if unknown:
        return None, (f"optimizer {name} has hyper-parameters the fused {update.rule} update "
                      f"does not implement: {', '.join(unknown)}")
    hyper = np.zeros(k.N_HYPER)
    for slot, key in enumerate(names):
        hyper[slot] = float(update.hyper.get(key, 0.0))
    return (k.RULE_IDS[update.rule], hyper, update.state, update.t), None


# What run_steps runs when the fused epoch cannot: the one loop over numba's own
# forward and backward.
_COMPOSED = ComposedSteps(forward, backward)


def run_steps(params, batches: Batches, optimizer, learning_rates,
              timer: Timer = NO_TIMER, *, activation: str = "relu",
              output: str = "softmax") -> StepsDone:
    """What ``fit`` runs: every step of ``batches`` in one compiled call.

    Every activation and output of ``fastmlp.family`` runs fused, against
    labels or a target matrix ``batches.y``: the activation and the output's
    function, loss and delta are table-driven epilogues of the same compiled
    epoch.

    See ``fastmlp.backends`` for the contract; ``batches`` are trusted, as
    ``fit`` has checked them. Batch rows are scaled as they are gathered (raw
    ``uint8`` images need no scaled copy), and weighted inside the compiled
    epoch when ``batches.sample_weight`` is given (the same compiled code).
    ``timer.parts``, when a dict, is filled with the seconds of each of
    :data:`PARTS`.

    When the fused epoch cannot run ``optimizer`` (it does not describe its
    update with ``fused_update``, or describes one the compiled code does not
    implement) or the parameters (not all float32 or all float64), a
    ``PerformanceWarning`` names why and the steps run through
    ``fastmlp.steps.ComposedSteps`` over this backend's ``forward`` and
    ``backward``: the same training, 2-3x slower.
    """
    flat = [array for layer in params for array in layer]
    reason = _why_not_fused(flat)
    if reason is None:
        described, reason = _describe(optimizer, params)
    if reason is not None:
        _fallback(reason)
        return _COMPOSED(params, batches, optimizer, learning_rates, timer,
                         activation=activation, output=output)
    x, y, order, batch_size, scaler, _, sample_weight = batches
    dtype = flat[0].dtype
    scale, offset = (1.0, 0.0) if scaler is None else scaler.affine()
    x = _epoch_inputs(x, dtype)
    order = np.arange(x.shape[0]) if order is None else order
    y, targets = _epoch_targets(y, x.shape[0], dtype)
    return _fused_epoch(flat, optimizer, described, x, y, order, batch_size,
                        np.ascontiguousarray(learning_rates, np.float64), scale, offset,
                        timer.parts, _epoch_weights(sample_weight), targets,
                        _family_codes(activation, output))


def train_epoch(params, x, y, batch_size, optimizer, learning_rates, order=None, *,
                sample_weight=None, scale=1.0, offset=0.0, parts=None, activation="relu",
                output="softmax"):
    """One pass of mini-batch training in one compiled call, its arguments checked.

    Same contract and result as ``fastmlp.train.train_epoch``: consecutive
    batches of ``batch_size`` (rows ``order[k * batch_size:(k + 1) *
    batch_size]`` of ``x`` when ``order`` is given), forward, loss, backward
    and the update that ``optimizer.fused_update`` describes. The parameters
    and the optimizer's state arrays are updated in place and
    ``optimizer.advance`` is told the steps taken, so fused and generic epochs
    can be mixed. ``fit`` runs the same epoch through :func:`run_steps`.

    Each batch's rows are split across :func:`num_threads` worker threads for
    the forward and backward passes, and the rows of every ``W`` for the
    gradients and the update; the result does not depend on the number of
    threads.

    Parameters
    ----------
    params : list of (W, b)
        Writeable arrays, all float32 or all float64: the dtype of the computation.
    x : ndarray, shape (n_samples, n_in)
        ``uint8`` (raw pixels), or converted to the parameters' dtype if it has another.
    y : ndarray, shape (n_samples,) or (n_samples, n_out)
        Int labels (softmax), or float targets for any output.
    batch_size : int
    optimizer : object with ``fused_update(params)`` and ``advance(steps)``
        Every optimizer of ``fastmlp.optim``.
    learning_rates : array_like of float
        ``learning_rates[k]`` is the learning rate of step ``k``.
    order : ndarray of int, 1-D, optional
        The rows to train on, in the order to take them: a permutation of all
        rows for an epoch, or a part of one. Default: every row in order.
    sample_weight : array_like of float, shape (n_samples,), optional
        Finite, non-negative weight of each row of ``x``: each batch's loss is
        its weighted mean, as in ``fastmlp.train.fit``. Weighted inside the
        compiled epoch, which is the same compiled code with or without.
    scale, offset : float
        The network sees ``scale * x + offset``, computed as each batch is
        gathered and rounded as ``InputScaler.transform`` rounds it, so raw
        ``uint8`` images need no scaled float copy of the whole data set.
    parts : dict, optional
        If given, filled with the seconds the epoch spent in each of
        :data:`PARTS`, averaged over the worker threads (see :func:`epoch_parts`).
    activation, output : str
        The network's hidden activation and output function (``fastmlp.family``).

    Returns
    -------
    StepsDone (loss_sum, correct, failed_step) or None
        As the generic ``train_epoch``; None, with a ``PerformanceWarning``
        saying why, when the optimizer or the parameters' dtypes cannot run
        fused: then nothing is trained (:func:`run_steps` runs the generic
        loop instead).
    """
    flat = [np.asarray(array) for layer in params for array in layer]
    if not flat:
        raise ValueError("params must hold at least one (W, b) layer")
    reason = _why_not_fused(flat)
    if reason is not None:
        _fallback(reason)
        return None
    for array, original in zip(flat, (a for layer in params for a in layer)):
        if array is not original or not array.flags.writeable:
            raise ValueError("train_epoch updates params in place: every W and b must be a "
                             "writeable NumPy array")
    dtype = flat[0].dtype
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_in), got shape {x.shape}")
    check_positive_int(batch_size, "batch_size")
    x = _epoch_inputs(x, dtype)
    Ws = flat[0::2]
    check_layers(Ws, flat[1::2], x.shape[1])
    codes = _family_codes(activation, output)
    if is_labels(y):
        y = np.ascontiguousarray(check_labels(y, x.shape[0], Ws[-1].shape[0]))
    elif np.shape(y) != (x.shape[0], Ws[-1].shape[0]):
        raise ValueError(f"targets have shape {np.shape(y)}; the network needs "
                         f"{(x.shape[0], Ws[-1].shape[0])}")
    y, targets = _epoch_targets(y, x.shape[0], dtype)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, x.shape[0])
    order = np.arange(x.shape[0]) if order is None else _indices(order, x.shape[0])
    steps = -(-order.shape[0] // batch_size)
    learning_rates = np.ascontiguousarray(learning_rates, np.float64)
    if learning_rates.ndim != 1 or learning_rates.shape[0] < steps:
        raise ValueError(f"learning_rates needs one rate for each of the {steps} steps")
    described, reason = _describe(optimizer, params)
    if reason is not None:
        _fallback(reason)
        return None
    return _fused_epoch(flat, optimizer, described, x, y, order, batch_size, learning_rates,
                        scale, offset, parts, _epoch_weights(sample_weight), targets, codes)


def compile_ahead(dtype, optimizer, layers: int, activation="relu", output="softmax",
                  labels: bool = True) -> bool:
    """Start compiling now, in a second process (``_compile_helper.start_early``), what the
    fused epoch of a network of ``layers`` layers of ``activation`` and ``output`` in
    ``dtype``, trained by ``optimizer`` on labels (``labels``) or on targets, will call,
    if numba's cache holds no compiled epoch at all; whether it started. ``optimizer`` is
    left as it is (a copy describes its update). The results are the same either way."""
    dtype = np.dtype(dtype)
    if dtype not in FLOATS or layers < 1:
        return False
    params = [(np.zeros((1, 1), dtype), np.zeros(1, dtype)) for _ in range(layers)]
    described, _ = _describe(copy.deepcopy(optimizer), params)
    if described is None:
        return False
    return _compile_helper.start_early(dtype, described[0], _family_codes(activation, output),
                                       labels, layers, k.train_epoch_worker)


def _family_codes(activation, output):
    """The kernels' codes of ``activation`` and ``output`` (ValueError naming a bad one)."""
    return (k.ACTIVATION_CODES[check_activation(activation)],
            k.OUTPUT_CODES[check_output(output)])


def _epoch_targets(y, n_samples, dtype):
    """``(labels, targets)`` as the epoch takes ``y``: int64 labels and an empty target
    matrix, or, for a float target matrix, labels of zeros (the gather reads them,
    unused) and the matrix C-contiguous in ``dtype``."""
    if is_labels(y):
        return np.ascontiguousarray(y, np.int64), np.empty((0, 0), dtype)
    return np.zeros(n_samples, np.int64), np.require(y, dtype, ["C", "W"])


def _epoch_weights(sample_weight):
    """The epoch's ``EpochData.sample_weight``: C-contiguous writeable float64, or empty
    for None, so that both are one type to numba and compile one epoch."""
    if sample_weight is None:
        return np.empty(0)
    return np.require(sample_weight, np.float64, ["C", "W"])


def _epoch_inputs(x, dtype):
    """``x`` as the epoch reads it: C-contiguous, ``uint8`` or ``dtype``, and always a
    read-only view: the epoch never writes x, and numba compiles a kernel of its own
    for each writeable flag (a memory-mapped data set is read-only)."""
    x = np.ascontiguousarray(x, np.uint8 if x.dtype == np.uint8 else dtype).view()
    x.flags.writeable = False
    return x


def _fused_epoch(flat, optimizer, described, x, y, order, batch_size, learning_rates,
                 scale, offset, parts, sample_weight, targets, codes) -> StepsDone:
    """The compiled epoch on arguments ready for it: ``flat`` the parameter arrays
    (writeable, one float dtype), ``x`` from :func:`_epoch_inputs`, ``y`` and
    ``order`` C-contiguous int64, ``learning_rates`` float64, one per step,
    ``sample_weight`` from :func:`_epoch_weights`, ``y`` and ``targets`` from
    :func:`_epoch_targets`, ``codes`` the activation's and the output's."""
    rule, hyper, states, t = described
    n = order.shape[0]
    if n == 0:
        return StepsDone(0.0, 0, -1)
    dtype = flat[0].dtype
    Ws = flat[0::2]

    # Parameters and optimizer state travel as flat vectors, so the compiled
    # epoch has one signature per dtype whatever the depth. Those of a model
    # and of fastmlp's optimizers already are views of one vector each (see
    # fastmlp._flat), updated in place; other arrays are packed into a vector
    # and copied back afterwards.
    offsets = np.cumsum([0] + [p.size for p in flat])
    units = np.cumsum([0] + [W.shape[0] for W in Ws])
    # An epoch of fewer multiply-adds than a product that splits (its products, about
    # three per weight and row) runs on one worker in the calling thread: on tiny data
    # sets starting and joining the workers cost more than the epoch (the same bits).
    small = n * 3 * sum(W.size for W in Ws) < _api.PARALLEL_WORK
    workers = 1 if small else max(1, min(num_threads(), n))
    rows = -(-min(batch_size, n) // workers)  # of each batch, a worker's
    by_columns = [k.forward_by_columns(W.shape[1], W.shape[0], dtype, rows) for W in Ws]
    layout = np.array([(W.shape[0], W.shape[1], offsets[2 * l], offsets[2 * l + 1], units[l],
                        by_columns[l], k.w_panel(l, W.shape[1], by_columns[l], dtype))
                       for l, W in enumerate(Ws)], np.int64)
    groups = [flat, *(list(state) for state in states)]
    vectors = [_vector(arrays, dtype) for arrays in groups]
    unused = np.empty(0, dtype)
    theta, state1, state2 = (vectors + [unused, unused])[:3]
    sync = np.zeros(k.SYNC_SIZE, np.int64)
    sync[k.FAILED_STEP] = -1
    loss_sum = np.zeros(2)  # the steps' losses, and scikit-learn's rules' L2 terms
    columns = [(row[k.N_IN], row[k.N_OUT]) for row in layout if row[k.COLUMNS]]
    buffers = EpochBuffers.allocate(min(batch_size, n), x.shape[1], int(units[-1]), theta,
                                    state1, state2, sample_weight.shape[0] > 0,
                                    targets.shape[1] if targets.shape[0] else 0,
                                    k.penalty_chunks(layout), workers, columns)
    clocks = np.zeros((workers, k.N_PARTS), np.int64)
    # if numba now compiles the worker, a second process may compile the rest meanwhile
    labels = k.labels_loss(codes[1], targets)
    _compile_helper.request(dtype, rule, codes, labels, len(Ws))
    try:
        with compile_notice(k.train_epoch_worker):
            start = time.perf_counter()
            run = run_in_caller if small else run_workers
            run(k.train_epoch_worker, workers, sync, k.ABORT, loss_sum,
                k.Parameters(theta, state1, state2), layout,
                k.EpochData(x, y, order, learning_rates, int(batch_size), float(scale),
                            float(offset), sample_weight, targets, *map(int, codes)),
                k.UpdateRule(int(rule), hyper, int(t), float(np.finfo(dtype).tiny)),
                buffers, clocks, k.epoch_callees(dtype, int(rule), *map(int, codes), labels))
            wall = time.perf_counter() - start
        if parts is not None:
            parts.update(epoch_parts(clocks, wall))
    finally:
        # the steps done stand, even when interrupted between two of them
        steps_done = int(sync[k.STEPS_DONE])
        if steps_done and not layout[0, k.COLUMNS]:
            _first_layer_back(layout[0], buffers, theta, state1, state2)
        _unpack(vectors, groups)
        optimizer.advance(steps_done)
        if loss_sum[1]:  # scikit-learn's rules keep their L2 term of the loss
            optimizer.penalty_sum += float(loss_sum[1])
    return StepsDone(float(loss_sum[0]), int(sync[k.CORRECT]), int(sync[k.FAILED_STEP]))


# The parts of a fused epoch, as ``train_epoch(parts=...)`` reports them.
PARTS = ("gather", "products", "epilogues", "update", "wait", "other", "launch")
_COUNTED = {"gather": k.GATHER, "products": k.PRODUCTS, "epilogues": k.EPILOGUES,
            "update": k.UPDATE, "wait": k.WAIT}


def epoch_parts(clocks, wall):
    """Seconds of each of :data:`PARTS` from the workers' cycle counts.

    ``clocks`` is ``(workers, N_PARTS)``, ``wall`` the epoch's wall time. A part
    is the workers' mean: ``gather`` the batch gather and scaling, ``products``
    the micro-kernels' tile loops, ``epilogues`` what is fused after them
    (bias + ReLU, ReLU mask, softmax + loss, bias gradients; also the
    transpositions of the products by columns and the copies of ``b`` into
    panels), ``update``
    the optimizer step and the refresh of the later layers' ``W.T``,
    ``wait`` the barriers, ``other`` the rest of the worker's loop, and
    ``launch`` the wall time outside the workers' loops (starting and joining
    the threads, taken as the slowest worker's).
    """
    seconds_per_cycle = 1 / cycle_rate()
    mean = clocks.mean(axis=0) * seconds_per_cycle
    parts = {name: float(mean[slot]) for name, slot in _COUNTED.items()}
    parts["other"] = float(mean[k.TOTAL]) - sum(parts.values())
    parts["launch"] = max(0.0, wall - float(clocks[:, k.TOTAL].max()) * seconds_per_cycle)
    return parts


_cycle_rate: list[float] = []


def cycle_rate() -> float:
    """Cycles of ``_simd.cycle_counter`` per second, measured once per process (50 ms)."""
    if not _cycle_rate:
        c0, t0 = k.cycles(), time.perf_counter()
        time.sleep(0.05)
        c1, t1 = k.cycles(), time.perf_counter()
        if c1 <= c0:
            raise RuntimeError("this CPU has no cycle counter numba can read: the fused "
                               "epoch's parts cannot be timed")
        _cycle_rate.append((c1 - c0) / (t1 - t0))
    return _cycle_rate[0]


def _first_layer_back(row, buffers, theta, state1, state2):
    """Copy the first layer's W and optimizer state, which the epoch updated transposed
    in ``buffers``, back to their vectors."""
    n_out, n_in, w_at = row[k.N_OUT], row[k.N_IN], row[k.W_AT]
    for vector, transposed in ((theta, buffers.wt), (state1, buffers.s1t),
                               (state2, buffers.s2t)):
        if vector.shape[0]:  # (in registers: 22 us for 784 x 128, NumPy's strided copy 110)
            k.transpose_rows(transposed[w_at:w_at + n_out * n_in].reshape(n_in, n_out),
                             vector[w_at:w_at + n_out * n_in].reshape(n_out, n_in), n_in, 0,
                             n_in)


def _vector(arrays, dtype):
    """The vector that ``arrays`` are views of, or a packed copy of them."""
    vector = base_vector(arrays)
    if vector is not None and vector.dtype == dtype and vector.flags.writeable:
        return vector
    return np.concatenate([np.asarray(array, dtype).ravel() for array in arrays])


def _unpack(vectors, groups):
    """Copy packed vectors back into the caller's parameter and state arrays."""
    for vector, arrays in zip(vectors, groups):
        if base_vector(arrays) is vector:
            continue  # updated in place
        at = 0
        for array in arrays:
            array[...] = vector[at:at + array.size].reshape(array.shape)
            at += array.size


def _indices(order, n):
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order must hold row indices in [0, {n})")
    return order
