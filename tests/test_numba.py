"""What only the numba backend has: its product kernel, row-exact results, and predict_one.

``test_backends.py`` checks ``forward``, ``backward`` and ``softmax`` against
the reference and ``test_fused_epoch.py`` the fused epoch; these tests check
that a row's result is the same bits whatever surrounds it.
"""

import copy
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.backends import load_backend

numba = pytest.importorskip("numba")
backend = load_backend("numba")
from fastmlp.backends.numba import _kernels  # noqa: E402  (after the importorskip)

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def _edges(size, step):
    # sizes around one and two multiples of step, and 1
    return sorted({1, step - 1, step, step + 1, 2 * step + 1} - {0})


R = _kernels.TILE_ROWS
COLS32 = _kernels.TILE_VECTORS * _kernels.VECTOR_BYTES // 4
SHAPES = sorted({(n, m, K) for n in _edges(0, R) + [_kernels.ROW_TILE + 1]
                 for m in [1, 10, COLS32 // 2 + 3, COLS32, COLS32 + 1, 2 * COLS32 + 5]
                 for K in [1, 7, _kernels.K_BLOCK + 3]})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, m, K", SHAPES + [(0, 5, 3), (4, 6, 0), (64, 128, 784)])
def test_gemm_equals_a_times_b_at_every_edge_of_the_tile(n, m, K, dtype):
    # Rows, columns and k around the tile's rows, vector columns and k passes.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, K)).astype(dtype)
    b = rng.standard_normal((K, m)).astype(dtype)
    out = np.full((n, m), np.nan, dtype)
    _kernels.gemm(a, b, out, 0, n)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * np.sqrt(K))


def test_gemm_is_one_fma_chain_per_element_in_k_order():
    # Each element is fma(a[i, k], b[k, j], s) for k = 0, 1, ...: emulated here
    # one k at a time in float64, where a float32 product is exact and the sum
    # rounds once before its rounding to float32 (that double rounding can
    # differ from one FMA in rare ties; it does not for these inputs, and a sum
    # in another order would differ in many elements).
    dtype = np.float32
    rng = np.random.default_rng(3)
    a = rng.standard_normal((13, 40)).astype(dtype)
    b = rng.standard_normal((40, 37)).astype(dtype)
    out = np.empty((13, 37), dtype)
    _kernels.gemm(a, b, out, 0, 13)
    s = np.zeros((13, 37), dtype)
    for k in range(40):
        s = (np.outer(a[:, k].astype(np.float64), b[k].astype(np.float64))
             + s.astype(np.float64)).astype(dtype)
    np.testing.assert_array_equal(out, s)


def test_gemm_rows_are_the_same_bits_in_any_row_range():
    # Each element is one FMA chain whichever tile, cache tile and pass it falls in.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((101, 300)).astype(np.float32)
    b = rng.standard_normal((300, 10)).astype(np.float32)
    whole = np.empty((101, 10), np.float32)
    _kernels.gemm(a, b, whole, 0, 101)
    for i0, i1 in [(0, 1), (1, 2), (3, 10), (47, 101), (100, 101)]:
        part = np.full((101, 10), np.nan, np.float32)
        _kernels.gemm(a, b, part, i0, i1)
        np.testing.assert_array_equal(part[i0:i1], whole[i0:i1])
        assert np.isnan(part[:i0]).all() and np.isnan(part[i1:]).all()  # nothing else written
    for j in range(10):  # and each column of b alone: a masked edge of one lane
        column = np.empty((101, 1), np.float32)
        _kernels.gemm(a, np.ascontiguousarray(b[:, j:j + 1]), column, 0, 101)
        np.testing.assert_array_equal(column[:, 0], whole[:, j])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, K, m", [(1, 1, 1), (7, 3, 17), (64, 128, 784), (13, 300, 10),
                                     (128, 129, 64), (5, 0, 9)])
def test_gemm_of_a_transposed_operand_read_in_place_gives_the_same_bits(dtype, n, K, m):
    # a_transposed: a is stored (K, n) and the product is a.T @ b, read with its
    # strides swapped; each element is the same FMA chain as from a copy of a.T.
    rng = np.random.default_rng(n + K + m)
    stored = rng.standard_normal((K, n)).astype(dtype)
    b = rng.standard_normal((K, m)).astype(dtype)
    want = np.empty((n, m), dtype)
    _kernels.gemm(np.ascontiguousarray(stored.T), b, want, 0, n)
    none = np.empty((0, 0), dtype)
    for i0, i1 in [(0, n), (n // 2, n)]:
        got = np.full((n, m), np.nan, dtype)
        _kernels.gemm_into(stored, b, got, i0, i1, np.int64(_kernels.PLAIN), np.empty(0, dtype),
                           none, np.empty(0, np.int64), _kernels.TRANSPOSED, m,
                           _kernels.epilogues(dtype))
        np.testing.assert_array_equal(got[i0:i1], want[i0:i1])
        assert np.isnan(got[:i0]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_transposed_operand_of_many_rows_and_long_k_is_packed_with_the_same_bits(dtype):
    # From PACK_ROWS rows and k of 2 k blocks, gemm_into copies a transposed a into
    # micro-panels of a tile's rows first (the weight gradient at batch 1000): the same
    # FMA chains as a.T read in place a few rows at a time (no copies) and as a copy of
    # a.T, on a last row tile and a last micro-panel cut short, and columns of a last
    # tile one vector wide.
    K, n = 2 * _kernels.K_BLOCK + 5, _kernels.PACK_ROWS + _kernels.TILE_ROWS + 1
    m = 2 * _kernels.TILE_VECTORS * _kernels.VECTOR_BYTES // np.dtype(dtype).itemsize + 3
    rng = np.random.default_rng(3)
    stored = rng.standard_normal((K, n)).astype(dtype)
    b = rng.standard_normal((K, m)).astype(dtype)
    want = np.empty((n, m), dtype)
    _kernels.gemm(np.ascontiguousarray(stored.T), b, want, 0, n)
    untimed = (np.empty(0, dtype), np.empty((0, 0), dtype), np.empty(0, np.int64))

    def product(pieces):
        got = np.full((n, m), np.nan, dtype)
        for i0 in range(0, n, pieces):
            _kernels.gemm_into(stored, b, got, i0, min(i0 + pieces, n),
                               np.int64(_kernels.PLAIN), *untimed, _kernels.TRANSPOSED, m,
                               _kernels.epilogues(dtype))
        return got

    np.testing.assert_array_equal(product(n), want)  # packed
    np.testing.assert_array_equal(product(_kernels.TILE_ROWS + 1), want)  # in place
    np.testing.assert_allclose(want, stored.T.astype(np.float64) @ b,
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", [(128, 784, 128), (13, 300, 10), (7, 161, 70)])
def test_activations_as_columns_give_the_same_bits(dtype, n, n_in, n_out):
    # The products of a step with activations stored (units, batch) instead of
    # (batch, units) (bench/formulations.py): the forward W @ a.T broadcasts W
    # where a @ W.T loads W.T as vectors, and the backward W.T @ delta.T reads W
    # in place, transposed. Each element is the same FMA chain in the same k order
    # (fma(W[j, k], a[i, k]) == fma(a[i, k], W[j, k])): the same bits, transposed.
    rng = np.random.default_rng(n + n_in + n_out)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    a = rng.standard_normal((n, n_in)).astype(dtype)
    delta = rng.standard_normal((n, n_out)).astype(dtype)
    untimed = (np.empty(0, dtype), np.empty((0, 0), dtype), np.empty(0, np.int64))

    def product(A, b, rows, transposed):
        out = np.empty(((A.shape[1] if transposed else A.shape[0]), b.shape[1]), dtype)
        _kernels.gemm_into(A, b, out, 0, out.shape[0], np.int64(_kernels.PLAIN), *untimed,
                           _kernels.TRANSPOSED if transposed else _kernels.NOT_TRANSPOSED,
                           b.shape[1], _kernels.epilogues(dtype))
        return out

    rows_z = product(a, np.ascontiguousarray(W.T), n, False)            # a @ W.T
    columns_z = product(W, np.ascontiguousarray(a.T), n_out, False)     # W @ a.T
    np.testing.assert_array_equal(columns_z, rows_z.T)
    rows_d = product(delta, W, n, False)                                # delta @ W
    columns_d = product(W, np.ascontiguousarray(delta.T), n_in, True)   # W.T @ delta.T
    np.testing.assert_array_equal(columns_d, rows_d.T)
    np.testing.assert_allclose(rows_d, delta.astype(np.float64) @ W,
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_rows_are_the_same_bits_in_any_batch_and_thread_count(dtype, random_problem):
    # Batches below and above the size at which products split across threads.
    params, x, _ = random_problem((784, 128, 128, 10), 3000, dtype)
    whole = backend.forward(params, x)[0]
    saved = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            np.testing.assert_array_equal(backend.forward(params, x)[0], whole)
            for rows in [slice(0, 1), slice(5, 12), slice(100, 400), slice(1000, 3000)]:
                np.testing.assert_array_equal(backend.forward(params, x[rows])[0], whole[rows])
            np.testing.assert_array_equal(backend.forward(params, x[17])[0], whole[17])
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_over_several_k_passes_is_the_same_bits_however_split(dtype, monkeypatch,
                                                                       random_problem):
    # A batch of several K_BLOCK passes: each weight gradient continues its FMA
    # chains pass after pass, whichever threads compute its rows and however many.
    from concurrent.futures import ThreadPoolExecutor

    from fastmlp.backends.numba import _api

    n = 4 * _kernels.K_BLOCK + 300
    params, x, _ = random_problem((60, 24, 16, 5), n, dtype)
    y = np.arange(n) % 5
    cache = backend.forward(params, x)[1]
    want = [g for layer in backend.backward(params, cache, y) for g in layer]
    reference = load_backend("matmul").backward(params, cache, y)
    for got, expected in zip(want, [g for layer in reference for g in layer], strict=True):
        np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype] * 1e-2)

    def gradients():
        return [g for layer in backend.backward(params, cache, y) for g in layer]

    saved = numba.get_num_threads()
    try:
        for work in (_api.PARALLEL_WORK, 1):  # as shipped (no split here), then every split
            monkeypatch.setattr(_api, "PARALLEL_WORK", work)
            for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
                numba.set_num_threads(threads)
                for got, expected in zip(gradients(), want, strict=True):
                    np.testing.assert_array_equal(got, expected)
            with ThreadPoolExecutor(3) as pool:
                for result in pool.map(lambda _: gradients(), range(4)):
                    for got, expected in zip(result, want, strict=True):
                        np.testing.assert_array_equal(got, expected)
    finally:
        numba.set_num_threads(saved)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(784, 128, 128, 10), (12, 9, 4), (12, 10, 7, 8, 5),
                                   (33, 17, 40, 3),
                                   # rows a multiple of ROWS_DOT_ALIAS long on AVX-512 and AVX2
                                   (30, 512, 1024, 7)])
def test_predict_one_is_forward_of_a_batch_of_one(sizes, dtype, random_problem):
    params, x, _ = random_problem(sizes, 3, dtype)
    saved = copy.deepcopy(params), x.copy()
    for sample in (x[0], np.repeat(x[1], 2)[::2]):  # contiguous and strided
        probs = backend.predict_one(params, sample)
        assert probs.shape == (sizes[-1],) and probs.dtype == dtype
        np.testing.assert_array_equal(probs, backend.forward(params, sample[None])[0][0])
        np.testing.assert_allclose(probs, load_backend("loop").forward(params, sample)[0],
                                   rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * 1e-2)
    np.testing.assert_array_equal(x, saved[1])
    for layer, layer_saved in zip(params, saved[0]):
        for a, b in zip(layer, layer_saved):
            np.testing.assert_array_equal(a, b)


@numba.njit
def _rows_dot_all(W, x, out, grouped):
    # rows_dot one vector of rows at a time, or rows_dot_groups as many as it takes
    n_out, K = W.shape
    lanes = _kernels.VECTOR_BYTES // W.itemsize
    step = _kernels.ROWS_DOT_GROUPS * lanes if grouped else lanes
    for j in range(0, n_out, step):
        if grouped:
            _kernels.rows_dot_groups(W, j * K, K, x, out, j, min(step, n_out - j), K)
        else:
            _kernels.rows_dot(W, j * K, K, x, out, j, min(step, n_out - j), K)


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_out", [1, 7, 8, 9, 16, 17, 33, 40])
@pytest.mark.parametrize("K", [0, 1, 3, 8, 15, 16, 17, 40])
def test_rows_dot_is_the_tiles_fma_chain_at_every_edge(n_out, K, dtype, grouped):
    # W @ x by rows, W transposed in registers (partly by its loads): the bits of
    # gemm's x @ W.T, close to float64 NumPy, for row counts and K around multiples
    # of every vector width, and groups of rows partly or wholly past the last
    rng = np.random.default_rng(n_out * 100 + K)
    W = rng.standard_normal((n_out, K)).astype(dtype)
    x = rng.standard_normal(K).astype(dtype)
    got = np.full(n_out, np.nan, dtype)
    _rows_dot_all(W, x, got, grouped)
    want = np.full((1, n_out), np.nan, dtype)
    _kernels.gemm(x.reshape(1, K), np.ascontiguousarray(W.T), want, 0, 1)
    np.testing.assert_array_equal(got, want[0])
    np.testing.assert_allclose(got, W.astype(np.float64) @ x, rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype] * np.sqrt(max(K, 1)))


def test_predict_one_rejects_batches_and_mismatched_shapes(random_problem):
    params, x, _ = random_problem((12, 9, 4), 3, np.float64)
    with pytest.raises(ValueError, match="one sample of shape"):
        backend.predict_one(params, x[:2])
    with pytest.raises(ValueError, match="layer shapes do not match"):
        backend.predict_one(params, x[0, :5])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_raw_image_is_predicted_as_its_row_of_a_batch(dtype):
    # MLP.predict_proba of one sample runs predict_one with the scaling in the
    # kernel; a batch scales first. Both round the same way.
    model = MLP((784, 32, 10), dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 784), dtype=np.uint8)
    model.scaler.fit(images)
    from fastmlp import use_backend

    with use_backend("numba"):
        batch = model.predict_proba(images)
        for i in (0, 3, 19):
            one = model.predict_proba(images[i])
            assert one.dtype == dtype
            np.testing.assert_array_equal(one, batch[i])
            np.testing.assert_array_equal(model.predict_proba(images[i:i + 1]), batch[i:i + 1])


def test_a_long_first_call_logs_the_compile_notice_once_if_numba_compiles(monkeypatch,
                                                                            caplog):
    import logging
    import time

    from numba.core.compiler_lock import global_compiler_lock

    from fastmlp.backends.numba import _compile_helper
    from fastmlp.backends.numba import _compile_notice as notice

    class Kernel:  # a dispatcher not yet called in this process
        pass

    monkeypatch.setattr(notice, "DELAY", 0.05)
    monkeypatch.setattr(notice, "POLL", 0.01)
    monkeypatch.setattr(notice, "_printed", notice.threading.Event())
    monkeypatch.setattr(notice, "_done", set())
    caplog.set_level(logging.DEBUG, logger="fastmlp")
    kernel = Kernel()
    with notice.compile_notice(kernel):
        pass  # quick: nothing logged
    with notice.compile_notice(kernel), global_compiler_lock:
        time.sleep(0.3)  # compiling, but its first call has returned: never timed again
    with notice.compile_notice(Kernel()):
        time.sleep(0.3)  # long, but numba compiles nothing: a cached kernel at work
    assert not notice.compiling()
    assert caplog.record_tuples == []
    with notice.compile_notice(Kernel()):
        time.sleep(0.1)  # numba starts compiling after DELAY: the notice then
        with global_compiler_lock:
            assert notice.compiling()
            time.sleep(0.2)
    with notice.compile_notice(Kernel()), global_compiler_lock:
        time.sleep(0.3)  # once per process
    assert caplog.record_tuples == [
        ("fastmlp.backends.numba._compile_notice", logging.WARNING, notice.MESSAGE)]
    monkeypatch.setattr(_compile_helper, "_waiting", 1)  # waiting for the helper's kernels
    assert notice.compiling()


@pytest.mark.parametrize("setup, stderr", [
    ("", "{MESSAGE}\n"),  # no logging configured: Python's last resort shows it
    ("logging.getLogger('fastmlp').setLevel(logging.ERROR)", ""),
    ("logging.basicConfig(format='%(name)s %(levelname)s %(message)s')",
     "fastmlp.backends.numba._compile_notice WARNING {MESSAGE}\n"),
], ids=["default", "silenced", "routed"])
def test_a_library_user_sees_the_compile_notice_unless_logging_says_otherwise(setup, stderr):
    from fastmlp.backends.numba import _compile_notice as notice

    script = "\n".join([
        "import logging, time",
        "from fastmlp.backends.numba import _compile_notice as notice",
        setup,
        "from numba.core.compiler_lock import global_compiler_lock",
        "notice.DELAY = 0.05",
        "with notice.compile_notice(object()), global_compiler_lock:",
        "    time.sleep(0.5)",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stderr == stderr.format(MESSAGE=notice.MESSAGE)
    assert result.stdout == ""


def test_large_outputs_reuse_memory_nothing_refers_to_and_never_memory_in_use(random_params):
    # forward's large outputs (>= REUSE_BYTES) come from buffers the thread keeps: a buffer
    # is handed out again only once no array refers to it
    from fastmlp.backends.numba import _api

    params = random_params((8, 128, 3), np.float32)
    rows = _api.REUSE_BYTES // (128 * 4) + 1
    x1, x2 = (np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)
              for seed in (1, 2))
    held = backend.forward(params, x1)[1][1]  # the hidden layer's output, kept
    before = held.copy()
    address = held.__array_interface__["data"][0]
    other = backend.forward(params, x2)[1][1]
    np.testing.assert_array_equal(held, before)  # not overwritten while held
    assert other.__array_interface__["data"][0] != address
    del held, other
    again = backend.forward(params, x1)[1][1]
    np.testing.assert_array_equal(again, before)
    assert again.__array_interface__["data"][0] == address  # its memory, reused
    view = again[::2]
    del again
    reused = backend.forward(params, x2)[1][1]
    assert reused.__array_interface__["data"][0] != address  # a view keeps it in use
    np.testing.assert_array_equal(view, before[::2])


LANES32 = _kernels.VECTOR_BYTES // 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, m", [(1, 1), (3, 5), (LANES32, LANES32),
                                  (LANES32 + 1, 2 * LANES32 - 1),
                                  (128, 784), (784, 128), (10, 128), (128, 10)])
def test_transpose_rows_moves_every_value_and_nothing_else(n, m, dtype):
    # blocks of one vector's lanes square, transposed in registers, masked at the
    # edges: dst[:, i] = src[i] for the rows asked for, and no other value written
    rng = np.random.default_rng(n * m)
    src = rng.standard_normal((n, m)).astype(dtype)
    for i0, i1 in ((0, n), (n // 3, n - n // 4)):
        dst = np.full((m, n), -7.0, dtype)
        _kernels.transpose_rows(src, dst, n, i0, i1)
        expected = np.full((m, n), -7.0, dtype)
        expected[:, i0:i1] = src[i0:i1].T
        np.testing.assert_array_equal(dst, expected)


def _from_panels(panels, n_out, n_in):
    """``W.T`` back from its copy in ``gemm_into``'s panel layout (padding dropped)."""
    width = panels.shape[1]
    count = panels.shape[0] // n_in
    return panels.reshape(count, n_in, width).transpose(1, 0, 2).reshape(n_in, -1)[:, :n_out]


def _to_panels(b, width):
    """``b`` ``(K, m)`` in ``gemm_into``'s panel layout, its padding NaN."""
    K, m = b.shape
    count = -(-m // width)
    padded = np.full((K, count * width), np.nan, b.dtype)
    padded[:, :m] = b
    return np.ascontiguousarray(padded.reshape(K, count, width).transpose(1, 0, 2)
                                ).reshape(count * K, width)


def test_the_paneled_copy_of_a_layer_is_reused_per_thread():
    from fastmlp.backends.numba import _api

    W = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = _api._paneled(W)
    assert first.shape == (4, _kernels.panel_width(np.float32))
    np.testing.assert_array_equal(_from_panels(first, 3, 4), W.T)
    again = _api._paneled(W + 1)
    assert again is first  # the thread's scratch for this shape, not fresh memory
    np.testing.assert_array_equal(_from_panels(again, 3, 4), W.T + 1)
    assert _api._paneled(W, slot=1) is not first  # each layer of a pass has its own
    other = []
    thread = threading.Thread(target=lambda: other.append(_api._paneled(W)))
    thread.start()
    thread.join()
    assert other[0] is not first  # and each thread its own


def test_the_paneled_copies_kept_stay_within_their_bounds(monkeypatch):
    from fastmlp.backends.numba import _api

    monkeypatch.setattr(_api, "PANEL_KEEP_BYTES", 1000)
    big = np.ones((20, 20), np.float32)  # 20 x 64 floats as panels: not kept
    assert _api._paneled(big) is not _api._paneled(big)
    for n in range(1, 2 * _api.PANELS_KEPT):
        _api._paneled(np.ones((3, n), np.float32))
    assert 0 < len(_api._kept.panels) <= _api.PANELS_KEPT


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, m", [(1, 1), (3, 5), (LANES32, LANES32),
                                  (LANES32 + 1, 2 * LANES32 - 1), (100, 130), (10, 128), (200, 7)])
def test_transpose_rows_into_panels_moves_every_value_and_nothing_else(n, m, dtype):
    # src (n, m) goes into panels of its transpose, width a multiple of the lanes:
    # src[i, k] lands at ((i // width) * m + k) * width + i % width
    rng = np.random.default_rng(n + m)
    src = rng.standard_normal((n, m)).astype(dtype)
    lanes = _kernels.VECTOR_BYTES // np.dtype(dtype).itemsize
    for width in sorted({lanes, 2 * lanes, _kernels.panel_width(dtype)}):
        count = -(-n // width)
        # row ranges from and to anywhere: a worker's share of a layer's units
        for i0, i1 in ((0, n), (n // 3 // lanes * lanes, n - n // 4), (n // 3, n - n // 5)):
            dst = np.full((count * m, width), -7.0, dtype)
            _kernels.transpose_rows(src, dst, width, i0, i1)
            expected = np.full((m, count * width), -7.0, dtype)
            expected[:, i0:i1] = src[i0:i1].T
            expected = expected.reshape(m, count, width).transpose(1, 0, 2).reshape(-1, width)
            np.testing.assert_array_equal(dst, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_out, n_in", [(1, 8), (5, 24), (10, 128), (70, 256)])
def test_rows_into_panels_moves_every_value_and_nothing_else(n_out, n_in, dtype):
    # rows j0:j1 of W (n_out, n_in) into gemm_into's layout of W as b, panels of width
    # columns from element at: W[j, c] lands at at + ((c // width) * n_out + j) * width
    # + c % width; widths of one vector and of one vector and a part (copy_block's
    # masked tail), and the epoch's own
    rng = np.random.default_rng(n_out * n_in)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    lanes = _kernels.VECTOR_BYTES // np.dtype(dtype).itemsize
    at = 5
    for width in sorted({w for w in (lanes, lanes + lanes // 2, _kernels.panel_width(dtype), 8)
                         if n_in % w == 0}):
        for j0, j1 in ((0, n_out), (n_out // 3, n_out - n_out // 4)):
            panels = np.full(at + n_out * n_in + 3, -7.0, dtype)
            _kernels.rows_into_panels(W, panels, at, width, j0, j1)
            expected = np.full(at + n_out * n_in + 3, -7.0, dtype)
            block = expected[at:at + n_out * n_in].reshape(n_in // width, n_out, width)
            block[:, j0:j1] = W[j0:j1].reshape(j1 - j0, n_in // width, width).transpose(1, 0, 2)
            np.testing.assert_array_equal(panels, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, K, m", [(1, 1, 1), (7, 5, 3), (13, 40, 10), (50, 300, 100),
                                     (64, 784, 128), (30, 257, 200), (6, 3, 129)])
def test_gemm_of_b_in_panels_gives_the_same_bits(dtype, n, K, m):
    # the panel layout changes where b's elements lie, not any element's FMA chain
    rng = np.random.default_rng(n * K + m)
    a = rng.standard_normal((n, K)).astype(dtype)
    b = rng.standard_normal((K, m)).astype(dtype)
    want = np.empty((n, m), dtype)
    _kernels.gemm(a, b, want, 0, n)
    none = np.empty((0, 0), dtype)
    for width in (_kernels.panel_width(dtype), 2 * _kernels.panel_width(dtype)):
        panels = _to_panels(b, width)
        for i0, i1 in [(0, n), (n // 2, n)]:
            got = np.full((n, m), np.nan, dtype)
            _kernels.gemm_into(a, panels, got, i0, i1, np.int64(_kernels.PLAIN),
                               np.empty(0, dtype), none, np.empty(0, np.int64),
                               _kernels.NOT_TRANSPOSED, width, _kernels.epilogues(dtype))
            np.testing.assert_array_equal(got[i0:i1], want[i0:i1])
            assert np.isnan(got[:i0]).all()


def test_the_products_work_arrays_start_on_a_cache_line():
    # a vector load of an aligned row never spans two cache lines (20 % faster products)
    from fastmlp.backends.numba import _api, _fused

    for shape, dtype in (((7,), np.float32), ((3, 5), np.float64), ((0,), np.float32)):
        array = _api.aligned_empty(shape, dtype)
        assert array.shape == shape and array.dtype == dtype and array.flags.c_contiguous
        assert array.size == 0 or array.ctypes.data % _api.ALIGNMENT == 0
    theta = np.zeros(50, np.float32)
    buffers = _fused.EpochBuffers.allocate(16, 12, 20, theta, theta.copy(), np.empty(0))
    for name in ("xb", "z", "d", "wt", "s1t", "grad"):
        assert getattr(buffers, name).ctypes.data % _api.ALIGNMENT == 0, name
    assert _api._paneled(np.ones((5, 3), np.float32)).ctypes.data % _api.ALIGNMENT == 0


def test_the_kept_output_buffers_stay_within_their_bounds(random_params, monkeypatch):
    from fastmlp.backends.numba import _api

    monkeypatch.setattr(_api, "REUSE_KEPT_BYTES", 3 * _api.REUSE_BYTES)
    params = random_params((8, 128, 3), np.float32)
    held = []
    for extra in range(6):  # outputs of growing size, all held: each needs a new buffer
        rows = _api.REUSE_BYTES // (128 * 4) + 1 + extra
        held.append(backend.forward(params, np.ones((rows, 8), np.float32))[1][1])
    kept = _api._kept.buffers
    assert 1 <= len(kept) <= _api.REUSE_KEPT
    assert sum(b.nbytes for b in kept) <= 3 * _api.REUSE_BYTES + _api.REUSE_BYTES // 16
    assert all(np.array_equal(h[0], held[-1][0]) for h in held)  # none overwritten


def test_preparing_numba_on_a_thread_leaves_compiles_alone(monkeypatch):
    # fastmlp train starts numba's one-time preparation on a thread while it reads
    # the data: a compile meanwhile waits for numba's lock and gives the same result,
    # the preparation runs once per process, and an error in it reaches no one (the
    # first compile prepares numba itself and reports what goes wrong).
    from numba.core.registry import cpu_target

    from fastmlp.backends.numba import _warm

    monkeypatch.setattr(_warm, "_started", threading.Event())
    thread = backend.prepare_in_background()
    assert thread is not None and backend.prepare_in_background() is None

    @numba.njit
    def twice(v):
        return 2 * v

    assert twice(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    thread.join()

    def broken():
        raise RuntimeError("refresh failed")

    monkeypatch.setattr(_warm, "_started", threading.Event())
    monkeypatch.setattr(cpu_target.target_context, "refresh", broken)
    hooked = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    backend.prepare_in_background().join()
    assert hooked == []


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_predict_one_sees_every_change_to_the_layers(dtype):
    # predict_one reuses the tuples of arrays of the thread's previous call for the
    # same (W, b) tuples; it must still see new values in place, a layer replaced,
    # and (for float16 parameters, converted to float32 for the kernel) never keep a
    # converted copy of values that have since changed (float16 computes in float64,
    # as NumPy's result type of the layers is no float the kernels take).
    kernel_dtype = np.float64 if dtype == np.float16 else dtype
    rng = np.random.default_rng(3)
    params = [(rng.standard_normal((o, i)).astype(dtype), rng.standard_normal(o).astype(dtype))
              for i, o in ((6, 5), (5, 3))]
    x = rng.standard_normal(6).astype(np.float32)

    def expected():
        return backend.forward([(W.astype(kernel_dtype), b.astype(kernel_dtype))
                                for W, b in params], x.astype(kernel_dtype))[0]

    np.testing.assert_array_equal(backend.predict_one(params, x), expected())
    params[0][0][:] *= -1  # in place
    np.testing.assert_array_equal(backend.predict_one(params, x), expected())
    params[1] = (params[1][0] * 2, params[1][1])  # a layer replaced
    np.testing.assert_array_equal(backend.predict_one(params, x), expected())
    params[0][1][:] = 1  # in place again, after the replacement
    np.testing.assert_array_equal(backend.predict_one(params, x), expected())
    layers = [list(layer) for layer in params]  # lists, whose arrays can be swapped
    np.testing.assert_array_equal(backend.predict_one(layers, x), expected())
    params[0] = (params[0][0] * 3, params[0][1])
    layers[0][0] = params[0][0]
    np.testing.assert_array_equal(backend.predict_one(layers, x), expected())
    np.testing.assert_array_equal(backend.predict_one(iter(params), x), expected())


def test_prefetching_a_row_changes_nothing():
    # the batch gather asks for rows ahead of the one it copies: a hint, for any
    # dtype and row length, leaving every value as it was
    from fastmlp.backends.numba import _simd

    @numba.njit
    def ask(x, rows):
        for r in rows:
            _simd.prefetch_row(x, r)
        return x.sum()

    for x in (np.arange(3 * 1000, dtype=np.uint8).reshape(3, 1000),
              np.arange(12.0).reshape(4, 3), np.ones((2, 0), np.float32)):
        before = x.copy()
        assert ask(x, np.arange(len(x))) == before.sum()
        np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_a_block_view_is_numpys_slice_and_reshape_and_shares_the_memory(dtype):
    # the kernels' views of their flat vectors: block_view(a, offset, shape) is
    # a.reshape(-1)[offset:offset + prod(shape)].reshape(shape), a view into a
    from fastmlp.backends.numba import _simd

    @numba.njit
    def views(a, offset, rows, cols):
        block, run = _simd.block_view(a, offset, (rows, cols)), _simd.block_view(a, offset,
                                                                                 (rows * cols,))
        block[rows - 1, cols - 1] = -1  # through the view, into a
        return block.copy(), run.copy(), block.shape, block.strides

    for a, offset, rows, cols in [(np.arange(30), 0, 5, 6), (np.arange(30), 7, 2, 11),
                                  (np.arange(24).reshape(4, 6), 6, 3, 5),
                                  (np.arange(30), 29, 1, 1)]:
        a = a.astype(dtype)
        want = a.reshape(-1)[offset:offset + rows * cols].reshape(rows, cols).copy()
        want[-1, -1] = -1
        block, run, shape, strides = views(a, offset, rows, cols)
        np.testing.assert_array_equal(block, want)
        np.testing.assert_array_equal(run, want.reshape(-1))
        assert shape == (rows, cols) and strides == (cols * a.itemsize, a.itemsize)
        assert a.reshape(-1)[offset + rows * cols - 1] == -1


# Trains for one epoch through the fused epoch with numba's cache as the test sets it
# (and, with "broken", a helper that exits at once without compiling), then runs
# forward; prints a digest of the results, whether a compile helper started, and
# how gemm_into and forward_rows came to this process: loaded (hits) or compiled here.
HELPER_SCRIPT = """
import hashlib, json, shutil, sys
import numpy as np
from fastmlp import optim
from fastmlp.backends import load_backend
from fastmlp.backends.numba import _compile_helper, _kernels
if sys.argv[1] == "broken":
    sys.executable = shutil.which("false")
nb = load_backend("numba")
rng = np.random.default_rng(0)
sizes = (37, 29, 10)
params = [((rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(np.float32),
           np.zeros(o, np.float32)) for i, o in zip(sizes, sizes[1:])]
x, y = rng.integers(0, 256, (203, 37)).astype(np.uint8), rng.integers(0, 10, 203)
out = nb.train_epoch(params, x, y, 50, optim.Adam(1e-2), np.full(5, 1e-2), scale=1 / 255)
probs, _ = nb.forward(params, (x / 255).astype(np.float32))
digest = hashlib.sha256(repr(out).encode() + probs.tobytes())
for W, b in params:
    digest.update(W.tobytes() + b.tobytes())
print(json.dumps({"digest": digest.hexdigest(), "helper": _compile_helper._started,
                  "loaded": [sum(kernel.stats.cache_hits.values())
                             for kernel in (_kernels.gemm_into, _kernels.forward_rows)],
                  "compiled": [sum(kernel.stats.cache_misses.values())
                               for kernel in (_kernels.gemm_into, _kernels.forward_rows)]}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="runs the POSIX tool 'false' as a helper")
def test_a_compile_helper_compiles_the_callees_meanwhile_and_changes_no_bits(tmp_path):
    # A first epoch starts a second process that compiles the worker's callees and
    # the forward pass while this one compiles the worker, and this one loads them;
    # switched off, or failing, this process compiles them itself; a second run
    # finds everything cached and starts none. The results are the same bits.
    import json

    from fastmlp.backends.numba import _compile_helper

    temporary = tmp_path / "tmp"  # where the processes claim kernels
    temporary.mkdir()

    def run(case, cache, setting=None):
        env = {key: value for key, value in os.environ.items() if key != _compile_helper.SETTING}
        env.update(NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="2", TMPDIR=str(temporary))
        if setting is not None:
            env[_compile_helper.SETTING] = setting
        done = subprocess.run([sys.executable, "-c", HELPER_SCRIPT, case], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    # each kernel comes to this process once, from the helper through numba's cache or
    # compiled here (the helper had not begun it); the claims are gone at exit
    helped = run("helped", tmp_path / "helped", setting="1")  # whatever the load
    assert helped["helper"] and [loaded + compiled for loaded, compiled in
                                 zip(helped["loaded"], helped["compiled"])] == [1, 1]
    assert not list(temporary.iterdir())
    again = run("helped", tmp_path / "helped", setting="1")
    assert not again["helper"] and again["loaded"] == [1, 1]
    off = run("off", tmp_path / "off", setting="0")
    assert not off["helper"] and off["compiled"] == [1, 1]
    broken = run("broken", tmp_path / "broken", setting="1")
    assert broken["helper"] and broken["compiled"] == [1, 1]
    assert helped["digest"] == again["digest"] == off["digest"] == broken["digest"]


# Told ahead (compile_ahead) of a float32 epoch trained by Adam, then trains one in
# argv[1]'s dtype; prints whether a helper started early, whether it still runs the
# epoch's kernels (a helper told of another epoch is stopped) and a digest of the result.
AHEAD_SCRIPT = """
import hashlib, json, sys
import numpy as np
from fastmlp import optim
from fastmlp.backends import load_backend
from fastmlp.backends.numba import _compile_helper
nb = load_backend("numba")
optimizer = optim.Adam(1e-2)
started = nb.compile_ahead("float32", optimizer, 2)
assert optimizer.m is None  # left as it was
rng = np.random.default_rng(0)
sizes = (37, 29, 10)
params = [((rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(sys.argv[1]),
           np.zeros(o, sys.argv[1])) for i, o in zip(sizes, sizes[1:])]
x, y = rng.integers(0, 256, (203, 37)).astype(np.uint8), rng.integers(0, 10, 203)
out = nb.train_epoch(params, x, y, 50, optimizer, np.full(5, 1e-2), scale=1 / 255)
digest = hashlib.sha256(repr(out).encode())
for W, b in params:
    digest.update(W.tobytes() + b.tobytes())
print(json.dumps({"started": started, "helping": bool(_compile_helper._promised),
                  "stopped": _compile_helper._process is not None
                             and _compile_helper._process.poll() is not None,
                  "digest": digest.hexdigest()}))
"""


def test_a_first_run_told_ahead_starts_the_helper_before_the_epoch(tmp_path):
    # compile_ahead starts the helper at once where numba's cache holds no compiled epoch
    # (not where it holds one); a helper told of another epoch than the one that comes
    # is stopped, and this process compiles what it needs. The same bits either way.
    import json

    from fastmlp.backends.numba import _compile_helper

    def run(dtype, cache):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="2",
                   **{_compile_helper.SETTING: "1"})
        done = subprocess.run([sys.executable, "-c", AHEAD_SCRIPT, dtype], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    first = run("float32", tmp_path / "float32")
    assert first["started"] and first["helping"]
    again = run("float32", tmp_path / "float32")
    assert not again["started"] and again["digest"] == first["digest"]
    other = run("float64", tmp_path / "float64")
    assert other["started"] and not other["helping"] and other["stopped"]


# Told ahead of an epoch that never comes (as a first `fastmlp train` whose data cannot
# be read): prints, after the helper module's own exit handler, how its helper ended.
NEVER_SCRIPT = """
import atexit, json
def report():
    from fastmlp.backends.numba import _compile_helper
    print(json.dumps({"started": _compile_helper._process is not None,
                      "returncode": _compile_helper._process.returncode}), flush=True)
atexit.register(report)  # (before the helper module's: runs after it)
from fastmlp import optim
from fastmlp.backends import load_backend
load_backend("numba").compile_ahead("float32", optim.SGD(0.1), 3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a killed process's status is POSIX's")
def test_a_helper_told_of_an_epoch_that_never_comes_is_stopped_at_exit(tmp_path):
    # it would compile the whole list before the process could end
    import json

    from fastmlp.backends.numba import _compile_helper

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **{_compile_helper.SETTING: "1"})
    done = subprocess.run([sys.executable, "-c", NEVER_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["started"] and ended["returncode"] < 0  # killed, not waited for


def test_each_kernel_is_compiled_by_the_first_process_to_claim_it(tmp_path, monkeypatch):
    # While it waits for a kernel the helper has begun, this process compiles the last
    # ones the helper has not (claiming each: the helper then skips it) until the one it
    # waits for is done; a kernel it asks for that the helper has not begun, it claims,
    # and its caller compiles it.
    from fastmlp.backends.numba import _compile_helper as helper

    compiled = []

    def compile_it(name):
        compiled.append(name)
        if name == "c":  # meanwhile the helper finishes "a"
            helper._finished.add("a")

    names = ["a", "b", "c", "d"]
    monkeypatch.setattr(helper, "_promised", {name: lambda name=name: compile_it(name)
                                              for name in names})
    monkeypatch.setattr(helper, "_finished", set())
    monkeypatch.setattr(helper, "_mine", set())
    monkeypatch.setattr(helper, "_claims", str(tmp_path))
    monkeypatch.setattr(helper, "_exited", False)
    assert helper._claim(str(tmp_path), "a") is True  # the helper begins "a"
    helper.wait_for("a")
    assert compiled == ["d", "c"] and helper._mine == {"c", "d"}
    assert helper._claim(str(tmp_path), "c") is False  # the helper skips "c"
    helper.wait_for("b")  # not begun: claimed here, for the caller to compile
    assert compiled == ["d", "c"] and helper._mine == {"b", "c", "d"}
    assert helper._claim(str(tmp_path), "b") is False
    helper.wait_for("d")  # compiled here already: nothing to wait for
    assert compiled == ["d", "c"]
    # no directory, or one nothing can be written in: no claims (the helper compiles all)
    assert helper._claim(None, "a") is None
    assert helper._claim(str(tmp_path / "missing"), "a") is None


def test_kernels_that_borrow_their_arrays_leave_reference_counts_alone(random_problem):
    # The kernels compiled without numba's reference counting (_kernels._BORROWING: the
    # epoch's worker and most of its callees, the forward pass, the softmax) borrow the
    # arrays they take. Called from Python, directly and through the forward pass and
    # the fused epoch, again and again, they leave every array's count where it was:
    # neither a leak nor a reference given back that was never taken.
    from fastmlp import optim

    params, x, y = random_problem((12, 9, 4), 50, np.float32)
    z = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    out = np.empty_like(z)
    arrays = [x, y, z, out] + [array for layer in params for array in layer]

    def calls():
        _kernels.softmax_rows(z, out, 0, 50)
        _kernels.transpose_rows(z, out.reshape(4, 50), 50, 0, 50)
        backend.forward(params, x)
        backend.train_epoch(params, x, y, 16, optim.Adam(1e-3), np.full(4, 1e-3))

    calls()  # compiled, and any copy kept per thread made
    before = [sys.getrefcount(array) for array in arrays]
    for _ in range(20):
        calls()
    assert [sys.getrefcount(array) for array in arrays] == before


def test_an_epoch_is_handed_only_the_callees_it_calls():
    # the loss of the other kind, and the L2 term's sum but for scikit-learn's rules, are
    # null addresses (nothing compiled); a ReLU network with a softmax output gets the
    # epilogue of ReLU alone, any other network the family's table
    k = _kernels
    default = k.epoch_callees(np.float32, k.SGD_RULE)
    spelled_out = k.epoch_callees(np.float32, k.SGD_RULE, k.RELU, k.SOFTMAX, True)
    assert [(type(c), c.kernel) for c in default] == [(type(c), c.kernel) for c in spelled_out]
    uncalled = {field for field, callee in default._asdict().items()
                if isinstance(callee, k.Uncalled)}
    assert uncalled == {"output_loss_rows", "squared_weights_chunks"}
    assert default.output_loss_rows.address == default.squared_weights_chunks.address == 0
    assert default.epilogue_rows.kernel is k._relu_epilogue_rows
    other = k.epoch_callees(np.float64, k.SKLEARN_ADAM_RULE, k.TANH, k.LOGISTIC, False)
    uncalled = {field for field, callee in other._asdict().items()
                if isinstance(callee, k.Uncalled)}
    assert uncalled == {"softmax_cross_entropy_rows"}
    assert other.epilogue_rows.kernel is k._epilogue_rows
    assert k.epoch_callees(np.float32, k.SGD_RULE, k.RELU, k.IDENTITY).epilogue_rows.kernel \
        is k._epilogue_rows
    # one numba type for a callee and its null address: the worker compiles once
    assert k.typeof(default.output_loss_rows) == k.typeof(
        k.epoch_callees(np.float32, k.SGD_RULE, labels=False).output_loss_rows)
    assert k.labels_loss(k.SOFTMAX, np.empty((0, 0))) and not k.labels_loss(
        k.SOFTMAX, np.ones((3, 2))) and not k.labels_loss(k.LOGISTIC, np.empty((0, 0)))


# One epoch of a ReLU + softmax network on labels by SGD in a process of its own, with an
# empty numba cache and no helper, then one of a tanh + logistic network on targets by
# scikit-learn's Adam: prints which kernels each compiled.
COMPILED_SCRIPT = """
import json
import numpy as np
from fastmlp import optim
from fastmlp.backends import load_backend
from fastmlp.backends.numba import _kernels as k
nb = load_backend("numba")
rng = np.random.default_rng(0)
params = [(rng.standard_normal((9, 6)).astype(np.float32), np.zeros(9, np.float32)),
          (rng.standard_normal((3, 9)).astype(np.float32), np.zeros(3, np.float32))]
x, y = rng.standard_normal((40, 6)).astype(np.float32), rng.integers(0, 3, 40)
names = ["_softmax_cross_entropy_rows", "_output_loss_rows", "_squared_weights_chunks",
         "_relu_epilogue_rows", "_epilogue_rows"]
compiled = lambda: [name for name in names if getattr(k, name).overloads]
nb.train_epoch(params, x, y, 10, optim.SGD(0.1), np.full(4, 0.1))
first = compiled()
nb.train_epoch(params, x, rng.random((40, 3)).astype(np.float32), 10,
               optim.SklearnAdam(0.01, alpha=1e-3), np.full(4, 0.01), activation="tanh",
               output="logistic")
print(json.dumps([first, compiled()]))
"""


def test_a_first_epoch_compiles_only_the_callees_it_calls(tmp_path):
    import json

    from fastmlp.backends.numba import _compile_helper

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), **{_compile_helper.SETTING: "0"})
    done = subprocess.run([sys.executable, "-c", COMPILED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout.splitlines()[-1])
    assert first == ["_softmax_cross_entropy_rows", "_relu_epilogue_rows"]
    assert second == ["_softmax_cross_entropy_rows", "_output_loss_rows",
                      "_squared_weights_chunks", "_relu_epilogue_rows", "_epilogue_rows"]


def test_a_compile_helper_needs_a_free_core(monkeypatch):
    # a helper on a busy core costs its start and saves nothing: it starts where the
    # kernels may use two threads and half a core is idle now (the cores watched for a
    # moment), or, where the cores cannot be watched, the load average leaves half a core
    from fastmlp.backends.numba import _compile_helper

    for threads, idle, free in [(2, 1.0, True), (2, 0.5, True), (2, 0.4, False),
                                (1, 2.0, False), (4, 0.6, True), (4, 0.0, False)]:
        monkeypatch.setattr(_compile_helper, "num_threads", lambda threads=threads: threads)
        monkeypatch.setattr(_compile_helper, "_idle_cores", lambda idle=idle: idle)
        monkeypatch.setattr(_compile_helper.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
        assert _compile_helper._core_free() is free, (threads, idle)
    monkeypatch.setattr(_compile_helper, "_idle_cores", lambda: None)
    for threads, load, free in [(2, 0.9, True), (2, 1.5, True), (2, 1.6, False),
                                (1, 0.0, False), (4, 3.2, True), (4, 3.6, False)]:
        monkeypatch.setattr(_compile_helper, "num_threads", lambda threads=threads: threads)
        monkeypatch.setattr(_compile_helper.os, "getloadavg", lambda load=load: (load, 0, 0))
        assert _compile_helper._core_free() is free, (threads, load)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux's /proc/stat")
def test_the_idle_cores_are_read_from_the_cores_this_process_may_use():
    from fastmlp.backends.numba import _compile_helper

    cores = len(os.sched_getaffinity(0))
    idle = _compile_helper._idle_cores(0.05)
    assert idle is not None and 0.0 <= idle <= cores
    stop = time.monotonic() + 0.3

    def spin():
        while time.monotonic() < stop:
            pass

    spinner = threading.Thread(target=spin)  # one core kept busy while they are watched
    spinner.start()
    idle = _compile_helper._idle_cores(0.2)
    spinner.join()
    assert idle is not None and idle <= cores - 0.5


def _lane_order_squares(chunk):
    # the L2 chunk sum's order, spelled out in NumPy: element i's square (in float64)
    # into sum i % 8 in order, those past the last multiple of 8 into sum 0, then
    # ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    whole = len(chunk) - len(chunk) % 8
    lanes = np.zeros(8)
    for row in chunk[:whole].astype(np.float64).reshape(-1, 8):
        lanes = lanes + row * row
    for value in chunk[whole:].astype(np.float64):
        lanes[0] = lanes[0] + value * value
    s = lanes
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_l2_chunk_sums_add_the_squares_in_their_stated_order(dtype):
    # whole chunks summed four side by side (lane_squares), a layer's last chunk (short,
    # with a tail past a multiple of 8) alone: each chunk's sum is the same bits as the
    # order written out in NumPy
    rng = np.random.default_rng(1)
    shapes = [(33, 700), (13, 77)]  # 23100 weights: 5 whole chunks and a short one; 1001
    rows, at = [], 0
    for n_out, n_in in shapes:
        rows.append((n_out, n_in, at, at + n_out * n_in, 0, 0))
        at += n_out * n_in + n_out
    layout = np.array(rows, np.int64)
    theta = (rng.standard_normal(at) * rng.uniform(1e-3, 1e3, at)).astype(dtype)
    sums = np.full(_kernels.penalty_chunks(layout), np.nan)
    _kernels._squared_weights_chunks(theta, theta, layout, sums, 0, 1)
    chunk = _kernels.PENALTY_CHUNK
    want = [_lane_order_squares(theta[w_at:w_at + o * i][begin:begin + chunk])
            for o, i, w_at, *_ in rows for begin in range(0, o * i, chunk)]
    assert len(want) == 6 + 1
    np.testing.assert_array_equal(sums, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_l2_sum_is_the_same_bits_however_many_workers_share_its_chunks(dtype):
    # scikit-learn's L2 term in the fused epoch: sum(W^2) of every layer, the first
    # layer's from its working copy W.T, in chunks of PENALTY_CHUNK weights (layers of
    # 2, 3 and 1 chunks here, the last of each short) that any number of workers share
    rng = np.random.default_rng(0)
    shapes = [(70, 101), (90, 70), (10, 90)]
    rows, at = [], 0
    for n_out, n_in in shapes:
        rows.append((n_out, n_in, at, at + n_out * n_in, 0, 0))
        at += n_out * n_in + n_out
    layout = np.array(rows, np.int64)
    theta = rng.standard_normal(at).astype(dtype)
    wt = rng.standard_normal(at).astype(dtype)
    chunks = _kernels.penalty_chunks(layout)
    assert chunks == 2 + 2 + 1 == sum(-(-o * i // _kernels.PENALTY_CHUNK) for o, i in shapes)
    sums = {}
    for tasks in (1, 2, 3, chunks, chunks + 2):
        partial = np.full(chunks, np.nan)
        for task in range(tasks):
            _kernels._squared_weights_chunks(theta, wt, layout, partial, task, tasks)
        sums[tasks] = partial
        np.testing.assert_array_equal(partial, sums[1])
    blocks = [wt[:70 * 101]] + [theta[w_at:w_at + o * i] for o, i, w_at, *_ in rows[1:]]
    want = sum(float(np.sum(block.astype(np.float64) ** 2)) for block in blocks)
    assert sums[1].sum() == pytest.approx(want, rel=1e-13)
    assert _kernels._squared_weights(sums[1]) == pytest.approx(want, rel=1e-13)
    # a first layer whose forward runs by columns keeps no W.T: its W in theta is
    # summed in W.T's order, the same sums to the bit
    by_columns = layout.copy()
    by_columns[0, _kernels.COLUMNS] = 1
    theta_columns = theta.copy()
    theta_columns[:70 * 101] = wt[:70 * 101].reshape(101, 70).T.ravel()
    for tasks in (1, 3):
        partial = np.full(chunks, np.nan)
        for task in range(tasks):
            _kernels._squared_weights_chunks(theta_columns, np.full_like(wt, np.nan), by_columns,
                                             partial, task, tasks)
        np.testing.assert_array_equal(partial, sums[1])
