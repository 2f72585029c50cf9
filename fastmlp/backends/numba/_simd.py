"""Explicit-SIMD micro-kernels: numba intrinsics that emit llvmlite vector IR.

Every matrix product of the numba backend is a loop over tiles of one
kernel, ``tile_nn``. For a tile of ``R`` rows and ``V`` vectors of ``L``
lanes (the tile shape, chosen for the compile target in ``_blocking``), it
computes::

    acc[r][c] = C[i0 + r, j0 + c L : j0 + (c + 1) L]  if accumulate, else 0
    for k in range(K):
        acc[r][c] = fma(A[i0 + r, k], B[k, j0 + c L : j0 + (c + 1) L], acc[r][c])
    C[i0 + r, j0 + c L : j0 + (c + 1) L] = acc[r][c]

for ``r < R`` and ``c < V``: one vector load per ``c`` and one broadcast per
``r`` for each ``k``, and ``R * V`` accumulators that LLVM keeps in registers.
A tile at an edge (``rows < R`` or ``cols < V L``) loads its missing rows
from its last row and does not store them, and masks the lanes past
``cols`` in its last vector.

The invariant that matters: every element of ``C`` is one chain of fused
multiply-adds in ``k`` order, starting from 0 (or from the ``C`` that an
earlier call over the ``k`` before it left, which is the same chain cut in
two). No sum runs across lanes, so the bits do not depend on ``R``, ``V``,
``L``, the instruction set, the position of an element in its tile, or how
the rows, columns and ``k`` are split into calls. ``llvm.fma`` is exact
rounding by definition: a CPU without FMA computes it in software, with the
same bits, many times slower.

One sample's products (``predict_one``) use ``rows_dot`` instead
(`make_rows_dot_kernel`): the same chain per element, for ``W @ x`` with
``W``'s rows loaded a block at a time and transposed in registers, partly by
the loads themselves.

The helpers follow numba's own ``cgutils``: each emits one small piece of IR
(a broadcast, a maybe-masked load or store, the FMA block of one ``k``).
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import llvmlite.binding as ll
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.codegen import get_host_cpu_features
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


class Tile(NamedTuple):
    """A register tile: ``rows`` of ``A`` by ``vectors`` vectors of ``vector_bytes``."""

    rows: int
    vectors: int
    vector_bytes: int

    def lanes(self, itemsize: int) -> int:
        return self.vector_bytes // itemsize

    def __str__(self):
        return f"{self.rows}x{self.vectors}x{self.vector_bytes * 8}bit"


def target_features() -> tuple[str, str]:
    """The CPU name and feature string numba compiles for, by numba's own rule
    (``CPUCodegen._get_host_cpu_name``/``_features``): ``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES`` where set, else the host's. (A name alone keeps the
    host's features, as numba does: emulating Haswell needs both variables.)"""
    name = config.CPU_NAME or ll.get_host_cpu_name()
    features = config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features()
    return name, features


def target_isa(name: str, features: str) -> str:
    """``avx512``, ``avx2`` (with FMA) or ``generic``, from a CPU name and feature string."""
    enabled = set(re.findall(r"\+([\w.-]+)", features))
    if not features:  # a CPU name alone: what LLVM knows of it
        if name in ("generic", "x86-64", "core2", "nehalem", "westmere", "sandybridge",
                    "ivybridge", "btver2", "bdver1"):
            return "generic"
        if re.search(r"avx512|skylake-avx|icelake|cooperlake|cascadelake|tigerlake|sapphire"
                     r"|rocketlake|znver4|znver5|graniterapids|emerald", name):
            return "avx512"
        if re.search(r"haswell|broadwell|skylake|znver|alderlake|raptorlake|bdver[2-4]", name):
            return "avx2"
        return "generic"
    if "avx512f" in enabled:
        return "avx512"
    if {"avx2", "fma"} <= enabled:
        return "avx2"
    return "generic"


def _bytes(element) -> int:
    return 4 if isinstance(element, ir.FloatType) else 8


def _fma_function(module, vector_type):
    fnty = ir.FunctionType(vector_type, [vector_type] * 3)
    suffix = f"v{vector_type.count}{vector_type.element.intrinsic_name}"
    return cgutils.get_or_insert_function(module, fnty, f"llvm.fma.{suffix}")


def _broadcast(builder, scalar, vector_type):
    """``[scalar] * lanes``: insertelement, then a shuffle of lane 0 to every lane."""
    undef = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, undef, ir.Constant(ir.VectorType(_I32, vector_type.count),
                                                            [0] * vector_type.count))


def _lane_mask(builder, count, lanes):
    """``<lanes x i1>``: lane ``l`` is on when ``l < count``."""
    iota = ir.Constant(ir.VectorType(_I64, lanes), list(range(lanes)))
    return builder.icmp_signed("<", iota, _broadcast(builder, count, ir.VectorType(_I64, lanes)))


def _masked_intrinsic(module, kind, vector_type):
    pointer = vector_type.as_pointer()
    mask = ir.VectorType(ir.IntType(1), vector_type.count)
    suffix = f"v{vector_type.count}{vector_type.element.intrinsic_name}.p0"  # LLVM: opaque pointers
    if kind == "load":
        fnty = ir.FunctionType(vector_type, [pointer, _I32, mask, vector_type])
    else:
        fnty = ir.FunctionType(ir.VoidType(), [vector_type, pointer, _I32, mask])
    return cgutils.get_or_insert_function(module, fnty, f"llvm.masked.{kind}.{suffix}")


def _load(builder, pointer, vector_type, mask=None):
    """The vector at element ``pointer``; lanes off in ``mask`` read as 0 and touch no memory."""
    address = builder.bitcast(pointer, vector_type.as_pointer())
    if mask is None:
        return builder.load(address, align=_bytes(vector_type.element))
    align = ir.Constant(_I32, _bytes(vector_type.element))
    zero = ir.Constant(vector_type, [ir.Constant(vector_type.element, 0.0)] * vector_type.count)
    return builder.call(_masked_intrinsic(builder.module, "load", vector_type),
                        [address, align, mask, zero])


def _store(builder, value, pointer, mask=None):
    """Store ``value`` at element ``pointer``, only the lanes on in ``mask``."""
    address = builder.bitcast(pointer, value.type.as_pointer())
    if mask is None:
        builder.store(value, address, align=_bytes(value.type.element))
        return
    align = ir.Constant(_I32, _bytes(value.type.element))
    builder.call(_masked_intrinsic(builder.module, "store", value.type),
                 [value, address, align, mask])


def _fma_block(builder, fma, vector_type, accumulators, a_rows, a_k, b_row, lanes, masks):
    """One ``k``: load ``B[k]``'s vectors, broadcast each ``A[r, k]`` (element ``a_k`` of
    its row), one FMA per accumulator."""
    b = [_load(builder, builder.gep(b_row, [ir.Constant(_I64, c * lanes)]), vector_type, mask)
         for c, mask in enumerate(masks)]
    for a_row, row in zip(a_rows, accumulators):
        a = _broadcast(builder, builder.load(builder.gep(a_row, [a_k])), vector_type)
        for c, slot in enumerate(row):
            builder.store(builder.call(fma, [a, b[c], builder.load(slot)]), slot)


def _row_pointers(builder, base, at, ld, first, count, rows):
    """Pointers to rows ``first .. first + count - 1`` of a matrix whose row ``r``
    starts at element ``at + r * ld`` of ``base``; a row from ``rows`` on points at
    the last row instead (read, never stored: the same code for every row)."""
    last_row = builder.sub(rows, ir.Constant(_I64, 1))
    pointers = []
    for r in range(first, first + count):
        row = builder.select(builder.icmp_signed("<", ir.Constant(_I64, r), rows),
                             ir.Constant(_I64, r), last_row)
        pointers.append(builder.gep(base, [builder.add(at, builder.mul(row, ld))]))
    return pointers


def _emit_tile(builder, element, lanes, a_rows, a_step, b_base, ldb, c_rows, K, rows, masks,
               accumulate, accumulators):
    """The whole tile: initialise, the k-loop, store; ``masks[c]`` (or None) for vector c."""
    vector_type = ir.VectorType(element, lanes)
    fma = _fma_function(builder.module, vector_type)
    zero = ir.Constant(vector_type, [ir.Constant(element, 0.0)] * lanes)
    with builder.if_else(accumulate) as (then, otherwise):
        with then:
            for c_row, row in zip(c_rows, accumulators):
                for c, slot in enumerate(row):
                    pointer = builder.gep(c_row, [ir.Constant(_I64, c * lanes)])
                    builder.store(_load(builder, pointer, vector_type, masks[c]), slot)
        with otherwise:
            for row in accumulators:
                for slot in row:
                    builder.store(zero, slot)
    with cgutils.for_range(builder, K) as loop:
        b_row = builder.gep(b_base, [builder.mul(loop.index, ldb)])
        _fma_block(builder, fma, vector_type, accumulators, a_rows,
                   builder.mul(loop.index, a_step), b_row, lanes, masks)
    for r, (c_row, row) in enumerate(zip(c_rows, accumulators)):
        stored = builder.icmp_signed("<", ir.Constant(_I64, r), rows)
        with builder.if_then(stored, likely=True):
            for c, slot in enumerate(row):
                pointer = builder.gep(c_row, [ir.Constant(_I64, c * lanes)])
                _store(builder, builder.load(slot), pointer, masks[c])


def make_tile_kernel(tile: Tile, masked_only: bool = False):
    """The intrinsic ``tile_nn(A, a_at, lda, a_step, B, b_at, ldb, C, c_at, ldc, K, rows,
    cols, accumulate)`` for ``tile``.

    It holds two copies of the loop: unmasked for full tiles, masked for
    tiles at the right edge; ``masked_only`` emits the masked one alone, half
    the code to compile, for a tile that is mostly used at edges.

    ``A``, ``B``, ``C`` are C-contiguous arrays of one float dtype; the tile's
    ``A[i0, 0]`` is element ``a_at`` of ``A``'s buffer, and ``A[i0 + r, k]`` is
    ``r * lda + k * a_step`` elements later (``a_step`` 1 for ``A`` as it is,
    ``lda`` 1 for ``A`` transposed: its elements are broadcast one at a time,
    so any layout costs the same). Row ``r`` of ``B`` starts ``r * ldb``
    elements after ``b_at``, and ``C``'s rows alike, contiguous. ``rows``
    (1 to ``tile.rows``) and ``cols`` (1 to the tile's columns) are the part of
    the tile that exists. The caller guarantees the indices are in bounds.
    """

    @intrinsic
    def tile_nn(typingctx, A, a_at, lda, a_step, B, b_at, ldb, C, c_at, ldc, K, rows, cols,
                accumulate):
        arrays = (A, B, C)
        if not all(isinstance(t, types.Array) for t in arrays):
            return None
        if len({t.dtype for t in arrays}) != 1 or A.dtype not in (types.float32, types.float64):
            return None
        sig = types.void(A, types.intp, types.intp, types.intp, B, types.intp, types.intp, C,
                         types.intp, types.intp, types.intp, types.intp, types.intp, types.boolean)

        def codegen(context, builder, signature, args):
            (A_, a_at_, lda_, a_step_, B_, b_at_, ldb_, C_, c_at_, ldc_, K_, rows_, cols_,
             acc_) = args
            element = context.get_value_type(signature.args[0].dtype)
            lanes = tile.lanes(signature.args[0].dtype.bitwidth // 8)
            vector_type = ir.VectorType(element, lanes)
            pointers = [context.make_array(signature.args[i])(context, builder, value).data
                        for i, value in ((0, A_), (4, B_), (7, C_))]
            a, b, c = pointers
            a_rows = _row_pointers(builder, a, a_at_, lda_, 0, tile.rows, rows_)
            c_rows = _row_pointers(builder, c, c_at_, ldc_, 0, tile.rows, rows_)
            b_base = builder.gep(b, [b_at_])
            accumulators = [[cgutils.alloca_once(builder, vector_type) for _ in range(tile.vectors)]
                            for _ in range(tile.rows)]
            def masked():
                # lane l of vector c is on while c * lanes + l < cols
                masks = [_lane_mask(builder, builder.sub(cols_, ir.Constant(_I64, c * lanes)),
                                    lanes) for c in range(tile.vectors)]
                _emit_tile(builder, element, lanes, a_rows, a_step_, b_base, ldb_, c_rows, K_,
                           rows_, masks, acc_, accumulators)

            if masked_only:
                masked()
                return context.get_dummy_value()
            full = builder.icmp_signed("==", cols_, ir.Constant(_I64, tile.vectors * lanes))
            with builder.if_else(full, likely=True) as (whole, edge):
                with whole:
                    _emit_tile(builder, element, lanes, a_rows, a_step_, b_base, ldb_, c_rows,
                               K_, rows_, [None] * tile.vectors, acc_, accumulators)
                with edge:
                    masked()
            return context.get_dummy_value()

        return sig, codegen

    return tile_nn


def _transpose(builder, rows, lanes, below=None):
    """``rows[r][c]`` -> ``columns[c][r]`` for ``lanes`` vectors of ``lanes`` lanes.

    ``log2(lanes)`` rounds of two-vector shuffles; the round of distance ``d``
    swaps bit ``d`` of each element's row and lane where the two differ, so
    after every bit each element ``(r, c)`` stands at ``(c, r)``. The rounds
    act on separate bits, in any order; with ``below``, only those of ``d <
    below`` run (``_piece_rows`` has swapped the others while loading).
    """
    rows = list(rows)
    d = 1
    while d < (lanes if below is None else min(below, lanes)):
        low = ir.Constant(ir.VectorType(_I32, lanes),
                          [c + lanes - d if c & d else c for c in range(lanes)])
        high = ir.Constant(ir.VectorType(_I32, lanes),
                           [c + lanes if c & d else c + d for c in range(lanes)])
        swapped = list(rows)
        for r in range(lanes):
            if not r & d:
                swapped[r] = builder.shuffle_vector(rows[r], rows[r + d], low)
                swapped[r + d] = builder.shuffle_vector(rows[r], rows[r + d], high)
        rows = swapped
        d *= 2
    return rows


# Elements per 16-byte piece of a vector: the width one load can insert into a
# lane of a wider vector without a shuffle.
PIECE_BYTES = 16


def _piece_rows(builder, row_pointers, k0, vector_type):
    """An ``L x L`` block of rows ``row_pointers`` from column ``k0``, its high bits
    already transposed: ``L`` vectors, each of ``L / P`` 16-byte pieces (``P``
    elements) loaded from memory.

    Vector ``v``'s piece ``q`` is row ``q P + v % P``, columns ``k0 + v - v % P``
    onwards: the block after `_transpose`'s rounds of ``d >= P``, which the
    loads do (a piece goes into its lane of the vector as it is loaded, where a
    shuffle would take the core's one shuffle port). The rounds of ``d < P``
    remain.

    The vectors are loaded by the rows they read (``v % P``, then ``v``): the
    ``L / P`` vectors of one ``v % P`` read whole lines of the same ``L / P``
    rows, one after the other, before the next rows' lines come in. In ``v``
    order every line was read again after all ``L`` rows' lines had been, and
    rows 4 KiB apart share one L1 set: one float32 sample through
    784-1024-1024-10 took 512 us in ``v`` order against 264 in this one
    (784-1000-1000-10 209 against 146; a 2-core EPYC, Zen 4, AVX-512).
    """
    lanes = vector_type.count
    piece = max(1, min(lanes, PIECE_BYTES // _bytes(vector_type.element)))
    piece_type = ir.VectorType(vector_type.element, piece)
    vectors = [None] * lanes
    for v in sorted(range(lanes), key=lambda v: (v % piece, v)):
        column = builder.add(k0, ir.Constant(_I64, v - v % piece))
        vector = None
        for q in range(lanes // piece):
            part = _load(builder, builder.gep(row_pointers[q * piece + v % piece], [column]),
                         piece_type)
            # the piece widened to L lanes, then inserted at lanes q P: one insert
            # from memory (vinsertf32x4), where concatenating halves would shuffle
            widened = builder.shuffle_vector(part, ir.Constant(piece_type, ir.Undefined),
                                             ir.Constant(ir.VectorType(_I32, lanes),
                                                         [i % piece for i in range(lanes)]))
            if vector is None:
                vector = widened
            else:
                order = [lanes + i - q * piece if q * piece <= i < (q + 1) * piece else i
                         for i in range(lanes)]
                vector = builder.shuffle_vector(vector, widened,
                                                ir.Constant(ir.VectorType(_I32, lanes), order))
        vectors[v] = vector
    return vectors, piece


def make_rows_dot_kernel(vector_bytes: int, groups: int = 1):
    """The intrinsic ``rows_dot(W, w_at, ldw, x, out, out_at, rows, K)``: products of rows
    of ``W`` with one vector ``x``, each one FMA chain in ``k`` order.

    For ``r < rows`` (at most ``groups`` vectors' lanes ``L``)::

        acc[r] = 0
        for k in range(K):
            acc[r] = fma(W[r, k], x[k], acc[r])
        out[out_at + r] = acc[r]

    where ``W[r, k]`` is element ``w_at + r * ldw + k`` of ``W``'s buffer and
    ``x[k]`` element ``k`` of ``x``'s. Each group of ``L`` rows loads ``L x L``
    blocks of ``W`` (`_piece_rows`), finishes their transposition in registers
    (`_transpose`), and runs one vector FMA per ``k`` over its rows with
    ``x[k]`` broadcast: the chain ``tile_nn`` computes for ``out = x @ W.T``
    (``fma(W[r, k], x[k], s) == fma(x[k], W[r, k], s)``), the same bits, with
    no transposed copy of ``W``. The groups' chains are independent, so one
    waits for its FMA while another's run (one group: 784 FMAs in a row, each
    waiting for the last). The last block of a ``K`` that is not a multiple
    of ``L`` loads whole rows masked and runs only its ``K % L`` steps; rows
    past ``rows`` repeat the last row and are not stored.
    """

    @intrinsic
    def rows_dot(typingctx, W, w_at, ldw, x, out, out_at, rows, K):
        arrays = (W, x, out)
        if not all(isinstance(t, types.Array) for t in arrays):
            return None
        if len({t.dtype for t in arrays}) != 1 or W.dtype not in (types.float32, types.float64):
            return None
        sig = types.void(W, types.intp, types.intp, x, out, types.intp, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            W_, w_at_, ldw_, x_, out_, out_at_, rows_, K_ = args
            element = context.get_value_type(signature.args[0].dtype)
            lanes = vector_bytes // _bytes(element)
            vector_type = ir.VectorType(element, lanes)
            fma = _fma_function(builder.module, vector_type)
            w, xs, o = (context.make_array(signature.args[i])(context, builder, value).data
                        for i, value in ((0, W_), (3, x_), (4, out_)))
            zero = ir.Constant(vector_type, [ir.Constant(element, 0.0)] * lanes)
            group_rows, accumulators = [], []
            for g in range(groups):
                group_rows.append(_row_pointers(builder, w, w_at_, ldw_, g * lanes, lanes, rows_))
                accumulators.append(cgutils.alloca_once(builder, vector_type))
                builder.store(zero, accumulators[-1])
            L = ir.Constant(_I64, lanes)
            blocks = builder.sdiv(K_, L)
            tail = builder.sub(K_, builder.mul(blocks, L))

            def steps(k0, columns, acc, count):
                # up to L FMA steps of one group: acc = fma(W[:, k0 + c], x[k0 + c], acc)
                for c, column in enumerate(columns):
                    def step(c=c, column=column):
                        x_k = builder.load(builder.gep(xs, [builder.add(k0, ir.Constant(_I64, c))]))
                        builder.store(builder.call(fma, [column, _broadcast(builder, x_k,
                                                                            vector_type),
                                                         builder.load(acc)]), acc)
                    if count is None:
                        step()
                    else:
                        with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, c),
                                                                 count)):
                            step()

            with cgutils.for_range(builder, blocks) as loop:
                k0 = builder.mul(loop.index, L)
                for pointers, acc in zip(group_rows, accumulators):
                    loaded, piece = _piece_rows(builder, pointers, k0, vector_type)
                    steps(k0, _transpose(builder, loaded, lanes, below=piece), acc, None)
            with builder.if_then(builder.icmp_signed(">", tail, ir.Constant(_I64, 0))):
                k0 = builder.mul(blocks, L)
                mask = _lane_mask(builder, tail, lanes)
                for pointers, acc in zip(group_rows, accumulators):
                    loaded = [_load(builder, builder.gep(row, [k0]), vector_type, mask)
                              for row in pointers]
                    steps(k0, _transpose(builder, loaded, lanes), acc, tail)
            for g, acc in enumerate(accumulators):
                left = builder.sub(rows_, ir.Constant(_I64, g * lanes))
                _store(builder, builder.load(acc),
                       builder.gep(o, [builder.add(out_at_, ir.Constant(_I64, g * lanes))]),
                       _lane_mask(builder, left, lanes))
            return context.get_dummy_value()

        return sig, codegen

    return rows_dot


def _block_signature(src, dst):
    """The signature of an intrinsic ``(src, src_at, lds, dst, dst_at, ldd, rows, cols)``
    that moves a block of float32 or float64 ``src`` into ``dst`` of the same dtype
    (``transpose_block``, ``copy_block``); None for other arguments."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array)
            and src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None
    return types.void(src, types.intp, types.intp, dst, types.intp, types.intp, types.intp,
                      types.intp)


def _block_operands(context, builder, signature, args, vector_bytes):
    """The vector type and lanes of such an intrinsic, and its ``src`` and ``dst``
    data pointers."""
    element = context.get_value_type(signature.args[0].dtype)
    lanes = vector_bytes // _bytes(element)
    source, target = (context.make_array(signature.args[i])(context, builder, args[i]).data
                      for i in (0, 3))
    return ir.VectorType(element, lanes), lanes, source, target


def make_transpose_kernel(vector_bytes: int):
    """The intrinsic ``transpose_block(src, src_at, lds, dst, dst_at, ldd, rows, cols)``.

    For ``r < rows`` and ``c < cols`` (each at most one vector's lanes ``L``)::

        dst[c, r] = src[r, c]

    where ``src[r, c]`` is element ``src_at + r * lds + c`` of ``src``'s buffer
    and ``dst[c, r]`` element ``dst_at + c * ldd + r`` of ``dst``'s. Each row
    is one vector load (masked to ``cols``; rows past ``rows`` repeat the
    last), the ``L x L`` block is transposed in registers (`_transpose`), and
    each column is one vector store (masked to ``rows``): ``log2(L) / L``
    shuffles per value, where a scalar loop takes a load and a store.
    """

    @intrinsic
    def transpose_block(typingctx, src, src_at, lds, dst, dst_at, ldd, rows, cols):
        sig = _block_signature(src, dst)
        if sig is None:
            return None

        def codegen(context, builder, signature, args):
            _, src_at, lds, _, dst_at, ldd, rows, cols = args
            vector_type, lanes, source, target = _block_operands(context, builder, signature,
                                                                 args, vector_bytes)
            cols_mask = _lane_mask(builder, cols, lanes)
            loaded = [_load(builder, row, vector_type, cols_mask)
                      for row in _row_pointers(builder, source, src_at, lds, 0, lanes, rows)]
            rows_mask = _lane_mask(builder, rows, lanes)
            for c, column in enumerate(_transpose(builder, loaded, lanes)):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, c), cols)):
                    at = builder.add(dst_at, builder.mul(ir.Constant(_I64, c), ldd))
                    _store(builder, column, builder.gep(target, [at]), rows_mask)
            return context.get_dummy_value()

        return sig, codegen

    return transpose_block


def make_copy_kernel(vector_bytes: int):
    """The intrinsic ``copy_block(src, src_at, lds, dst, dst_at, ldd, rows, cols)``.

    For ``r < rows`` and ``c < cols``::

        dst[r, c] = src[r, c]

    where ``src[r, c]`` is element ``src_at + r * lds + c`` of ``src``'s buffer
    and ``dst[r, c]`` element ``dst_at + r * ldd + c`` of ``dst``'s: each row
    copied a vector at a time, the last vector masked. The copies of ``b``
    into panels (``gemm_into``, the epoch's ``W`` for its backward product)
    take one call per panel; numba's loops over slices of rows took 1.8 s more
    to compile, its loops over elements ran at 7-14 GB/s in L1 (not vectorised
    where an offset was in the index; views of each row, 38 GB/s, cost 0.3 s
    more to compile the epoch).
    """

    @intrinsic
    def copy_block(typingctx, src, src_at, lds, dst, dst_at, ldd, rows, cols):
        sig = _block_signature(src, dst)
        if sig is None:
            return None

        def codegen(context, builder, signature, args):
            _, src_at, lds, _, dst_at, ldd, rows, cols = args
            vector_type, lanes, source, target = _block_operands(context, builder, signature,
                                                                 args, vector_bytes)
            width = ir.Constant(_I64, lanes)
            whole = builder.sdiv(cols, width)
            tail = builder.sub(cols, builder.mul(whole, width))
            tail_mask = _lane_mask(builder, tail, lanes)
            with cgutils.for_range(builder, rows) as row:
                source_row = builder.add(src_at, builder.mul(row.index, lds))
                target_row = builder.add(dst_at, builder.mul(row.index, ldd))
                with cgutils.for_range(builder, whole) as vector:
                    c = builder.mul(vector.index, width)
                    value = _load(builder, builder.gep(source, [builder.add(source_row, c)]),
                                  vector_type)
                    _store(builder, value, builder.gep(target, [builder.add(target_row, c)]))
                with builder.if_then(builder.icmp_signed(">", tail, ir.Constant(_I64, 0))):
                    c = builder.mul(whole, width)
                    value = _load(builder, builder.gep(source, [builder.add(source_row, c)]),
                                  vector_type, tail_mask)
                    _store(builder, value, builder.gep(target, [builder.add(target_row, c)]),
                           tail_mask)
            return context.get_dummy_value()

        return sig, codegen

    return copy_block


# Float64 partial sums of a chunk of squares (make_squares_kernel): element i of the
# chunk goes into sum i % SQUARE_LANES.
SQUARE_LANES = 8


def make_squares_kernel(chunks: int):
    """The intrinsic ``lane_squares(src, at, stride, steps, out)``: the squares of
    ``chunks`` chunks of ``src``, by lane, in float64.

    For ``g < chunks`` and ``l < SQUARE_LANES`` (8)::

        out[8 g + l] = 0
        for s in range(steps):
            out[8 g + l] += float64(src[at + g * stride + 8 s + l]) ** 2

    each square rounded, then added (no FMA), in ``s`` order: every lane of every
    chunk is one chain of additions of its own, as a scalar loop with eight sums
    writes it, so the bits are that loop's. The chunks' chains run side by side
    (one ``<8 x double>`` accumulator each), so that their additions overlap.
    ``src`` is float32 or float64, ``out`` float64 with room for ``8 * chunks``.
    """

    @intrinsic
    def lane_squares(typingctx, src, at, stride, steps, out):
        if not (isinstance(src, types.Array) and src.dtype in (types.float32, types.float64)
                and isinstance(out, types.Array) and out.dtype == types.float64):
            return None
        sig = types.void(src, types.intp, types.intp, types.intp, out)

        def codegen(context, builder, signature, args):
            src_, at, stride, steps, out_ = args
            element = context.get_value_type(signature.args[0].dtype)
            double = ir.DoubleType()
            loaded_type = ir.VectorType(element, SQUARE_LANES)
            sums_type = ir.VectorType(double, SQUARE_LANES)
            source = context.make_array(signature.args[0])(context, builder, src_).data
            target = context.make_array(signature.args[4])(context, builder, out_).data
            zero = ir.Constant(sums_type, [ir.Constant(double, 0.0)] * SQUARE_LANES)
            sums = []
            for _ in range(chunks):
                slot = cgutils.alloca_once(builder, sums_type)
                builder.store(zero, slot)
                sums.append(slot)
            with cgutils.for_range(builder, steps) as loop:
                step_at = builder.add(at, builder.mul(loop.index,
                                                      ir.Constant(_I64, SQUARE_LANES)))
                for g, slot in enumerate(sums):
                    chunk_at = builder.add(step_at, builder.mul(ir.Constant(_I64, g), stride))
                    value = _load(builder, builder.gep(source, [chunk_at]), loaded_type)
                    if element != double:
                        value = builder.fpext(value, sums_type)
                    builder.store(builder.fadd(builder.load(slot), builder.fmul(value, value)),
                                  slot)
            for g, slot in enumerate(sums):
                _store(builder, builder.load(slot),
                       builder.gep(target, [ir.Constant(_I64, g * SQUARE_LANES)]))
            return context.get_dummy_value()

        return sig, codegen

    return lane_squares


PEAK_CHAINS = 12


def make_peak_kernel(vector_bytes: int):
    """``fma_chains(n, x)``: ``PEAK_CHAINS`` independent vector FMA chains of ``n`` steps.

    Each step is one ``acc = fma(acc, x, x)`` per chain, all in registers, in
    ``x``'s dtype (float32 or float64): the machine's FMA limit,
    ``2 * lanes * PEAK_CHAINS * n`` flops per call. Returns a lane of the sum,
    so that nothing is optimised away.
    """

    @intrinsic
    def fma_chains(typingctx, n, x):
        if not (isinstance(n, types.Integer) and x in (types.float32, types.float64)):
            return None

        def codegen(context, builder, signature, args):
            steps, value = args
            element = context.get_value_type(signature.args[1])
            lanes = vector_bytes // _bytes(element)
            vector_type = ir.VectorType(element, lanes)
            function = _fma_function(builder.module, vector_type)
            x_vector = _broadcast(builder, value, vector_type)
            chains = []
            for i in range(PEAK_CHAINS):
                slot = cgutils.alloca_once(builder, vector_type)
                offset = ir.Constant(vector_type, [ir.Constant(element, float(i))] * lanes)
                builder.store(builder.fadd(x_vector, offset), slot)
                chains.append(slot)
            with cgutils.for_range(builder, steps):
                for slot in chains:
                    builder.store(builder.call(function, [builder.load(slot), x_vector, x_vector]),
                                  slot)
            total = builder.load(chains[0])
            for slot in chains[1:]:
                total = builder.fadd(total, builder.load(slot))
            return builder.extract_element(total, ir.Constant(_I32, 0))

        return x(types.intp, x), codegen

    return fma_chains


# Atomics for the barrier at which the fused epoch's worker threads meet.


def _int64_array(array) -> bool:
    return isinstance(array, types.Array) and array.dtype == types.int64


def _element_pointer(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``array[index] += value`` as one sequentially consistent step; the old value."""
    if not _int64_array(array):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", pointer, args[2], "seq_cst")

    return types.int64(array, types.intp, types.int64), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]``, read atomically (sequentially consistent)."""
    if not _int64_array(array):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "seq_cst", 8)

    return types.int64(array, types.intp), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``array[index] = value``, written atomically (sequentially consistent)."""
    if not _int64_array(array):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], pointer, "seq_cst", 8)
        return context.get_dummy_value()

    return types.void(array, types.intp, types.int64), codegen


@intrinsic
def spin_pause(typingctx, spins):
    """A waiting thread's pause: the CPU's ``pause`` hint, and from ``spins`` >= 1000 on,
    ``sched_yield`` too, so that a waiter on a busy machine gives up its core."""
    if not isinstance(spins, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        module = builder.module
        if ll.get_process_triple().startswith(("x86_64", "i386", "i686")):
            pause = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        if os.name == "posix":
            long_wait = builder.icmp_signed(">=", args[0], ir.Constant(args[0].type, 1000))
            with builder.if_then(long_wait):
                sched_yield = cgutils.get_or_insert_function(
                    module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
                builder.call(sched_yield, [])
        return context.get_dummy_value()

    return types.void(spins), codegen


@intrinsic
def cycle_counter(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``: the TSC on x86-64, which
    runs at a constant rate), for timing the parts of a compiled loop; 0 where the
    target has none."""

    def codegen(context, builder, signature, args):
        read = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I64, []),
                                              "llvm.readcyclecounter")
        return builder.call(read, [])

    return types.int64(), codegen


@intrinsic
def prefetch_row(typingctx, array, row):
    """Ask the CPU to bring row ``row`` of the C-contiguous 2-D ``array`` into its
    caches (``llvm.prefetch`` of each 64-byte line, for reading): a hint, which
    changes no value, for a row read a little later."""
    if not (isinstance(array, types.Array) and array.ndim == 2
            and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0])
        byte = ir.IntType(8).as_pointer()
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, _I32, _I32, _I32]),
            "llvm.prefetch.p0")
        stride = builder.extract_value(data.strides, 0)
        start = builder.gep(builder.bitcast(data.data, byte), [builder.mul(args[1], stride)])
        size = builder.mul(builder.extract_value(data.shape, 1),
                           ir.Constant(_I64, context.get_abi_sizeof(
                               context.get_data_type(signature.args[0].dtype))))
        with cgutils.for_range_slice(builder, ir.Constant(_I64, 0), size,
                                     ir.Constant(_I64, 64)) as (offset, _):
            # read (0), keep in every cache level (3), data (1)
            builder.call(hint, [builder.gep(start, [offset]), ir.Constant(_I32, 0),
                                ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


@intrinsic
def block_view(typingctx, array, offset, shape):
    """The C-contiguous view of ``shape`` (a tuple of integers) whose first element is
    element ``offset`` of C-contiguous ``array``'s buffer: ``array.reshape(-1)[offset:
    offset + prod(shape)].reshape(shape)``, its array structure written directly (data
    pointer, shape, strides), where numba's slice and reshape compile a function of
    checks. The caller guarantees it lies within ``array``."""
    if not (isinstance(array, types.Array) and array.layout == "C"
            and isinstance(offset, types.Integer) and isinstance(shape, types.UniTuple)
            and isinstance(shape.dtype, types.Integer)):
        return None
    view = array.copy(ndim=shape.count)

    def codegen(context, builder, signature, args):
        # (imported here: numba.np.arrayobj imports much of numba's lowering, which
        # numba loads anyway before it compiles, on the thread that readies it)
        from numba.np.arrayobj import populate_array

        source = context.make_array(signature.args[0])(context, builder, args[0])
        result = context.make_array(signature.return_type)(context, builder)
        sizes = cgutils.unpack_tuple(builder, args[2], shape.count)
        sizes = [context.cast(builder, size, shape.dtype, types.intp) for size in sizes]
        strides = [source.itemsize]
        for size in sizes[:0:-1]:
            strides.insert(0, builder.mul(strides[0], size))
        offset_ = context.cast(builder, args[1], signature.args[1], types.intp)
        populate_array(result, data=builder.gep(source.data, [offset_]), shape=sizes,
                       strides=strides, itemsize=source.itemsize, meminfo=source.meminfo,
                       parent=source.parent)
        return impl_ret_borrowed(context, builder, signature.return_type, result._getvalue())

    return view(array, offset, shape), codegen
