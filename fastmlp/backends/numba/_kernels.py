"""Every compiled kernel of the numba backend.

They live in one module because numba's on-disk cache keys a kernel on its own
module: a cached kernel calling a kernel of another module can keep a stale
compiled copy of it after that module changes.

The matrix products are loops over the micro-kernel of ``_simd``, not BLAS.
BLAS chooses how to split a product by its thread count, which is process-wide
state, and the split changes the rounding; a kernel here gives every element
the same arithmetic (one FMA chain in k order) wherever it lies, whichever
thread runs it and however many run at once, and it runs on one core so that
the callers split rows across threads themselves. (``_drop_stale_cache``, at
the end, keeps numba's cache honest about the ``_simd`` code inlined here.)

Kernels trust their inputs (no bounds checks): the Python wrappers check
shapes, dtypes and labels first. Every kernel releases the GIL.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import math
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import typeof, types
from numba.extending import intrinsic, typeof_impl
from numba.np.numpy_support import as_dtype

from ...optim import FUSED_RULES, integer_power
from . import _blocking, _compile_helper, _elementary, _simd
from ._cache import cached_njit

# How kernels call each other decides how long a first run compiles: a kernel
# that calls another by name links the callee's code into its own, and numba
# optimises and compiles it again as part of every caller. So:
# - the large kernels that the epoch and the forward pass share (gemm_into, its
#   epilogue, the update rules, softmax_rows, the loss, transpose_rows) are called
#   at their addresses (see Compiled), and each is compiled once; the epilogue
#   apart from gemm_into (linked in, its table of the family's functions was
#   compiled again with the products: 1.5 s for the two against 0.45 + 0.95);
# - a run compiles only the callees it calls: the loss of its output, the L2
#   term's sum for scikit-learn's rules alone (Uncalled), and for a ReLU network
#   with a softmax output an epilogue of ReLU alone (0.15 s against 0.95);
# - small helpers with one call site are inlined at numba's level
#   (inline="always"); each inlined copy is copied and typed again, so a helper
#   called from several sites is not (the update and _timed_barrier inlined
#   at three sites each cost the epoch 1.2-1.5 s of its 5.7 s compile), and
#   inlined helpers do not nest where it can be helped (a nested one is copied
#   again with its caller).
# A cold `fastmlp train --epochs 1` spent 6.4 s compiling before (7.0-8.4 s in all),
# about 4 s this way (5.4-6.1 s in all; 3.8-4.1 s with _compile_helper's second
# process compiling the callees meanwhile), on the project's 2-core Xeon. The
# family's table and scikit-learn's rules brought it to 5.4-5.8 s; compiling only
# what a run calls, 3.7-3.9 s (the worker 2.2 s in this process, its callees 1.8 s
# and the forward pass 0.3 s in the helper).
# cached_njit: compiled code is kept on disk (see _cache). nogil: threads predicting at once run
# in parallel. error_model="numpy": x / 0 gives inf or nan as in NumPy, without
# a zero check that would keep loops from vectorising.
_JIT = {"nogil": True, "error_model": "numpy"}
# Kernels that allocate no array are compiled without numba's reference counting
# (_nrt=False): the arrays they take are borrowed from their caller, which holds them
# for the call, and numba emits none of the counting it otherwise puts around every use
# of an array and every copy of a tuple of arrays (in the epoch's worker about a
# thousand, 27 000 of its 3.3 MB of LLVM IR's lines against 16 000 without). On the
# project's 2-core Zen 4 EPYC, processor time to compile, cold cache: the worker
# 3.4-4.5 s -> 2.9-3.4 s, _adam_slice 0.55 -> 0.32 s. The compiled arithmetic is the
# same. A kernel that allocates (np.empty) does not compile this way: it keeps _JIT.
_BORROWING = dict(_JIT, _nrt=False)


class Compiled:
    """``kernel`` compiled for ``argument_types``, handed to other kernels as an argument
    that they call at its address (numba's C wrapper of it, a function pointer).

    A kernel calling another by name links the callee's code into its own, and
    numba optimises and generates machine code for the whole again, at every
    level of calls: the fused epoch's compile spent as much on its callees as
    on itself. Called at its address, a kernel is compiled (or loaded from
    numba's cache) once, when the first kernel taking it is called; the
    caller's own code holds a call, and is cached without it.
    """

    def __init__(self, kernel, argument_types):
        self.kernel = kernel
        self.argument_types = argument_types
        # numba's type of it: a C function pointer of the kernel's signature, whose
        # arguments numba checks against the signature when it types a caller
        self.numba_type = types.ExternalFunctionPointer(types.none(*argument_types),
                                                        get_pointer=_address)
        self._address = 0

    @property
    def address(self) -> int:
        if not self._address:
            # a helper compiling it meanwhile puts it in numba's cache
            _compile_helper.wait_for(self.kernel.py_func.__name__)
            # compiled by its argument types alone, the key that a call from Python
            # gives it in numba's cache, so that the two share one cached entry
            self.kernel.compile(self.argument_types)
            result = self.kernel.overloads[self.argument_types]
            self._address = result.library.get_pointer_to_function(
                result.fndesc.llvm_cfunc_wrapper_name)
        return self._address


class Uncalled(Compiled):
    """``kernel`` handed to a caller that will not call it on this run: its address is 0
    (a null pointer, of the same numba type as the compiled kernel's, so the caller
    compiles once for both), and nothing is compiled or loaded for it."""

    @property
    def address(self) -> int:
        return 0


def _address(compiled):
    # what numba calls to unbox a Compiled argument (the type's get_pointer)
    return compiled.address


@typeof_impl.register(Compiled)
def _typeof_compiled(value, context):
    return value.numba_type


def _compiled(kernel, *examples):
    # kernel compiled for the types of the example arguments
    return Compiled(kernel, tuple(typeof(example) for example in examples))


# Every product is a loop over tiles of the explicit-SIMD kernel of _simd. Its
# tile, the rows of a cache tile (the epilogue runs on them while they are in
# cache) and k per pass over a panel of b (a pass keeps its rows of b in the
# core's cache; passes continue each element's FMA chain, so the bits do not
# depend on either number) are _blocking's, as every number below.
TILE = _blocking.TILE
TILE_ROWS, TILE_VECTORS, VECTOR_BYTES = TILE
ROW_TILE = _blocking.BLOCKING.row_tile
K_BLOCK = _blocking.BLOCKING.k_block
tile_nn = _simd.make_tile_kernel(TILE)
COLUMN_TILE_ROWS = _blocking.BLOCKING.column_tile_rows
# Column blocks at most this many vectors wide run on one-vector tiles side by side
# (_blocking has the measurement)
NARROW = _blocking.BLOCKING.narrow_vectors
column_tile_nn = _simd.make_tile_kernel(_simd.Tile(COLUMN_TILE_ROWS, 1, VECTOR_BYTES),
                                        masked_only=True)
_fma_chains = _simd.make_peak_kernel(VECTOR_BYTES)
rows_dot = _simd.make_rows_dot_kernel(VECTOR_BYTES)
# Vectors of rows that one call of rows_dot_groups takes at once, in independent
# FMA chains.
ROWS_DOT_GROUPS = _blocking.BLOCKING.rows_dot_groups
# ... but one vector of them at a time where W's rows are a multiple of this many
# elements long (they would share the L1's sets: _blocking.rows_dot_alias_for)
ROWS_DOT_ALIAS = _blocking.BLOCKING.rows_dot_alias
rows_dot_groups = _simd.make_rows_dot_kernel(VECTOR_BYTES, ROWS_DOT_GROUPS)
transpose_block = _simd.make_transpose_kernel(VECTOR_BYTES)
copy_block = _simd.make_copy_kernel(VECTOR_BYTES)
# Tiles' columns per panel of a paneled b.
PANEL_TILES = _blocking.BLOCKING.panel_tiles
# Units from which the fused epoch's forward product runs by columns, and rows of a
# worker's batch that such a product takes at a time.
COLUMNS_FROM = _blocking.BLOCKING.columns_from
COLUMN_ROWS = _blocking.BLOCKING.column_rows
# Bytes of b that the row tiles of a product read before the next columns of b, and the
# rows from which a product copies b into panels (gemm_into).
B_BLOCK = _blocking.BLOCKING.b_block
PACK_ROWS = _blocking.BLOCKING.pack_rows
PACK_STRIDE = _blocking.BLOCKING.pack_stride
# The k from which a product copies its operands into panels (two k blocks: the
# copies pay for the k passes they serve), which the fused epoch's weight gradient
# also reads (_gradients_and_update)
PACK_DEPTH = 2 * K_BLOCK
# Bytes of W's rows that the update takes at a time where it refreshes W's panels too
REFRESH_BYTES = _blocking.BLOCKING.refresh_bytes


def forward_by_columns(n_in: int, n_out: int, dtype, rows: int = 0) -> bool:
    """Whether the fused epoch computes the forward product of a layer of ``n_in`` inputs
    and ``n_out`` units as ``z.T = W @ a.T`` (by columns: ``W``'s rows broadcast, the
    worker's rows of ``a`` transposed into columns, ``z``'s transposed back) rather than
    ``z = a @ W.T`` (``W.T`` loaded as vectors, from its copy that every update refreshes),
    for workers that take ``rows`` rows of each batch (0: few).

    Both are the same FMA chains, the same bits (``tests/test_numba.py``). By columns
    is faster where ``W.T``'s rows are long (``n_out`` from ``COLUMNS_FROM``: at 1024
    units they lie 4 KiB apart, each in a page of its own, and share one of the L1's
    sets) or shorter than the tile (the 10-unit output, 10 of 16 lanes), once the
    layer is large enough for the transpositions to cost little (``n_in`` from
    ``COLUMNS_FROM``), and while a worker's rows are fewer than ``PACK_ROWS``: from
    there ``gemm_into`` copies ``W.T``'s long rows into panels, and the refresh of
    ``W.T`` is shared by as many rows as the transpositions by columns grow with. SGD
    epochs, 2 threads, 2-core Zen 4 EPYC, by rows against by columns, 3 alternating
    pairs: 784-1024-1024-10 at batch 1000 0.96-0.99 times the time, at batch 400 (200
    rows a worker) 0.97-0.99, at batch 256 (128) 0.99-1.01; 784-2048-2048-10 at batch
    1000 0.97-1.03 (SGD), 0.98-1.00 (Adam); at batch 128 by columns stays faster
    (``_blocking``'s ``columns_from``). ``python bench/formulations.py`` has the
    products' rates.
    """
    tile_columns = TILE_VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize
    if rows >= PACK_ROWS:
        return False
    return n_out >= COLUMNS_FROM or (n_out < tile_columns and n_in >= COLUMNS_FROM)


def w_panel(l: int, n_in: int, by_columns: bool, dtype) -> int:
    """The panel width of layer ``l``'s ``W`` (``n_in`` inputs) as the fused epoch's
    backward product ``delta @ W`` reads it (``gemm_into``'s ``b_panel``).

    ``panel_width`` where that divides ``n_in`` for a layer after the first whose
    forward runs by columns (``by_columns``, so that it keeps no ``W.T`` in
    ``buffers.wt``): the epoch keeps a copy of its ``W`` in panels there, which
    every update refreshes. Otherwise ``n_in``: ``W`` read as it lies in ``theta``.
    At 1024 units ``W``'s rows lie 4 KiB apart, on the same few L1 sets: ``delta @
    W`` of a worker's 64 rows ran at 91 GFLOP/s on one core as ``W`` lies, 144 from
    the panels (MKL 127), 2048 units 77 and 137, 512 units 122 and 151.
    """
    width = panel_width(dtype)
    return width if l > 0 and by_columns and n_in % width == 0 else n_in


def panel_width(dtype) -> int:
    """Columns of ``b`` in one panel of ``gemm_into``'s panel layout: a multiple of the
    tile's columns (by default the tile's 64 float32 or 32 float64 on AVX-512), so that
    a tile reads one contiguous panel."""
    return _blocking.BLOCKING.panel_width(np.dtype(dtype).itemsize)


@cached_njit(**_JIT)
def fma_chains(steps, x):
    """``_simd.PEAK_CHAINS`` register-resident vector FMA chains of ``steps`` steps each,
    in ``x``'s dtype: the core's FMA limit (see ``fastmlp.profile.fma_peak``)."""
    return _fma_chains(steps, x)

@cached_njit(**_JIT)
def cycles():
    """The cycle counter that the fused epoch's ``clocks`` count."""
    return _simd.cycle_counter()


# gemm_into's a_transposed, as int64 values: a bool literal (True, False)
# would be typed as a literal, compiling a copy of the kernel for each.
NOT_TRANSPOSED, TRANSPOSED = np.int64(0), np.int64(1)

# The network family (fastmlp.family) as the kernels take it: one integer code per
# element-wise function, applied by one table of them (_apply_function), with the
# hidden activations' derivatives from a layer's output in another
# (_derivative_rows). A new activation is an entry in each, not a kernel.
RELU, IDENTITY, LOGISTIC, TANH, LEAKY_RELU, EXP, SOFTMAX = range(7)
ACTIVATION_CODES = {"relu": RELU, "identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH,
                    "leaky_relu": LEAKY_RELU}
# softmax is row-wise (softmax_rows); the other outputs are element-wise functions
OUTPUT_CODES = {"softmax": SOFTMAX, "logistic": LOGISTIC, "identity": IDENTITY, "exp": EXP}
LEAKY_SLOPE = 0.01  # fastmlp.family.LEAKY_SLOPE

# What gemm_into does with each sum before storing it: an epilogue kind, PLAIN (the
# sums), BIAS_ACTIVATION (f(s + bias)) or DERIVATIVE (s * f'(z), from the layer's
# output in mask), and the code of f, packed in one int as kind + EPILOGUE_KINDS *
# code (epilogue()). ReLU's code is 0, so its two modes keep their values 1 and 2.
PLAIN, BIAS_ACTIVATION, DERIVATIVE = range(3)
EPILOGUE_KINDS = 4


def epilogue(kind: int, code: int) -> int:
    """gemm_into's ``mode`` for epilogue ``kind`` of the element-wise function ``code``."""
    return kind + EPILOGUE_KINDS * code


BIAS_RELU, RELU_MASK = epilogue(BIAS_ACTIVATION, RELU), epilogue(DERIVATIVE, RELU)

# Slots of a row of the layout table of the fused epoch (one row per layer): the
# layer's sizes, the offsets of its W and b in theta and of its units among all
# units, 1 where its forward product runs by columns (forward_by_columns), and the
# panel width of W as its backward product reads it (w_panel).
N_OUT, N_IN, W_AT, B_AT, UNIT_AT, COLUMNS, W_PANEL = range(7)

# The parts of a fused epoch whose cycles each worker counts (its row of the
# ``clocks`` array): the batch gather, the products' tile loops, their fused
# epilogues (bias + ReLU, ReLU mask, softmax + loss, bias gradients), the
# optimizer update with the W.T refresh of the later layers, waiting at the
# barrier, and the worker's whole epoch.
GATHER, PRODUCTS, EPILOGUES, UPDATE, WAIT, TOTAL = range(6)
N_PARTS = 6

class Parameters(NamedTuple):
    """The flat vectors an update changes in place, all of one length and dtype."""

    theta: np.ndarray   # every layer's W and b (see the layout table)
    state1: np.ndarray  # SGD's velocity or Adam's m; empty when the rule keeps none
    state2: np.ndarray  # Adam's v; empty otherwise


class EpochData(NamedTuple):
    """What one fused epoch trains on: batch k is rows ``order[k * batch_size:(k + 1) *
    batch_size]`` of ``x``, scaled as ``scale * x + offset``, at ``learning_rates[k]``,
    each row's loss weighted by ``sample_weight`` (empty: unweighted, one compiled
    epoch for both), through the network of ``activation`` and ``output`` (codes of
    ``ACTIVATION_CODES`` and ``OUTPUT_CODES``), against the labels ``y`` or, unless it is
    empty, the target matrix ``targets`` (then ``y`` is unused)."""

    x: np.ndarray               # (n_samples, n_in), uint8 or the parameters' dtype
    y: np.ndarray               # (n_samples,) int64
    order: np.ndarray           # int64 row indices
    learning_rates: np.ndarray  # float64, one per step
    batch_size: int
    scale: float
    offset: float
    sample_weight: np.ndarray   # (n_samples,) float64, or (0,): every weight 1
    targets: np.ndarray         # (n_samples, n_out) in the parameters' dtype, or (0, 0)
    activation: int
    output: int


class UpdateRule(NamedTuple):
    """The optimizer's rule (``SGD_RULE`` or ``ADAM_RULE``), its hyper-parameters by the
    slots ``MOMENTUM, ..., DECOUPLED``, the steps it has taken, and the smallest normal
    number of the dtype (the loss's clip)."""

    rule: int
    hyper: np.ndarray
    t: int
    tiny: float


# Update rules of the fused epoch, and the slots of its hyper-parameter vector:
# a rule's hyper-parameters in the order of fastmlp.optim.FUSED_RULES, the one
# table of them.
SGD_RULE, ADAM_RULE, SKLEARN_SGD_RULE, SKLEARN_ADAM_RULE = 0, 1, 2, 3
RULE_IDS = {"sgd": SGD_RULE, "adam": ADAM_RULE, "sklearn_sgd": SKLEARN_SGD_RULE,
            "sklearn_adam": SKLEARN_ADAM_RULE}
N_HYPER = max(len(names) for names in FUSED_RULES.values())
MOMENTUM, NESTEROV, SGD_WEIGHT_DECAY = (FUSED_RULES["sgd"].index(name)
                                        for name in ("momentum", "nesterov", "weight_decay"))
BETA1, BETA2, EPS, ADAM_WEIGHT_DECAY, DECOUPLED = (
    FUSED_RULES["adam"].index(name)
    for name in ("beta1", "beta2", "eps", "weight_decay", "decoupled_weight_decay"))
SK_MOMENTUM, SK_NESTEROV, SK_SGD_ALPHA = (FUSED_RULES["sklearn_sgd"].index(name)
                                          for name in ("momentum", "nesterov", "alpha"))
SK_BETA1, SK_BETA2, SK_EPS, SK_ADAM_ALPHA = (FUSED_RULES["sklearn_adam"].index(name)
                                             for name in ("beta1", "beta2", "eps", "alpha"))


@cached_njit(**_JIT)
def gemm_into(a, b, out, i0, i1, mode, bias, mask, clocks, a_transposed, b_panel, epilogue):
    """``out[i, j] = sum_k a[i, k] * b[k, j]`` for rows ``i0:i1`` of ``a``.

    ``a`` is ``(n, K)``, or ``(K, n)`` holding it transposed if
    ``a_transposed`` is 1 (the tile broadcasts ``a``'s elements one at a time, so
    the product ``a.T @ b`` needs no transposed copy), and ``out`` ``(n, m)``,
    C-contiguous, one float dtype. ``b`` holds ``(K, m)`` in column panels
    ``b_panel`` wide: ``b[k, j]`` is element ``((j // b_panel) * K + k) *
    b_panel + j % b_panel``: ``b_panel = m`` is ``b`` ``(K, m)`` as it is, and a
    multiple of ``panel_width`` (a tile's columns) makes each tile read one
    contiguous panel, a row after the other (``transpose_rows`` writes it). Each element is one FMA
    chain in ``k`` order (see
    ``_simd``), so its bits do not depend on where it lies, how the rows are
    split between calls, the layout of ``b``, or the target's vector width.

    The row tiles read ``b`` a column block of at most ``B_BLOCK`` bytes at a time,
    and a product of many rows and long ``k`` whose plain ``b`` has rows
    ``PACK_STRIDE`` bytes apart reads a copy of each block in panels a tile wide
    (BLIS's nc loop and packing; see ``_blocking``); a transposed ``a`` of as many rows
    and as long a ``k`` has each tile's rows copied into a contiguous micro-panel first
    (BLIS's packed A).

    Each cache tile of rows then goes through ``mode`` (``epilogue(kind,
    code)``): ``PLAIN`` keeps the sums ``s``; ``BIAS_ACTIVATION`` makes them
    ``f(s + bias[j])`` for the function ``code`` (``BIAS_RELU``: ``max(s +
    bias[j], 0)``); ``DERIVATIVE`` multiplies them by ``f'`` computed from the
    layer's output ``mask[i, j]`` (``RELU_MASK``: keeps ``s`` where ``mask[i,
    j] > 0``, else ``0 * s``). ``epilogue`` is ``_epilogue_rows``, called at its
    address (``epilogues``; a mode of kind ``PLAIN`` does not call it): linked in,
    its table of functions was compiled again with every product.
    (Arguments a mode does not read may be empty arrays.) Unless ``clocks``
    is empty, the cycles of the tile loops are added to ``clocks[PRODUCTS]``,
    those of the epilogues and of the copies into panels to ``clocks[EPILOGUES]``.
    """
    timed = clocks.shape[0] > 0
    K = a.shape[0] if a_transposed != 0 else a.shape[1]
    m = out.shape[1]
    ldb = b_panel
    # a[i, k] is element i * lda + k * a_step of a
    lda, a_step = (1, a.shape[1]) if a_transposed != 0 else (a.shape[1], 1)
    lanes = VECTOR_BYTES // a.itemsize
    cols = TILE_VECTORS * lanes
    # b in column blocks of at most B_BLOCK bytes (its K rows by nc columns), each block
    # through every row tile before the next: a larger b read whole for each row tile
    # came from memory every time (BLIS's loop over nc). Blocked, the epilogues run
    # once all blocks are done. Where not even one tile's columns of b fit (k of tens of
    # thousands, the backward pass of a whole data set), b is read whole by each row
    # tile as before: blocks of it would only read a's rows again for each.
    nc = B_BLOCK // (max(K, 1) * a.itemsize) // cols * cols
    fits = nc > 0
    if not fits:
        nc = m
    blocked = nc < m
    # A product of many rows and long k whose plain b has rows a multiple of PACK_STRIDE
    # bytes apart (4 KiB; at 1024 units a k block's rows all lie on the same few L1
    # sets) copies each column block of b into panels a tile wide first (BLIS's
    # packing): every row tile then reads a k block's rows of a panel from consecutive
    # lines.
    packing = (fits and i1 - i0 >= PACK_ROWS and K >= PACK_DEPTH and ldb == m and m > cols
               and m * b.itemsize % PACK_STRIDE == 0)
    panels = np.empty((-(-min(nc, m) // cols) * K if packing else 0, cols), b.dtype)
    # A transposed a of many rows and long k (the weight gradient's delta.T at batch
    # 1000): a tile's rows lie in one row of a, and its k steps a row of a apart (4 KiB at
    # 1024 units, the same few L1 sets); each tile's rows are copied first into a
    # micro-panel, (K, TILE_ROWS) contiguous, slot (t0 - i0) // ROW_TILE * per_tile + (i -
    # t0) // TILE_ROWS (BLIS's packed A). One core, 2-core EPYC (Zen 3, AVX2), delta.T @ a
    # of 1000 x 1024 by 1000 x 1024: 61-65 -> 82-83 GFLOP/s (MKL 81-91). At k = 128
    # (batch 128) the copies cost what the product gained.
    a_packing = a_transposed != 0 and i1 - i0 >= PACK_ROWS and K >= PACK_DEPTH
    per_tile = -(-ROW_TILE // TILE_ROWS)
    slots = -(-(i1 - i0) // ROW_TILE) * per_tile if a_packing else 0
    a_panels = np.empty(slots * K * TILE_ROWS, a.dtype)
    if a_packing:
        start = _simd.cycle_counter() if timed else 0
        for t0 in range(i0, i1, ROW_TILE):
            t1 = min(t0 + ROW_TILE, i1)
            for i in range(t0, t1, TILE_ROWS):
                slot = (t0 - i0) // ROW_TILE * per_tile + (i - t0) // TILE_ROWS
                copy_block(a, i, lda * a_step, a_panels, slot * K * TILE_ROWS, TILE_ROWS, K,
                           min(TILE_ROWS, t1 - i))
        if timed:
            clocks[EPILOGUES] += _simd.cycle_counter() - start
    for j0 in range(0, m, nc):
        j1 = min(j0 + nc, m)
        if packing:
            start = _simd.cycle_counter() if timed else 0
            for j in range(j0, j1, cols):
                width = min(cols, m - j)
                first = (j - j0) // cols * K
                # (b is (K, m) as it lies)
                copy_block(b, j, m, panels, first * cols, cols, K, width)
            if timed:
                clocks[EPILOGUES] += _simd.cycle_counter() - start
        for t0 in range(i0, i1, ROW_TILE):
            t1 = min(t0 + ROW_TILE, i1)
            start = _simd.cycle_counter() if timed else 0
            for k0 in range(0, max(K, 1), K_BLOCK):  # K = 0: one pass that stores zeros
                depth = min(K_BLOCK, K - k0)
                for j in range(j0, j1, cols):
                    width = min(cols, m - j)
                    if packing:  # panels[(j - j0) // cols * K + k0]
                        source, b_at, ld = panels, ((j - j0) // cols * K + k0) * cols, cols
                    else:  # b[k0, j]
                        source, b_at, ld = b, ((j // ldb) * K + k0) * ldb + j % ldb, ldb
                    if width <= NARROW * lanes:
                        # narrower than the tile's vectors less one (the output layer's
                        # 10 units, a last column block, a product by columns of a few
                        # rows): one-vector tiles side by side, not a full tile's
                        # vectors masked off (b's columns of a block lie side by side)
                        for jj in range(j, j + width, lanes):
                            for i in range(t0, t1, COLUMN_TILE_ROWS):
                                column_tile_nn(a, i * lda + k0 * a_step, lda, a_step, source,
                                               b_at + jj - j, ld, out, i * m + jj, m, depth,
                                               min(COLUMN_TILE_ROWS, t1 - i),
                                               min(lanes, j + width - jj), k0 > 0)
                        continue
                    for i in range(t0, t1, TILE_ROWS):
                        if a_packing:  # a_panels[slot][k0]
                            slot = (t0 - i0) // ROW_TILE * per_tile + (i - t0) // TILE_ROWS
                            tile_nn(a_panels, (slot * K + k0) * TILE_ROWS, 1, TILE_ROWS,
                                    source, b_at, ld, out, i * m + j, m, depth,
                                    min(TILE_ROWS, t1 - i), width, k0 > 0)
                        else:
                            tile_nn(a, i * lda + k0 * a_step, lda, a_step, source, b_at, ld,
                                    out, i * m + j, m, depth, min(TILE_ROWS, t1 - i), width,
                                    k0 > 0)
            middle = _simd.cycle_counter() if timed else 0
            if mode % EPILOGUE_KINDS != PLAIN and not blocked:
                epilogue(out, t0, t1, mode, bias, mask)
            if timed:
                end = _simd.cycle_counter()
                clocks[PRODUCTS] += middle - start
                clocks[EPILOGUES] += end - middle
    if mode % EPILOGUE_KINDS != PLAIN and blocked:
        start = _simd.cycle_counter() if timed else 0
        for t0 in range(i0, i1, ROW_TILE):
            epilogue(out, t0, min(t0 + ROW_TILE, i1), mode, bias, mask)
        if timed:
            clocks[EPILOGUES] += _simd.cycle_counter() - start


@cached_njit(**_BORROWING)
def _epilogue_rows(out, i0, i1, mode, bias, mask):
    """``gemm_into``'s ``mode`` on rows ``i0:i1`` of ``out`` (see ``gemm_into``): every
    function of the family's table."""
    if mode == BIAS_RELU:
        _bias_relu_rows(out, i0, i1, bias)
    elif mode == RELU_MASK:
        relu_backward_rows(out, mask, i0, i1)
    elif mode % EPILOGUE_KINDS == BIAS_ACTIVATION:
        for i in range(i0, i1):
            row = out[i]
            for j in range(row.shape[0]):
                row[j] += bias[j]
        m = out.shape[1]
        _apply_function(_simd.block_view(out, i0 * m, ((i1 - i0) * m,)),
                        mode // EPILOGUE_KINDS)
    elif mode % EPILOGUE_KINDS == DERIVATIVE:
        _derivative_rows(out, mask, i0, i1, mode // EPILOGUE_KINDS)


@cached_njit(**_BORROWING)
def _relu_epilogue_rows(out, i0, i1, mode, bias, mask):
    """``_epilogue_rows`` of the modes of a ReLU network with a softmax output alone,
    ``BIAS_RELU`` and ``RELU_MASK`` (its output's softmax is a kernel of its own), for
    the products of such a network only (``epilogues``): without the rest of the table
    it compiles in 0.15 s, the whole table in 0.95 s."""
    if mode == BIAS_RELU:
        _bias_relu_rows(out, i0, i1, bias)
    elif mode == RELU_MASK:
        relu_backward_rows(out, mask, i0, i1)


@cached_njit(**_JIT, inline="always")
def _bias_relu_rows(out, i0, i1, bias):
    # out[i] = max(out[i] + bias, 0) for rows i0:i1
    zero = out.dtype.type(0)
    for i in range(i0, i1):
        row = out[i]
        for j in range(row.shape[0]):
            v = row[j] + bias[j]
            row[j] = zero if v < 0 else v  # NaN stays NaN, as with np.maximum


@cached_njit(**_JIT, inline="always")
def _apply_function(v, code):
    """``v = f(v)`` for the element-wise function ``code`` (``RELU`` .. ``EXP``), in place:
    the table of the family's functions, each our own IEEE arithmetic (``_elementary``),
    so the bits are the same on every machine."""
    if code == RELU:
        zero = v.dtype.type(0)
        for j in range(v.shape[0]):
            x = v[j]
            v[j] = zero if x < 0 else x
    elif code == LOGISTIC:
        _elementary.inplace_logistic(v)
    elif code == TANH:
        _elementary.inplace_tanh(v)
    elif code == LEAKY_RELU:
        one, slope = v.dtype.type(1), v.dtype.type(LEAKY_SLOPE)
        for j in range(v.shape[0]):
            x = v[j]
            v[j] = x * (one if x > 0 else slope)
    elif code == EXP:
        _elementary.inplace_exp(v)
    # IDENTITY: nothing


@cached_njit(**_JIT, inline="always")
def _derivative_rows(delta, a, i0, i1, code):
    """``delta[i] *= f'(z[i])`` for rows ``i0:i1``, computed from the layer's output ``a =
    f(z)`` (``fastmlp.family.DERIVATIVES``): the table of the activations' derivatives."""
    one = delta.dtype.type(1)
    if code == RELU:
        relu_backward_rows(delta, a, i0, i1)
    elif code == LOGISTIC:  # a (1 - a)
        for i in range(i0, i1):
            for j in range(delta.shape[1]):
                delta[i, j] = (delta[i, j] * a[i, j]) * (one - a[i, j])
    elif code == TANH:  # 1 - a**2
        for i in range(i0, i1):
            for j in range(delta.shape[1]):
                delta[i, j] = delta[i, j] * (one - a[i, j] * a[i, j])
    elif code == LEAKY_RELU:  # 1 or the slope, by the sign of a (which is z's)
        slope = delta.dtype.type(LEAKY_SLOPE)
        for i in range(i0, i1):
            for j in range(delta.shape[1]):
                delta[i, j] = delta[i, j] * (one if a[i, j] > 0 else slope)
    # IDENTITY: the derivative is 1


@cached_njit(**_JIT)
def gemm(a, b, out, i0, i1):
    """``out[i] = a[i] @ b`` for rows ``i0:i1``: ``gemm_into`` in mode ``PLAIN``."""
    none = np.empty((0, 0), a.dtype)
    # np.int64: a bare PLAIN would be typed as a literal, compiling a copy of its own
    gemm_into(a, b, out, i0, i1, np.int64(PLAIN), np.empty(0, a.dtype), none,
              np.empty(0, np.int64), NOT_TRANSPOSED, b.shape[1], _no_epilogue(a.dtype))


@cached_njit(**_JIT)
def gemm_t(a, b, out, i0, i1):
    """``out[i] = a.T[i] @ b`` for rows ``i0:i1`` of ``a.T``, ``a`` read in place."""
    none = np.empty((0, 0), a.dtype)
    gemm_into(a, b, out, i0, i1, np.int64(PLAIN), np.empty(0, a.dtype), none,
              np.empty(0, np.int64), TRANSPOSED, b.shape[1], _no_epilogue(a.dtype))


@cached_njit(**_BORROWING)
def softmax_rows(z, out, i0, i1):
    """``out[i] = softmax(z[i])`` for rows ``i0:i1`` of C-contiguous ``(n, k)`` arrays
    (``out`` may be ``z``).

    ``exp(z - max z)`` never overflows and gives the same ratios. It is our own
    ``exp`` (``_elementary``), not the C library's, so the bits are the same
    everywhere, and it runs once over the rows' values together: rows of 10
    classes would leave most lanes of a vector idle (60 000 rows: 1.3 ms, row by
    row 6 ms). Each row's sum is taken in its own order, so a row's bits do not
    depend on the rows around it.
    """
    k = z.shape[1]
    for i in range(i0, i1):
        row = z[i]
        top = row[0]
        for j in range(1, k):
            if row[j] > top:
                top = row[j]
        shifted = out[i]
        for j in range(k):
            shifted[j] = row[j] - top
    _elementary.inplace_exp(_simd.block_view(out, i0 * k, ((i1 - i0) * k,)))
    for i in range(i0, i1):
        row = out[i]
        total = z.dtype.type(0)
        for j in range(k):
            total += row[j]
        for j in range(k):
            row[j] /= total


@cached_njit(**_JIT)
def softmax(z, out):
    # np.int64: a bare 0 would be typed as a literal, the softmax compiled again for it
    softmax_rows(z, out, np.int64(0), z.shape[0])


# Rows of the forward pass that go through every layer before the next ones start.
FORWARD_TILE = _blocking.BLOCKING.forward_tile


@cached_njit(**_BORROWING)
def forward_rows(a, W_ps, bs, outs, clocks, callees, activation, output, i0, i1):
    """Rows ``i0:i1`` of the forward pass: ``outs[l] = f(a_l @ W_l.T + bs[l])``.

    ``a_0 = a`` and ``a_l = outs[l - 1]``; ``f`` is the function of code ``activation``
    (``ACTIVATION_CODES``), and the last layer's is ``output``'s (``OUTPUT_CODES``:
    ``softmax`` of the rows, or an element-wise function). ``W_ps[l]`` holds ``W_l.T`` in
    ``gemm_into``'s layout of ``b`` with panels as wide as its second dimension: ``W_l.T``
    itself, ``(n_in, n_out)``, or the panels ``panel_width`` wide that ``transpose_rows``
    writes (tuples of one array type). ``FORWARD_TILE`` rows at a time through all layers:
    each row's bits are the same whatever the tiles. ``clocks`` is ``gemm_into``'s (empty:
    untimed), and ``callees`` (``forward_callees``) the addresses of the products, the
    softmax and the products' epilogue.
    """
    last = len(W_ps) - 1
    none = a[:0]
    gemm_into = _kernel_at(callees, FORWARD_GEMM, a.dtype)
    softmax_rows = _kernel_at(callees, FORWARD_SOFTMAX, a.dtype)
    epilogue = _kernel_at(callees, FORWARD_EPILOGUE, a.dtype)
    # (epilogue(), spelled out: compiled code calls no Python function)
    hidden = BIAS_ACTIVATION + EPILOGUE_KINDS * activation
    top = PLAIN if output == SOFTMAX else BIAS_ACTIVATION + EPILOGUE_KINDS * output
    for t0 in range(i0, i1, FORWARD_TILE):
        t1 = min(t0 + FORWARD_TILE, i1)
        for l in range(len(W_ps)):
            below = a if l == 0 else outs[l - 1]
            gemm_into(below, W_ps[l], outs[l], t0, t1, top if l == last else hidden, bs[l],
                      none, clocks, NOT_TRANSPOSED, W_ps[l].shape[1], epilogue)
            if l == last and output == SOFTMAX:  # softmax(z + b)
                z, b = outs[l], bs[l]
                for i in range(t0, t1):
                    for j in range(z.shape[1]):
                        z[i, j] += b[j]
                softmax_rows(z, z, t0, t1)


@cached_njit(**_JIT)
def predict_one(Ws, bs, x, scale, offset, activation, output, callees):
    """The outputs of one raw sample ``x``, scaled first as ``scale * x + offset``, through
    the network of ``activation`` and ``output`` (codes, as ``forward_rows`` takes them),
    whose softmax and epilogue it calls at their addresses in ``callees``
    (``forward_callees(..., product=False)``): linked in, the epilogues' whole table was
    compiled again for it (4.4 s to compile predict_one after a forward pass on a 2-core
    EPYC, 0.85 s at their addresses).

    The scaling rounds as NumPy's does in the parameters' dtype (a product,
    then a sum, no fused multiply-add). Each layer is the product turned
    around, ``z.T = W @ a.T``, ``ROWS_DOT_GROUPS`` vectors of ``W``'s rows at a
    time (one where ``K`` is a multiple of ``ROWS_DOT_ALIAS``), then one
    (``_simd.make_rows_dot_kernel``: ``W`` loaded a block of
    ``k`` at a time and transposed in registers): the same FMA chain per
    element as ``forward``'s ``a @ W.T`` (``fma(W[j, k], a[k], s) == fma(a[k],
    W[j, k], s)``), with no transposed copy of ``W``; then ``forward_rows``'s
    epilogue. So the result equals ``forward`` of the scaled row exactly.
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
    none = np.empty((0, 0), a.dtype)
    softmax_rows = _kernel_at(callees, FORWARD_SOFTMAX, a.dtype)
    epilogue = _kernel_at(callees, FORWARD_EPILOGUE, a.dtype)
    for l in range(len(Ws)):
        W = Ws[l]
        n_out, K = W.shape
        z = np.empty((1, n_out), a.dtype)
        lanes = VECTOR_BYTES // a.itemsize
        grouped = 0 if K % ROWS_DOT_ALIAS == 0 else n_out - n_out % (ROWS_DOT_GROUPS * lanes)
        for j in range(0, grouped, ROWS_DOT_GROUPS * lanes):
            rows_dot_groups(W, j * K, K, a, z, j, ROWS_DOT_GROUPS * lanes, K)
        for j in range(grouped, n_out, lanes):
            rows_dot(W, j * K, K, a, z, j, min(lanes, n_out - j), K)
        if l == last and output == SOFTMAX:
            b = bs[l]
            for j in range(n_out):
                z[0, j] += b[j]
            softmax_rows(z, z, 0, 1)
        else:
            code = output if l == last else activation
            epilogue(z, 0, 1, BIAS_ACTIVATION + EPILOGUE_KINDS * code, bs[l], none)
        a = z
    return a[0]


@cached_njit(**_JIT)
def output_delta(p, y, w, delta):
    # softmax + cross-entropy: delta = (p - onehot(y)) / n, or with sample weights w
    # (unless w is empty) delta = (p - onehot(y)) * w / weight_total(w)
    n, k = p.shape
    total = _weight_total(w, np.arange(w.shape[0]))
    for i in range(n):
        for j in range(k):
            delta[i, j] = p[i, j]
        delta[i, y[i]] -= 1
        _scale_delta(delta[i], w, i, n, total)


@cached_njit(**_JIT)
def target_delta(p, targets, w, delta):
    # every output with its loss: delta = (p - Y) / n, or with sample weights w (unless w
    # is empty) delta = (p - Y) * w / weight_total(w)
    n, k = p.shape
    total = _weight_total(w, np.arange(w.shape[0]))
    for i in range(n):
        for j in range(k):
            delta[i, j] = p[i, j] - targets[i, j]
        _scale_delta(delta[i], w, i, n, total)


@cached_njit(**_JIT)
def derivative(delta, a, code):
    """``delta *= f'(z)`` from the layer's output ``a``, for the activation ``code``."""
    _derivative_rows(delta, a, 0, delta.shape[0], code)


@cached_njit(**_JIT, inline="always")
def _weight_total(w, rows):
    # fastmlp.backends.weight_total of w[rows], summed in the rows' order; 0 if w is empty
    total = 0.0
    if w.shape[0] > 0:
        for i in range(rows.shape[0]):
            total += w[rows[i]]
        if total == 0:
            total = 1.0  # every weight 0: every delta is 0, a zero gradient
    return total


@cached_njit(**_JIT, inline="always")
def _scale_delta(delta, w, i, n, total):
    # the output delta of row i of a batch of n rows: / n, or * w[i] / total when
    # weighted (in float64 as / n is, so weights of 1 give the same bits)
    if w.shape[0] > 0:
        weight = w[i]
        for j in range(delta.shape[0]):
            delta[j] = delta[j] * weight / total
    else:
        for j in range(delta.shape[0]):
            delta[j] /= n


@cached_njit(**_JIT)
def column_sums(a, out):
    # out[j] = sum over i of a[i, j], in row order
    out[:] = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]


@cached_njit(**_JIT, inline="always")
def relu_backward_rows(delta, a, i0, i1):
    # delta *= (a > 0), the ReLU derivative from the layer's output
    for i in range(i0, i1):
        for j in range(delta.shape[1]):
            if not a[i, j] > 0:
                delta[i, j] = delta[i, j] * 0  # keeps NaN * 0 = NaN, as the multiply does


@cached_njit(**_BORROWING)
def transpose_rows(src, dst, panel, i0, i1):
    """``src.T`` into ``dst`` for rows ``i0:i1`` of ``src``, in column panels ``panel`` wide.

    ``dst`` holds ``src.T`` (``(m, n)`` for ``src`` ``(n, m)``) in ``gemm_into``'s
    layout of ``b``: ``src[i, k]`` goes to element ``((i // panel) * m + k) *
    panel + i % panel``; ``panel = n`` is the plain ``dst[:, i] = src[i]``, and
    ``panel`` a multiple of the vector's lanes is ``panel_width``'s panels. A block
    of one vector's lanes square at a time, transposed in registers (a 784 x 128
    layer: 0.5 ns a value in blocks of scalar loads and stores, 0.1 ns this way).
    """
    m = src.shape[1]
    lanes = VECTOR_BYTES // src.itemsize
    r0 = i0
    while r0 < i1:
        # a block of rows never crosses a panel's edge (i0 need not be on one)
        rows = min(lanes, i1 - r0, panel - r0 % panel)
        at = (r0 // panel) * m * panel + r0 % panel  # dst of src[r0, 0]
        for c0 in range(0, m, lanes):
            transpose_block(src, r0 * m + c0, m, dst, at + c0 * panel, panel, rows,
                            min(lanes, m - c0))
        r0 += rows


# _block(flat, offset, (rows, cols)): the rows x cols C-contiguous view of flat[offset:]
_block = _simd.block_view


@cached_njit(**_JIT, inline="always")
def _smallest_normal(p):
    # np.finfo(p.dtype).tiny
    return p.dtype.type(1.1754943508222875e-38 if p.itemsize == 4 else 2.2250738585072014e-308)


class SgdStep(NamedTuple):
    """The scalars of one SGD update (``lr`` in float64, the rest in the parameters' dtype)."""

    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool


class AdamStep(NamedTuple):
    """The scalars of one Adam update, its bias corrections folded in: ``step_size = lr /
    (1 - beta1**t)`` and ``shrink`` (AdamW's ``1 - lr wd``) in float64, the rest in the
    parameters' dtype."""

    step_size: float
    inv_bias2: float        # 1 / sqrt(1 - beta2**t)
    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    eps: float
    coupled_decay: float    # Adam's weight decay, added to the gradient; 0 for AdamW
    shrink: float           # AdamW's factor on the parameters; 1 for Adam


@cached_njit(**_JIT, inline="always")
def _sgd_update(slice_, g, step):
    # torch.optim.SGD: g += wd p; v = mu v + g; p -= lr (g + mu v) (Nesterov) or lr v;
    # v below the smallest normal float becomes 0, as in fastmlp.optim
    p, v, _ = slice_
    lr, momentum, weight_decay, nesterov = step
    cast = p.dtype.type
    tiny = _smallest_normal(p)
    for i in range(p.shape[0]):
        gi = g[i]
        step_size = lr
        if weight_decay != 0:
            gi = p[i] * weight_decay + gi
        if momentum != 0:
            vi = v[i] * momentum + gi
            vi = vi * cast(abs(vi) >= tiny)
            v[i] = vi
            if nesterov:
                p[i] = p[i] - cast(gi * lr)
                step_size = lr * momentum
            gi = vi
        p[i] = p[i] - cast(gi * step_size)


@cached_njit(**_JIT, inline="always")
def _adam_update(slice_, g, step):
    # torch.optim.Adam / AdamW:
    #   AdamW: p *= 1 - lr wd (shrink);  Adam: g += wd p (coupled_decay)
    #   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    #   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    # m and v below the smallest normal float become 0, as in fastmlp.optim
    p, m, v = slice_
    (step_size, inv_bias2, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
     coupled_decay, shrink) = step
    cast = p.dtype.type
    tiny = _smallest_normal(p)
    for i in range(p.shape[0]):
        if shrink != 1:
            p[i] = cast(p[i] * shrink)
        gi = g[i]
        if coupled_decay != 0:
            gi = p[i] * coupled_decay + gi
        mi = m[i] * beta1 + gi * one_minus_beta1
        vi = v[i] * beta2 + gi * gi * one_minus_beta2
        mi = mi * cast(abs(mi) >= tiny)
        vi = vi * cast(vi >= tiny)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - cast(mi / (np.sqrt(vi) * inv_bias2 + eps) * step_size)


# Adam's bias corrections: fastmlp.optim's own function, compiled, so that the
# fused update and optim.Adam take the same steps (the stale-cache stamp below
# covers its source, which numba's cache does not watch here).
_integer_power = cached_njit(**_JIT, inline="always")(integer_power)


@cached_njit(**_JIT, inline="always")
def _with_l2(p, gi, decay):
    # scikit-learn's L2 term on a weight: g + alpha / n * p (decay = alpha / n in the
    # parameters' dtype, 0 for a bias), rounded as fastmlp.optim's step rounds it
    return p * decay + gi if decay != 0 else gi


@cached_njit(**_JIT, inline="always")
def _sklearn_sgd_update(slice_, g, lr, momentum, nesterov, decay):
    # scikit-learn's SGDOptimizer (fastmlp.optim.SklearnSGD), in the parameters' dtype:
    #   g += alpha / n W;  v = mu v - lr g;  p += mu v - lr g (Nesterov) or v;
    # v below the smallest normal float becomes 0
    p, v, _ = slice_
    cast = p.dtype.type
    tiny = _smallest_normal(p)
    for i in range(p.shape[0]):
        s = _with_l2(p[i], g[i], decay) * lr
        vi = v[i] * momentum - s
        vi = vi * cast(abs(vi) >= tiny)
        v[i] = vi
        if nesterov:
            p[i] = p[i] + (vi * momentum - s)
        else:
            p[i] = p[i] + vi


@cached_njit(**_JIT, inline="always")
def _sklearn_adam_update(slice_, g, step, decay):
    # scikit-learn's AdamOptimizer (fastmlp.optim.SklearnAdam), in the parameters' dtype:
    #   g += alpha / n W;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    #   p += -lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    # m and v below the smallest normal float become 0
    p, m, v = slice_
    neg_step, beta1, one_minus_beta1, beta2, one_minus_beta2, eps = step
    cast = p.dtype.type
    tiny = _smallest_normal(p)
    for i in range(p.shape[0]):
        gi = _with_l2(p[i], g[i], decay)
        mi = m[i] * beta1 + gi * one_minus_beta1
        vi = v[i] * beta2 + gi * gi * one_minus_beta2
        mi = mi * cast(abs(mi) >= tiny)
        vi = vi * cast(abs(vi) >= tiny)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] + mi * neg_step / (np.sqrt(vi) + eps)


# The update of theta[lo:hi] from grad[lo:hi] by each rule, one kernel per rule:
# a run compiles the rule it uses (its optimizer's), and the epoch takes it as its
# EpochCallees.update_slice. As in fastmlp.optim, the arithmetic is in the
# parameters' dtype, with the products by the (float64) learning rate rounded
# back to it; params.state1, state2 are the rule's state (SGD's velocity; Adam's
# m and v). l2_total is what scikit-learn's rules divide alpha by on a weight
# matrix's slice (the batch's rows, or its weight sum), 0 on a bias's; the others
# ignore it. (scikit-learn's rules round the learning rate to the dtype first, as
# NumPy does in fastmlp.optim's step.)


@cached_njit(**_BORROWING)
def _sgd_slice(params, grad, lo, hi, hyper, lr, t, l2_total):
    theta, state1, state2 = params
    cast = theta.dtype.type
    _sgd_update(Parameters(theta[lo:hi], state1[lo:hi], state2[lo:hi]), grad[lo:hi],
                SgdStep(lr, cast(hyper[MOMENTUM]), cast(hyper[SGD_WEIGHT_DECAY]),
                        hyper[NESTEROV] != 0))


@cached_njit(**_BORROWING)
def _adam_slice(params, grad, lo, hi, hyper, lr, t, l2_total):
    theta, state1, state2 = params
    cast = theta.dtype.type
    beta1, beta2, decoupled = hyper[BETA1], hyper[BETA2], hyper[DECOUPLED] != 0
    _adam_update(Parameters(theta[lo:hi], state1[lo:hi], state2[lo:hi]), grad[lo:hi], AdamStep(
        step_size=lr / (1 - _integer_power(beta1, t)),
        inv_bias2=cast(1 / math.sqrt(1 - _integer_power(beta2, t))),
        beta1=cast(beta1), one_minus_beta1=cast(1 - beta1),
        beta2=cast(beta2), one_minus_beta2=cast(1 - beta2), eps=cast(hyper[EPS]),
        coupled_decay=cast(0) if decoupled else cast(hyper[ADAM_WEIGHT_DECAY]),
        shrink=1 - lr * hyper[ADAM_WEIGHT_DECAY] if decoupled else 1.0))


@cached_njit(**_BORROWING)
def _sklearn_sgd_slice(params, grad, lo, hi, hyper, lr, t, l2_total):
    theta, state1, state2 = params
    cast = theta.dtype.type
    decay = cast(hyper[SK_SGD_ALPHA] / l2_total) if l2_total > 0 else cast(0)
    _sklearn_sgd_update(Parameters(theta[lo:hi], state1[lo:hi], state2[lo:hi]), grad[lo:hi],
                        cast(lr), cast(hyper[SK_MOMENTUM]), hyper[SK_NESTEROV] != 0, decay)


@cached_njit(**_BORROWING)
def _sklearn_adam_slice(params, grad, lo, hi, hyper, lr, t, l2_total):
    theta, state1, state2 = params
    cast = theta.dtype.type
    beta1, beta2 = hyper[SK_BETA1], hyper[SK_BETA2]
    decay = cast(hyper[SK_ADAM_ALPHA] / l2_total) if l2_total > 0 else cast(0)
    step_size = lr * math.sqrt(1 - _integer_power(beta2, t)) / (1 - _integer_power(beta1, t))
    _sklearn_adam_update(Parameters(theta[lo:hi], state1[lo:hi], state2[lo:hi]), grad[lo:hi],
                         (cast(-step_size), cast(beta1), cast(1 - beta1), cast(beta2),
                          cast(1 - beta2), cast(hyper[SK_EPS])), decay)


UPDATE_SLICES = {SGD_RULE: _sgd_slice, ADAM_RULE: _adam_slice,
                 SKLEARN_SGD_RULE: _sklearn_sgd_slice, SKLEARN_ADAM_RULE: _sklearn_adam_slice}
# the rules whose step counter t moves (Adam's bias corrections)
COUNTING_RULES = (ADAM_RULE, SKLEARN_ADAM_RULE)


# the rules whose loss has an L2 term (_l2_alpha), whose epoch calls
# _squared_weights_chunks
L2_RULES = (SKLEARN_SGD_RULE, SKLEARN_ADAM_RULE)


@cached_njit(**_JIT, inline="always")
def _l2_alpha(rule, hyper):
    # alpha of scikit-learn's rules, whose loss has the L2 term alpha / 2 sum(W^2); else 0
    if rule == SKLEARN_SGD_RULE:
        return hyper[SK_SGD_ALPHA]
    if rule == SKLEARN_ADAM_RULE:
        return hyper[SK_ADAM_ALPHA]
    return 0.0


# Elements of a layer's weights whose squares one partial sum of the L2 term adds (the
# last of a layer's chunks shorter): a fixed number, so the sum's order, and its bits, do
# not depend on how many workers share the chunks.
PENALTY_CHUNK = 4096


def penalty_chunks(layout) -> int:
    """How many partial sums ``_squared_weights_chunks`` writes for ``layout``."""
    return int(sum(-(-int(n_out * n_in) // PENALTY_CHUNK) for n_out, n_in, *_ in layout))


# Chunks whose squares lane_squares sums side by side (their additions overlap).
SQUARE_GROUP = 4
_lane_squares = _simd.make_squares_kernel(1)
_group_squares = _simd.make_squares_kernel(SQUARE_GROUP)


@cached_njit(**_JIT, inline="always")
def _lanes_total(lanes, at):
    # the sum of the 8 lanes' sums lanes[at:at + 8], added pairwise
    s = lanes[at:at + _simd.SQUARE_LANES]
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


@cached_njit(**_JIT, inline="always")
def _chunk_squares(chunk, lanes):
    # sum(chunk^2), each square in float64: element i into sum i % 8 (lane_squares, the
    # eight sums in lanes[:8]), those past its last multiple of 8 into sum 0, the eight
    # sums added at the end (_lanes_total)
    whole = chunk.shape[0] - chunk.shape[0] % _simd.SQUARE_LANES
    _lane_squares(chunk, 0, 0, whole // _simd.SQUARE_LANES, lanes)
    for i in range(whole, chunk.shape[0]):
        value = np.float64(chunk[i])
        lanes[0] += value * value
    return _lanes_total(lanes, 0)


@cached_njit(**_JIT, inline="always")
def _transposed_chunk(W, n_out, n_in, begin, end, out):
    # W.T's elements begin:end (W (n_out, n_in) flat): the W.T rows they lie in (W's
    # columns r0:r1), whole, transposed a vector's lanes square at a time in registers
    # (transpose_block) into out, (r1 - r0) rows of n_out, and the chunk's part of them
    r0, r1 = begin // n_out, (end - 1) // n_out + 1
    lanes = VECTOR_BYTES // W.itemsize
    for q in range(r0, r1, lanes):
        for c0 in range(0, n_out, lanes):
            transpose_block(W, c0 * n_in + q, n_in, out, (q - r0) * n_out + c0, n_out,
                            min(lanes, n_out - c0), min(lanes, r1 - q))
    at = begin - r0 * n_out
    return out[at:at + end - begin]


@cached_njit(**_JIT)
def _squared_weights_chunks(theta, wt, layout, sums, c, tasks):
    # Task c of tasks writes sums[g] = sum(W^2) over chunk g (PENALTY_CHUNK elements
    # of one layer's weights, in float64) for its share of the chunks: the first
    # layer's in W.T's order, from its working copy W.T in wt (which the epoch
    # updates) or, where its forward runs by columns and it keeps no W.T, gathered
    # from theta; the rest from theta. _squared_weights adds the chunks' sums.
    # (Worker 0 alone summing all of them in one pass cost 13 % of a 5-epoch
    # MLPClassifier fit on MNIST, the other worker waiting.)
    total = sums.shape[0]
    size = -(-total // tasks)
    g0 = min(c * size, total)
    g1 = min(g0 + size, total)
    g = 0  # the layer's first chunk
    # (the whole W.T rows that a chunk of the first layer's lies in)
    gathered = np.empty(PENALTY_CHUNK + 2 * layout[0, N_OUT] if layout[0, COLUMNS] != 0 else 0,
                        theta.dtype)
    lanes = np.empty(_simd.SQUARE_LANES * SQUARE_GROUP)
    for l in range(layout.shape[0]):
        n_out, n_in, w_at = layout[l, N_OUT], layout[l, N_IN], layout[l, W_AT]
        from_wt = l == 0 and layout[0, COLUMNS] == 0
        block = wt[w_at:w_at + n_out * n_in] if from_wt else theta[w_at:w_at + n_out * n_in]
        # the first layer's W in theta is summed in W.T's order, gathered chunk by chunk
        gathering = l == 0 and not from_wt
        n_chunks = -(-block.shape[0] // PENALTY_CHUNK)
        q, q1 = max(g0 - g, 0), min(g1 - g, n_chunks)  # the task's chunks of the layer
        while q < q1:
            begin = q * PENALTY_CHUNK
            if (q + SQUARE_GROUP <= q1 and (q + SQUARE_GROUP) * PENALTY_CHUNK <= block.shape[0]
                    and not gathering):  # whole chunks that lie as they are summed
                _group_squares(block, begin, PENALTY_CHUNK,
                               PENALTY_CHUNK // _simd.SQUARE_LANES, lanes)
                for i in range(SQUARE_GROUP):
                    sums[g + q + i] = _lanes_total(lanes, i * _simd.SQUARE_LANES)
                q += SQUARE_GROUP
                continue
            end = min(begin + PENALTY_CHUNK, block.shape[0])
            if gathering:
                chunk = _transposed_chunk(block, n_out, n_in, begin, end, gathered)
            else:
                chunk = block[begin:end]
            sums[g + q] = _chunk_squares(chunk, lanes)
            q += 1
        g += n_chunks


@cached_njit(**_JIT, inline="always")
def _squared_weights(sums):
    # sum(W^2): the chunks' sums (_squared_weights_chunks) added in order
    total = 0.0
    for g in range(sums.shape[0]):
        total += sums[g]
    return total


@cached_njit(**_BORROWING)
def _softmax_cross_entropy_rows(z, b, y, n_batch, weights, total, tiny, delta, losses, hits,
                                i0, i1, softmax_rows):
    """Softmax of ``z + b`` for rows ``i0:i1``, each row's loss and hit, and its delta.

    Writes ``losses[i] = -log max(p[y], tiny)``, ``hits[i] = argmax p == y`` and
    ``delta[i] = (p - onehot(y)) / n_batch``, or ``(p - onehot(y)) * weights[i] /
    total`` unless ``weights`` is empty. ``softmax_rows`` is that kernel, called at
    its address. (The epoch calls this at its address too: inlined, it took 0.1-0.2 s
    longer to compile.)
    """
    k = z.shape[1]
    for i in range(i0, i1):
        p = delta[i]
        for j in range(k):
            p[j] = z[i, j] + b[j]
    softmax_rows(delta, delta, i0, i1)
    for i in range(i0, i1):
        p = delta[i]
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
        losses[i] = -_elementary.log(p_label)  # in float64, with our own log
        p[label] -= 1
        _scale_delta(p, weights, i, n_batch, total)


@cached_njit(**_BORROWING)
def _output_loss_rows(z, b, targets, output, n_batch, weights, total, tiny, delta, losses, hits,
                      i0, i1, softmax_rows, epilogue):
    """The output function ``output`` (``OUTPUT_CODES``) of ``z + b`` for rows ``i0:i1``,
    each row's loss and hit against its targets ``targets[i]``, and its delta.

    Writes ``losses[i]``, the
    output's loss of the row in float64 (``fastmlp.family.LOSSES``: cross-entropy,
    binary cross-entropy, squared error / 2, Poisson ``p - y log p``, logarithms
    clipped at ``tiny``), ``hits[i]`` (softmax: argmax p is argmax y;
    logistic: every output on y's side of 1/2; 0 for a regression) and
    ``delta[i] = (p - y) / n_batch``, or ``(p - y) * weights[i] / total``
    unless ``weights`` is empty: each output with its loss has that gradient.
    ``softmax_rows`` and ``epilogue`` (``_epilogue_rows``) are those kernels, called at
    their addresses. (The epoch runs ``_softmax_cross_entropy_rows`` for softmax with
    labels.)
    """
    k = z.shape[1]
    if output == SOFTMAX:
        for i in range(i0, i1):
            p = delta[i]
            for j in range(k):
                p[j] = z[i, j] + b[j]
        softmax_rows(delta, delta, i0, i1)
    else:  # f(z + b) as gemm_into's epilogue makes it
        for i in range(i0, i1):
            p = delta[i]
            for j in range(k):
                p[j] = z[i, j]
        epilogue(delta, i0, i1, BIAS_ACTIVATION + EPILOGUE_KINDS * output, b, delta[:0])
    for i in range(i0, i1):
        p = delta[i]
        y = targets[i]
        loss = 0.0
        hit = 1
        best, target_best = 0, 0
        for j in range(k):
            pj, yj = float(p[j]), float(y[j])
            if output == IDENTITY:
                loss += 0.5 * (pj - yj) * (pj - yj)
            elif output == EXP:
                loss += pj
                if yj != 0:
                    loss -= yj * _elementary.log(max(pj, tiny))
            else:  # softmax and logistic: -y log p (- (1 - y) log(1 - p))
                if yj != 0:
                    loss -= yj * _elementary.log(max(pj, tiny))
                if output == LOGISTIC:
                    if yj != 1:
                        loss -= (1 - yj) * _elementary.log(max(float(1 - p[j]), tiny))
                    if (pj > 0.5) != (yj > 0.5):
                        hit = 0
            if p[j] > p[best]:
                best = j
            if y[j] > y[target_best]:
                target_best = j
        for j in range(k):
            p[j] -= y[j]
        losses[i] = loss
        if output == SOFTMAX:
            hits[i] = best == target_best
        else:
            hits[i] = hit if output == LOGISTIC else 0
        _scale_delta(p, weights, i, n_batch, total)


@cached_njit(**_JIT, inline="always")
def _wt_panel(l, n_out, theta):
    """The panel width of layer ``l``'s ``W.T`` in ``buffers.wt`` (``gemm_into``'s
    ``b_panel``): ``panel_width`` where it divides ``n_out``, so its copy fills the
    same ``n_in * n_out`` elements; the first layer's, which the epoch updates in place,
    and any other, plain (``n_out``)."""
    width = PANEL_TILES * TILE_VECTORS * VECTOR_BYTES // theta.itemsize
    return width if l > 0 and n_out % width == 0 else n_out


@cached_njit(**_BORROWING)
def rows_into_panels(W, panels, at, panel, j0, j1):
    """Rows ``j0:j1`` of ``W`` ``(n_out, n_in)`` into ``gemm_into``'s layout of ``b`` in
    panels ``panel`` wide (a divisor of ``n_in``), from element ``at`` of ``panels``:
    ``W[j, c]`` to element ``at + ((c // panel) * n_out + j) * panel + c % panel``.
    The fused epoch keeps the copy of ``W`` that its backward product reads this way
    (``w_panel``)."""
    n_out, n_in = W.shape
    for p0 in range(0, n_in, panel):
        copy_block(W, j0 * n_in + p0, n_in, panels, at + (p0 // panel * n_out + j0) * panel,
                   panel, j1 - j0, panel)


@cached_njit(**_JIT, inline="always")
def _deltas_transposed(n, workers):
    # whether a step of n rows on workers transposes the deltas of the layers by
    # columns for their weight gradients (train_epoch_worker writes them,
    # _gradients_and_update reads them): with at most COLUMN_ROWS rows a worker
    return -(-n // workers) <= COLUMN_ROWS


@cached_njit(**_JIT, inline="always")
def _rows_forward(theta, layout, buffers, n, r0, r1, clocks, callees, activation, worker):
    # Forward pass of rows r0:r1 of the batch of n rows: z[l] = f(a[l] @ W[l].T + b[l])
    # for the activation f of code activation, and the logits a[l] @ W[l].T for the
    # last layer (its bias is added with the output function). A layer whose row of
    # layout has COLUMNS computes z[r0:r1].T = W @ a[r0:r1].T in the worker's own
    # buffers (rows of a transposed in, z's transposed out, then the epilogue on z's
    # rows): the same sums, the same bits (forward_by_columns).
    L = layout.shape[0]
    none = buffers.xb[:0]  # (no np.empty: it compiles an allocation of its own)
    hidden = BIAS_ACTIVATION + EPILOGUE_KINDS * activation
    for l in range(L):
        n_out, n_in = layout[l, N_OUT], layout[l, N_IN]
        w_at, b_at, unit_at = layout[l, W_AT], layout[l, B_AT], layout[l, UNIT_AT]
        a_at = 0 if l == 0 else layout[l - 1, UNIT_AT] * n  # a's offset in z
        mode = hidden if l < L - 1 else PLAIN
        bias = theta[b_at:b_at + n_out]
        z = _block(buffers.z, unit_at * n, (n, n_out))
        if layout[l, COLUMNS] == 0:
            a = buffers.xb[:n] if l == 0 else _block(buffers.z, a_at, (n, n_in))
            callees.gemm_into(a, _block(buffers.wt, w_at, (n_in, n_out)), z, r0, r1, mode, bias,
                              none, clocks, NOT_TRANSPOSED, _wt_panel(l, n_out, theta),
                              callees.epilogue_rows)
            continue
        # COLUMN_ROWS rows at a time, so that their a.T and z.T stay in the core's L2
        for c0 in range(r0, r1, COLUMN_ROWS):
            rows = min(COLUMN_ROWS, r1 - c0)
            start = _simd.cycle_counter()
            a_t = _block(buffers.a_t[worker], 0, (n_in, rows))
            z_t = _block(buffers.z_t[worker], 0, (n_out, rows))
            a_rows = (_block(buffers.xb, c0 * n_in, (rows, n_in)) if l == 0
                      else _block(buffers.z, a_at + c0 * n_in, (rows, n_in)))
            callees.transpose_rows(a_rows, a_t, rows, 0, rows)
            clocks[EPILOGUES] += _simd.cycle_counter() - start
            callees.gemm_into(_block(theta, w_at, (n_out, n_in)), a_t, z_t, 0, n_out,
                              np.int64(PLAIN), bias, none, clocks, NOT_TRANSPOSED, rows,
                              callees.epilogue_rows)
            start = _simd.cycle_counter()
            callees.transpose_rows(z_t, _block(buffers.z, unit_at * n + c0 * n_out,
                                               (rows, n_out)), n_out, 0, n_out)
            if mode % EPILOGUE_KINDS != PLAIN:
                callees.epilogue_rows(z, c0, c0 + rows, mode, bias, none)
            clocks[EPILOGUES] += _simd.cycle_counter() - start


@cached_njit(**_JIT, inline="always")
def _rows_backward(theta, layout, buffers, n, r0, r1, clocks, gemm_into, epilogue, activation):
    # Deltas of rows r0:r1 of the batch of n rows, from the output's down:
    # delta[l-1] = (delta[l] @ W[l]) * f'(z[l-1]), f' from the layer's output a[l]
    # (ReLU: a[l] > 0)
    # (W from its panels in buffers.wt where the epoch keeps them, w_panel)
    derivative = DERIVATIVE + EPILOGUE_KINDS * activation
    for l in range(layout.shape[0] - 1, 0, -1):
        n_out, n_in = layout[l, N_OUT], layout[l, N_IN]
        w_at, unit_at, below = layout[l, W_AT], layout[l, UNIT_AT], layout[l - 1, UNIT_AT]
        panel = layout[l, W_PANEL]
        W = _block(theta if panel == n_in else buffers.wt, w_at, (n_out, n_in))
        gemm_into(_block(buffers.d, unit_at * n, (n, n_out)), W,
                  _block(buffers.d, below * n, (n, n_in)), r0, r1, derivative, theta[:0],
                  _block(buffers.z, below * n, (n, n_in)), clocks, NOT_TRANSPOSED, panel,
                  epilogue)


# Rows ahead of the one it copies that the batch gather asks the CPU for.
GATHER_AHEAD = _blocking.BLOCKING.gather_ahead


@cached_njit(**_JIT, inline="always")
def _gather_rows(x, y, w, order, buffers, n, r0, r1, scale, offset):
    # rows scale * x[order[i]] + offset, rounded as InputScaler.transform rounds
    # them (a product, then a sum), labels y[order[i]] and, unless w is empty,
    # weights w[order[i]] of the batch
    cast = buffers.xb.dtype.type
    s, o = cast(scale), cast(offset)
    weighted = w.shape[0] > 0
    for i in range(r0, r1):
        if i + GATHER_AHEAD < r1:  # a random row of a large x: ask for it early
            _simd.prefetch_row(x, order[i + GATHER_AHEAD])
        buffers.yb[i] = y[order[i]]
        if weighted:
            buffers.wb[i] = w[order[i]]
        source, row = x[order[i]], buffers.xb[i]
        for j in range(row.shape[0]):
            row[j] = cast(source[j]) * s + o


@cached_njit(**_JIT, inline="always")
def _gather_targets(targets, order, tb, r0, r1):
    # tb[i] = targets[order[i]] for rows r0:r1 of the batch, each target row asked for
    # GATHER_AHEAD rows early (read where they are, the random rows missed the cache:
    # 10 ms of a 280 ms MNIST epoch)
    for i in range(r0, min(r1, r0 + GATHER_AHEAD)):
        _simd.prefetch_row(targets, order[i])
    for i in range(r0, r1):
        if i + GATHER_AHEAD < r1:
            _simd.prefetch_row(targets, order[i + GATHER_AHEAD])
        source, row = targets[order[i]], tb[i]
        for j in range(row.shape[0]):
            row[j] = source[j]


@cached_njit(**_JIT, inline="always")
def _gradients_and_update(params, layout, buffers, n, hyper, lr, t, l2_total, c, tasks, clocks,
                          callees):
    """Task ``c`` of ``tasks`` computes and applies its share of the step's gradient.

    Unless its forward product runs by columns (``layout``'s ``COLUMNS``), the
    first layer's weights are kept as ``W.T`` during the epoch, in
    ``buffers.wt`` (its optimizer state in ``buffers.s1t, s2t``): no product
    needs its ``W``, so ``dW.T = a.T @ delta`` and the update act on ``W.T``
    directly, rows ``r0:r1`` (inputs) of it per task. Every other layer keeps
    ``W`` in ``theta`` (``delta @ W`` or the product by columns needs it): the
    task computes rows ``j0:j1`` (units) of ``dW = delta.T @ a``, updates them
    while they are in its cache, and, for a forward product by rows, refreshes
    their columns of ``W.T``. Each task also sums and applies ``db[j0:j1]``.
    (``delta.T`` and ``a.T`` are read in place, see ``gemm_into``, or, for a
    layer by columns and few rows a worker, ``delta.T`` from ``buffers.d_t``.)
    """
    grad = buffers.grad
    theta = params.theta
    transposed = Parameters(buffers.wt, buffers.s1t, buffers.s2t)  # the first layer's
    none = buffers.xb[:0]
    for l in range(layout.shape[0]):
        n_out, n_in = layout[l, N_OUT], layout[l, N_IN]
        w_at, b_at, unit_at = layout[l, W_AT], layout[l, B_AT], layout[l, UNIT_AT]
        delta = _block(buffers.d, unit_at * n, (n, n_out))
        a = buffers.xb[:n] if l == 0 else _block(buffers.z, layout[l - 1, UNIT_AT] * n, (n, n_in))
        size = -(-n_out // tasks)
        j0 = min(c * size, n_out)
        j1 = min(j0 + size, n_out)
        if l == 0 and layout[0, COLUMNS] == 0:
            size = -(-n_in // tasks)
            r0 = min(c * size, n_in)
            r1 = min(r0 + size, n_in)
            callees.gemm_into(a, delta, _block(grad, w_at, (n_in, n_out)), r0, r1,
                              np.int64(PLAIN), theta[:0], none, clocks, TRANSPOSED, n_out,
                              callees.epilogue_rows)
            start = _simd.cycle_counter()
            callees.update_slice(transposed, grad, w_at + r0 * n_out, w_at + r1 * n_out, hyper,
                                 lr, t, l2_total)
            clocks[UPDATE] += _simd.cycle_counter() - start
        elif j0 < j1:
            # dW's rows j0:j1 a row tile at a time where the batch is short (no copies into
            # panels, see gemm_into), each updated while in the core's cache: the update
            # no longer reads the gradient back from memory, where W and dW outgrow the
            # L3 (784-2048-2048-10, SGD, batch 32, 2-core Zen 4 EPYC: the update 0.69-0.70
            # -> 0.53-0.59 s of 300 steps, the epoch 5 % faster; batch 128, 0.22-0.26 ->
            # 0.18-0.20 s; at 1024 units within the noise). In one product where the
            # batch is long (the copies pay for the rows they serve).
            chunk = j1 - j0 if n >= PACK_DEPTH else ROW_TILE
            transposed_deltas = layout[l, COLUMNS] != 0 and _deltas_transposed(n, tasks)
            panel = layout[l, W_PANEL]
            # where the backward product reads W's panels, a few rows at a time: each
            # updated, then copied into the panels while in L1
            step = j1 - j0 if panel == n_in else max(1, REFRESH_BYTES // (n_in * theta.itemsize))
            for c0 in range(j0, j1, chunk):
                c1 = min(c0 + chunk, j1)
                if transposed_deltas:
                    # delta.T's rows as they lie (train_epoch_worker wrote them), where
                    # delta.T's read in place would take each k from another row of delta
                    callees.gemm_into(_block(buffers.d_t, unit_at * n, (n_out, n)), a,
                                      _block(grad, w_at, (n_out, n_in)), c0, c1,
                                      np.int64(PLAIN), theta[:0], none, clocks, NOT_TRANSPOSED,
                                      n_in, callees.epilogue_rows)
                else:
                    callees.gemm_into(delta, a, _block(grad, w_at, (n_out, n_in)), c0, c1,
                                      np.int64(PLAIN), theta[:0], none, clocks, TRANSPOSED, n_in,
                                      callees.epilogue_rows)
                start = _simd.cycle_counter()
                for q0 in range(c0, c1, step):
                    q1 = min(q0 + step, c1)
                    callees.update_slice(params, grad, w_at + q0 * n_in, w_at + q1 * n_in,
                                         hyper, lr, t, l2_total)
                    if panel != n_in:
                        callees.rows_into_panels(_block(theta, w_at, (n_out, n_in)),
                                                 buffers.wt, w_at, panel, q0, q1)
                clocks[UPDATE] += _simd.cycle_counter() - start
            if layout[l, COLUMNS] == 0:  # the forward product reads W.T
                start = _simd.cycle_counter()
                callees.transpose_rows(_block(theta, w_at, (n_out, n_in)),
                                       _block(buffers.wt, w_at, (n_in, n_out)),
                                       _wt_panel(l, n_out, theta), j0, j1)
                clocks[UPDATE] += _simd.cycle_counter() - start
        if j0 == j1:
            continue
        start = _simd.cycle_counter()
        # db[j] = sum of delta[:, j] in batch order, summed for all j at once
        db = grad[b_at + j0:b_at + j1]
        db[:] = 0
        for i in range(n):
            row = delta[i]
            for j in range(j0, j1):
                db[j - j0] += row[j]
        middle = _simd.cycle_counter()
        callees.update_slice(params, grad, b_at + j0, b_at + j1, hyper, lr, t, 0.0)
        clocks[EPILOGUES] += middle - start
        clocks[UPDATE] += _simd.cycle_counter() - middle


# Slots of the int64 array the workers of one epoch share: the barrier's
# arrivals and generation, the abort flag (set by Python when a worker failed
# or the user pressed Ctrl-C) and, written by worker 0, the steps done, the
# failed step (-1: none) and the correct predictions; SYNC_SIZE slots in all.
ARRIVED, GENERATION, ABORT, STEPS_DONE, FAILED_STEP, CORRECT = range(6)
SYNC_SIZE = 6


@cached_njit(**_JIT, inline="always")
def barrier(sync, workers):
    """Wait until all ``workers`` have arrived; False if the epoch was aborted meanwhile."""
    generation = _simd.atomic_load(sync, GENERATION)
    if _simd.atomic_add(sync, ARRIVED, 1) == workers - 1:
        _simd.atomic_store(sync, ARRIVED, 0)
        _simd.atomic_add(sync, GENERATION, 1)
        return True
    spins = 0
    while _simd.atomic_load(sync, GENERATION) == generation:
        if _simd.atomic_load(sync, ABORT) != 0:
            return False
        _simd.spin_pause(spins)
        spins += 1
    return True


@cached_njit(**_BORROWING)
def _timed_barrier(sync, workers, clocks):
    # barrier, its wait counted in clocks[WAIT]
    start = _simd.cycle_counter()
    passed = barrier(sync, workers)
    clocks[WAIT] += _simd.cycle_counter() - start
    return passed


@cached_njit(**_BORROWING)
def train_epoch_worker(worker, workers, sync, loss_sum, params, layout, data, update, buffers,
                       clocks, callees):
    """Worker ``worker`` of ``workers`` threads running all steps of one epoch.

    ``params`` (``Parameters``) is updated in place, trained on ``data``
    (``EpochData``) by ``update`` (``UpdateRule``). Every layer's ``W`` and
    ``b`` live in the flat vector ``params.theta`` (the optimizer state and
    the gradient alike), where row l of ``layout`` is
    indexed by ``N_OUT, N_IN, W_AT, B_AT, UNIT_AT``: the layer's sizes, the
    offsets of its ``W`` and ``b``, and the offset of its units among all
    units. ``hyper`` is indexed by ``MOMENTUM, ..., DECOUPLED``. Batch k is
    rows ``order[k * batch_size:(k + 1) * batch_size]`` of ``x`` (``order`` may
    pick any rows, a part of an epoch's shuffle for instance), scaled as
    ``scale * x + offset`` and gathered into ``buffers`` (see
    ``_fused.EpochBuffers``), where they stay in cache for the whole step.

    Per step, each worker gathers, runs forward and backward for its range of
    the batch's rows, meets the others at ``barrier``, then computes and
    applies its share of the gradient (``_gradients_and_update``), and meets
    them again. Unless its forward runs by columns, the first layer's ``W`` and
    optimizer state stay transposed in ``buffers`` for the whole epoch; the
    caller copies them back. Each step's
    loss is summed row by row in batch order (into ``loss_sum[0]``, by worker
    0), so neither the result nor the parameters depend on ``workers``; with
    scikit-learn's rules, ``loss_sum[1]`` sums each step's L2 term (worker 0, before
    the step's update).
    Results go to ``sync`` (see ``SYNC_SIZE``), and the cycles of each part of
    the work to ``clocks[worker]`` (see ``N_PARTS``). With ``data.sample_weight``,
    each row's output delta and loss are weighted (``_scale_delta``) and its
    weight gathered with it: the same compiled loop, the weights an array
    of length 0 when there are none. ``callees`` (``EpochCallees``) are the
    products, the update by ``update.rule``, the softmax, the transposition, the
    loss and the products' epilogue, called at their addresses.
    """
    began = _simd.cycle_counter()
    clocks = clocks[worker]
    theta, state1, state2 = params
    (x, y, order, learning_rates, batch_size, scale, offset, sample_weight, targets, activation,
     output) = data
    rule, hyper, t, tiny = update
    alpha = _l2_alpha(rule, hyper)
    n_samples = order.shape[0]
    L = layout.shape[0]
    for l in range(L):
        n_out, n_in, w_at = layout[l, N_OUT], layout[l, N_IN], layout[l, W_AT]
        size = -(-n_out // workers)
        j0 = min(worker * size, n_out)
        j1 = min(j0 + size, n_out)
        if layout[l, COLUMNS] != 0:  # its forward reads W itself, updated in place
            if layout[l, W_PANEL] != n_in:  # and its backward product W's panels
                callees.rows_into_panels(_block(theta, w_at, (n_out, n_in)), buffers.wt, w_at,
                                         layout[l, W_PANEL], j0, j1)
            continue
        callees.transpose_rows(_block(theta, w_at, (n_out, n_in)),
                               _block(buffers.wt, w_at, (n_in, n_out)), _wt_panel(l, n_out, theta),
                               j0, j1)
        if l == 0:  # the first layer's optimizer state, transposed like its W
            for state, state_t in ((state1, buffers.s1t), (state2, buffers.s2t)):
                if state.shape[0]:
                    callees.transpose_rows(_block(state, w_at, (n_out, n_in)),
                                           _block(state_t, w_at, (n_in, n_out)), n_out, j0, j1)
    if not _timed_barrier(sync, workers, clocks):
        return
    for step, begin in enumerate(range(0, n_samples, batch_size)):
        n = min(begin + batch_size, n_samples) - begin
        size = -(-n // workers)
        r0 = min(worker * size, n)
        r1 = min(r0 + size, n)
        batch = order[begin:begin + n]
        start = _simd.cycle_counter()
        _gather_rows(x, y, sample_weight, batch, buffers, n, r0, r1, scale, offset)
        if targets.shape[0] > 0:
            _gather_targets(targets, batch, buffers.tb, r0, r1)
        # every worker sums all the batch's weights, in batch order: the same total
        total = _weight_total(sample_weight, batch)
        clocks[GATHER] += _simd.cycle_counter() - start
        # forward pass, loss and deltas of the worker's rows r0:r1 of the batch (the
        # passes inlined one after the other: nested, numba copied the inner one's IR
        # again with the outer, 0.1-0.2 s more to compile)
        _rows_forward(theta, layout, buffers, n, r0, r1, clocks, callees, activation, worker)
        start = _simd.cycle_counter()
        n_out, b_at, unit_at = layout[L - 1, N_OUT], layout[L - 1, B_AT], layout[L - 1, UNIT_AT]
        if output == SOFTMAX and targets.shape[0] == 0:  # labels_loss: the other is Uncalled
            callees.softmax_cross_entropy_rows(
                _block(buffers.z, unit_at * n, (n, n_out)), theta[b_at:b_at + n_out], buffers.yb,
                n, buffers.wb, total, tiny, _block(buffers.d, unit_at * n, (n, n_out)),
                buffers.losses, buffers.hits, r0, r1, callees.softmax_rows)
        else:
            callees.output_loss_rows(
                _block(buffers.z, unit_at * n, (n, n_out)), theta[b_at:b_at + n_out],
                buffers.tb, output, n, buffers.wb, total, tiny,
                _block(buffers.d, unit_at * n, (n, n_out)), buffers.losses, buffers.hits, r0, r1,
                callees.softmax_rows, callees.epilogue_rows)
        clocks[EPILOGUES] += _simd.cycle_counter() - start
        _rows_backward(theta, layout, buffers, n, r0, r1, clocks, callees.gemm_into,
                       callees.epilogue_rows, activation)
        # with few rows a worker, the deltas of the layers by columns transposed too,
        # for their weight gradients (_gradients_and_update): the worker's rows r0:r1
        # of delta are columns r0:r1 of delta.T
        if _deltas_transposed(n, workers):
            start = _simd.cycle_counter()
            for l in range(L):
                if layout[l, COLUMNS] != 0 and r0 < r1:
                    n_out, unit_at = layout[l, N_OUT], layout[l, UNIT_AT]
                    callees.transpose_rows(_block(buffers.d, unit_at * n, (n, n_out)),
                                           _block(buffers.d_t, unit_at * n, (n_out, n)), n, r0,
                                           r1)
            clocks[EPILOGUES] += _simd.cycle_counter() - start
        # scikit-learn's L2 term of the loss, alpha / 2 sum(W^2) with the weights before
        # the step: the workers sum their chunks of them while no worker writes them,
        # worker 0 adds the chunks' sums after the barrier
        if alpha != 0:
            start = _simd.cycle_counter()
            callees.squared_weights_chunks(theta, buffers.wt, layout, buffers.penalties, worker,
                                           workers)
            clocks[UPDATE] += _simd.cycle_counter() - start
        if not _timed_barrier(sync, workers, clocks):
            return
        penalty = 0.0
        if worker == 0 and alpha != 0:
            penalty = 0.5 * alpha * _squared_weights(buffers.penalties)
        # the batch's loss times its size, or with weights sum_i w[i] loss[i]: its
        # weighted mean times its total weight
        batch_loss = 0.0
        if sample_weight.shape[0] > 0:
            for i in range(n):
                batch_loss += buffers.wb[i] * buffers.losses[i]
        else:
            for i in range(n):
                batch_loss += buffers.losses[i]
        if not np.isfinite(batch_loss):  # every worker sees the same sum and stops
            if worker == 0:
                _simd.atomic_store(sync, FAILED_STEP, step)
            return
        if worker == 0:
            loss_sum[0] += batch_loss
            loss_sum[1] += penalty
            correct = 0
            for i in range(n):
                correct += buffers.hits[i]
            _simd.atomic_add(sync, CORRECT, correct)
        if rule in (ADAM_RULE, SKLEARN_ADAM_RULE):
            t += 1
        # what scikit-learn's rules divide alpha by: the batch's rows, or its weight sum
        l2_total = total if sample_weight.shape[0] > 0 else float(n)
        _gradients_and_update(params, layout, buffers, n, hyper, learning_rates[step], t,
                              l2_total, worker, workers, clocks, callees)
        if not _timed_barrier(sync, workers, clocks):
            return
        if worker == 0:
            _simd.atomic_store(sync, STEPS_DONE, step + 1)
    clocks[TOTAL] += _simd.cycle_counter() - began


class EpochCallees(NamedTuple):
    """The kernels that ``train_epoch_worker`` calls at their addresses (see ``Compiled``)."""

    gemm_into: Compiled
    update_slice: Compiled
    softmax_rows: Compiled
    transpose_rows: Compiled
    rows_into_panels: Compiled
    softmax_cross_entropy_rows: Compiled
    output_loss_rows: Compiled
    epilogue_rows: Compiled
    squared_weights_chunks: Compiled


@functools.cache
def _callees(dtype) -> dict:
    # every kernel called at its address, as it is compiled for parameters of dtype
    vector, matrix, i = np.empty(0, dtype), np.empty((0, 0), dtype), np.int64(0)
    floats, ints = np.empty(0), np.empty(0, np.int64)
    update = (Parameters(vector, vector, vector), vector, i, i, floats, 0.0, i, 0.0)
    softmax = _compiled(softmax_rows, matrix, matrix, i, i)
    epilogue = _compiled(_epilogue_rows, matrix, i, i, i, vector, matrix)
    relu_epilogue = Compiled(_relu_epilogue_rows, epilogue.argument_types)
    return {"gemm_into": _compiled(gemm_into, matrix, matrix, matrix, i, i, i, vector, matrix,
                                   ints, i, i, epilogue),
            "epilogue_rows": epilogue,
            "relu_epilogue_rows": relu_epilogue,
            "squared_weights_chunks": _compiled(_squared_weights_chunks, vector, vector,
                                                np.empty((0, 0), np.int64), floats, i, i),
            "update_slice": {rule: _compiled(kernel, *update)
                             for rule, kernel in UPDATE_SLICES.items()},
            "softmax_rows": softmax,
            "transpose_rows": _compiled(transpose_rows, matrix, matrix, i, i, i),
            "rows_into_panels": _compiled(rows_into_panels, matrix, vector, i, i, i, i),
            "softmax_cross_entropy_rows": _compiled(_softmax_cross_entropy_rows, matrix, vector,
                                                    ints, i, floats, 0.0, 0.0, matrix, floats,
                                                    ints, i, i, softmax),
            "output_loss_rows": _compiled(_output_loss_rows, matrix, vector, matrix, i, i, floats,
                                          0.0, 0.0, matrix, floats, ints, i, i, softmax,
                                          epilogue)}


def labels_loss(output, targets) -> bool:
    """Whether the fused epoch's loss of the output ``output`` (a code of ``OUTPUT_CODES``)
    against ``targets`` (``EpochData.targets``) is ``_softmax_cross_entropy_rows`` (softmax
    against labels: ``targets`` empty) rather than ``_output_loss_rows``: the test that
    ``train_epoch_worker`` makes."""
    return output == SOFTMAX and targets.shape[0] == 0


@functools.cache
def epoch_callees(dtype, rule, activation=RELU, output=SOFTMAX, labels=True) -> EpochCallees:
    """``train_epoch_worker``'s callees for parameters of ``dtype`` and update ``rule``, the
    network of ``activation`` and ``output`` (codes; see ``epilogues``), and its loss by
    ``labels`` (``labels_loss``). A callee the epoch does not call is
    ``Uncalled``, so a first run compiles only what it runs: one of the two losses
    (``_output_loss_rows``, compiled for the softmax run that never calls it, took a
    second of a first ``fastmlp train``), and the L2 term's sum for ``L2_RULES`` alone."""
    callees = _callees(np.dtype(dtype))
    losses = [callees["softmax_cross_entropy_rows"], callees["output_loss_rows"]]
    losses[1 if labels else 0] = _uncalled(losses[1 if labels else 0])
    penalty = callees["squared_weights_chunks"]
    return EpochCallees(callees["gemm_into"], callees["update_slice"][rule],
                        callees["softmax_rows"], callees["transpose_rows"],
                        callees["rows_into_panels"], *losses,
                        epilogues(dtype, activation, output),
                        penalty if rule in L2_RULES else _uncalled(penalty))


def _uncalled(compiled) -> Uncalled:
    return Uncalled(compiled.kernel, compiled.argument_types)


def epilogues(dtype, activation=RELU, output=SOFTMAX) -> Compiled:
    """The epilogue that ``gemm_into`` takes in the products of a network of ``activation``
    and ``output`` (codes of ``ACTIVATION_CODES``, ``OUTPUT_CODES``) and ``dtype``:
    ``_relu_epilogue_rows`` for ReLU and softmax, else ``_epilogue_rows``."""
    name = "relu_epilogue_rows" if (activation, output) == (RELU, SOFTMAX) else "epilogue_rows"
    return _callees(np.dtype(dtype))[name]


# Slots of forward_rows' callees in the addresses it takes (forward_callees).
FORWARD_GEMM, FORWARD_SOFTMAX, FORWARD_EPILOGUE = range(3)
FORWARD_CALLEES = ("gemm_into", "softmax_rows", "epilogue_rows")


@functools.cache
def forward_callees(dtype, activation=RELU, output=SOFTMAX, product=True) -> np.ndarray:
    """The addresses of ``forward_rows``' callees for parameters of ``dtype`` and the
    network of ``activation`` and ``output`` (codes), by slot (each compiled, or loaded
    from numba's cache, first). ``product=False`` (``predict_one``, which calls no
    product) leaves the product's slot a null address, so that a first prediction does
    not compile it.

    The forward pass takes them as an int64 array where the epoch takes its
    ``EpochCallees``: numba's dispatcher types an array argument natively, and a
    tuple of function pointers in Python on every call (9 us against 1 us a call,
    10-15 % of a forward pass of a few rows; ``_kernel_at`` makes the pointers).
    """
    callees = dict(_callees(np.dtype(dtype)), epilogue_rows=epilogues(dtype, activation, output))
    return np.array([0 if name == "gemm_into" and not product else callees[name].address
                     for name in FORWARD_CALLEES], np.int64)


@intrinsic(prefer_literal=True)
def _kernel_at(typingctx, addresses, slot, dtype):
    # forward_rows' callee in slot (FORWARD_CALLEES), compiled for dtype: the function
    # pointer at addresses[slot], of the type a Compiled of it has, so that numba
    # checks each call's arguments against the kernel's signature
    if not (isinstance(slot, types.IntegerLiteral) and isinstance(dtype, types.DType)):
        return None
    name = FORWARD_CALLEES[slot.literal_value]
    pointer = _callees(as_dtype(dtype.dtype))[name].numba_type

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.load(builder.gep(data, [ir.Constant(ir.IntType(64),
                                                              slot.literal_value)]))
        return builder.inttoptr(address, context.get_value_type(pointer))

    return pointer(addresses, slot, dtype), codegen


@intrinsic
def _no_epilogue(typingctx, dtype):
    # a null pointer of the type of gemm_into's epilogue for dtype: the argument of a
    # PLAIN product, which never calls it
    if not isinstance(dtype, types.DType):
        return None
    pointer = _callees(as_dtype(dtype.dtype))["epilogue_rows"].numba_type

    def codegen(context, builder, signature, args):
        return context.get_constant_null(pointer)

    return pointer(dtype), codegen


def forward_argument_types(dtype, layers) -> tuple:
    """The types of ``forward_rows``' arguments as ``forward`` passes them, for
    ``layers`` layers of ``dtype``."""
    vector, matrix, ints = np.empty(0, dtype), np.empty((0, 0), dtype), np.empty(0, np.int64)
    examples = (matrix, (matrix,) * layers, (vector,) * layers, (matrix,) * layers, ints,
                ints, 0, 0, 0, 0)
    return tuple(typeof(example) for example in examples)


def _drop_stale_cache(kernel):
    """Empty this module's numba cache if ``_simd``, ``_elementary``, the tile and
    blocking (``_blocking.frozen``) or what ``fastmlp.optim`` lends the kernels changed
    since it was written.

    numba checks a cached kernel against its own source file only, and the
    micro-kernels and the exp and log are inlined from those modules, the block
    sizes frozen in: without this, an edit of them, another machine's caches or
    another ``FASTMLP_NUMBA_TILE`` or ``FASTMLP_NUMBA_BLOCKING`` would load stale code.
    """
    sources = b"".join(Path(module.__file__).read_bytes() for module in (_simd, _elementary))
    # the slots frozen into the kernels come from fastmlp.optim's table, and
    # integer_power is inlined from there too
    optim_part = (repr(FUSED_RULES) + inspect.getsource(integer_power)).encode()
    stamp = hashlib.sha256(sources + _blocking.frozen().encode() + optim_part).hexdigest()
    with contextlib.suppress(AttributeError, OSError):
        folder = Path(kernel._cache._cache_path)
        marker = folder / "_kernels.simd-stamp"
        if marker.exists() and marker.read_bytes() == stamp.encode():
            return  # (a damaged stamp differs, and empties the cache like a stale one)
        for path in folder.glob("_kernels.*.nb[ic]"):
            path.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".simd-stamp.")
        with os.fdopen(fd, "w") as file:
            file.write(stamp)
        os.replace(temporary, marker)


_drop_stale_cache(gemm)
_compile_helper.watch(train_epoch_worker)
