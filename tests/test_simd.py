"""The numba backend's explicit-SIMD kernels: the same bits on every target, tile and
blocking, one compiled signature per parameter dtype, and worker threads that never hang.

``test_numba.py`` checks the product kernel against NumPy at every edge of the
tile on this machine's target; these tests compile it for other targets,
tiles and block sizes in subprocesses (each with a cache of its own) and
compare the bits.
"""

import hashlib
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fastmlp import optim
from fastmlp.backends import load_backend

numba = pytest.importorskip("numba")
backend = load_backend("numba")
from fastmlp.backends.numba import _api, _blocking, _elementary, _kernels, _simd  # noqa: E402

# Trains a small network for one epoch (SGD, then Adam) through the fused
# epoch, runs forward, backward and predict_one, then the same for three other
# activations and outputs, and prints the tile and the k block it compiled for and
# a digest of every result. Its layers of 37, 29 and 70 inputs and batches of 50
# rows (the weight gradients' k) cross k blocks of 7 and 16, its 70 units a panel
# of 64 columns.
SCRIPT = textwrap.dedent("""
    import hashlib
    import sys
    import numpy as np
    from fastmlp import optim
    from fastmlp.backends import load_backend
    from fastmlp.backends.numba import _kernels
    nb = load_backend("numba")
    rng = np.random.default_rng(0)
    sizes = (37, 29, 70, 128, 10)  # (128 inputs: W in panels for delta @ W, by columns)
    x = rng.integers(0, 256, (203, 37)).astype(np.uint8)
    y = rng.integers(0, 10, 203)
    digests = []
    for dtype in map(np.dtype, sys.argv[1:]):
        digest = hashlib.sha256()
        params = [((rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(dtype),
                   (0.1 * rng.standard_normal(o)).astype(dtype))
                  for i, o in zip(sizes, sizes[1:])]
        for opt in (optim.SGD(0.05, momentum=0.9), optim.Adam(1e-2)):
            out = nb.train_epoch(params, x, y, 50, opt, np.full(5, opt.learning_rate),
                                 scale=1 / 255, offset=-0.5)
            digest.update(repr(out).encode())
        scaled = (x * dtype.type(1 / 255) + dtype.type(-0.5)).astype(dtype)
        probs, cache = nb.forward(params, scaled)
        arrays = [p for layer in params for p in layer] + [probs]
        arrays += [g for layer in nb.backward(params, cache, y) for g in layer]
        arrays.append(nb.predict_one(params, x[7], 1 / 255, -0.5))
        # the other activations and outputs: table entries of the same kernels
        one_hot = np.eye(10, dtype=dtype)[y]
        for activation, output in (("tanh", "logistic"), ("logistic", "exp"),
                                   ("leaky_relu", "identity")):
            out = nb.train_epoch(params, x, one_hot, 50, optim.Adam(1e-2), np.full(5, 1e-2),
                                 scale=1 / 255, offset=-0.5, activation=activation,
                                 output=output)
            digest.update(repr(out).encode())
            outputs, cache = nb.forward(params, scaled, activation=activation, output=output)
            arrays += [outputs, nb.predict_one(params, x[7], 1 / 255, -0.5,
                                               activation=activation, output=output)]
            arrays += [g for layer in nb.backward(params, cache, one_hot, activation=activation)
                       for g in layer]
        for a in arrays:
            digest.update(np.ascontiguousarray(a).tobytes())
        digests.append(f"{dtype}:{digest.hexdigest()}")
    print(_kernels.TILE, _kernels.K_BLOCK, *digests)
""")

# Other targets and tiles than the machine's (the machine as it is: RUNS).
TARGETS = {
    "haswell": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma"},
    # an x86-64 CPU without FMA (or AVX): llvm.fma becomes the C library's fma,
    # exact by definition, so the same bits, slower
    "no fma": {"NUMBA_CPU_NAME": "x86-64",
               "NUMBA_CPU_FEATURES": "+sse2,-avx,-avx2,-fma,-avx512f"},
    "tile 1x1x128": {"FASTMLP_NUMBA_TILE": "1x1x128"},
    "tile 5x3x256": {"FASTMLP_NUMBA_TILE": "5x3x256"},
}

# Every number of _blocking.Blocking away from its default, small and odd (a k block of
# 7 splits every product's k; 2 tiles per panel; tiles of 7 and 5 rows; every forward
# product by columns, 7 rows at a time; column blocks of up to 2 vectors on one-vector
# tiles; b of 29 and 50 rows one tile's columns at a time through every row tile, the
# epilogues after, and copied into panels) and large (one pass over k, rows beyond any
# batch here, no product by columns, every block wider than a vector on the tile, b
# whole, predict_one's rows three vectors at a time but one where k is a multiple of
# 8), with other tiles and targets besides (forward products by columns from 60 units:
# the first layer's by rows, the others' by columns).
BLOCKINGS = {
    "blocking small": {"FASTMLP_NUMBA_BLOCKING": "k_block=7,row_tile=7,forward_tile=5,"
                       "column_tile_rows=5,narrow_vectors=2,rows_dot_groups=1,rows_dot_alias=1,"
                       "panel_tiles=2,gather_ahead=0,columns_from=1,column_rows=7,"
                       "b_block=13000,pack_rows=1,pack_stride=8,refresh_bytes=1"},
    "blocking large": {"FASTMLP_NUMBA_BLOCKING": "k_block=4096,row_tile=4096,"
                       "forward_tile=4096,column_tile_rows=32,narrow_vectors=1,rows_dot_groups=3,"
                       "rows_dot_alias=8,panel_tiles=3,gather_ahead=64,columns_from=1000000,"
                       "b_block=1099511627776,refresh_bytes=1099511627776"},
    "k_block 16 on haswell": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma",
                              "FASTMLP_NUMBA_BLOCKING": "k_block=16,columns_from=60"},
    "k_block 1 tile 5x3x256": {"FASTMLP_NUMBA_TILE": "5x3x256",
                               "FASTMLP_NUMBA_BLOCKING": "k_block=1,panel_tiles=5"},
}

# What the subprocesses must not inherit from the test's environment.
SETTINGS = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "FASTMLP_NUMBA_TILE",
            "FASTMLP_NUMBA_BLOCKING")


# The runs, and the dtypes each trains: the machine as it is in both (the reference of
# every other), every other target and tile in float32, the blockings that change the
# most in both and the others in float32 (float64's tile is half float32's columns: other
# edges).
RUNS = {"as the machine is": ({}, ("float32", "float64")),
        **{name: (env, ("float32",)) for name, env in TARGETS.items()},
        **{name: (env, ("float32", "float64") if name.startswith("blocking") else ("float32",))
           for name, env in BLOCKINGS.items()}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``{name: (tile, k_block, {dtype: digest})}`` of each of `RUNS`, two subprocesses at
    a time, the longest first (each compiles for half a minute or more per dtype, much of
    it in one thread): one pool for both tests below, so that the machine as it is is
    compiled once and no core waits while the other compiles a last run."""
    folder = tmp_path_factory.mktemp("simd")
    order = sorted(RUNS, key=lambda name: -len(RUNS[name][1]))
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_run, RUNS[name][0], folder / name.replace(" ", "-"),
                                     RUNS[name][1])
                   for name in order}
        return {name: futures[name].result() for name in RUNS}


def _run(environment, cache, dtypes):
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    # (no compile helper: two subprocesses already keep both cores compiling)
    env.update(environment, NUMBA_CACHE_DIR=str(cache), FASTMLP_NUMBA_COMPILE_HELPER="0")
    done = subprocess.run([sys.executable, "-c", SCRIPT, *dtypes], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    tile, k_block, *digests = done.stdout.split()
    return tile, int(k_block), dict(digest.split(":") for digest in digests)


def _same_bits(results, names):
    """Assert that every run of ``names`` hashed each dtype it trained as the machine as it
    is did."""
    reference = results["as the machine is"][2]
    digests = {name: results[name][2] for name in names}
    for name, by_dtype in digests.items():
        assert by_dtype == {dtype: reference[dtype] for dtype in by_dtype}, (name, digests)


def test_every_target_and_tile_gives_the_same_bits(results):
    # Weights after SGD and Adam epochs, forward, backward and predict_one,
    # compiled for AVX-512 (this machine, where it has it), AVX2 + FMA, SSE2
    # without FMA and two
    # forced tile shapes (one lane; an odd 5x3): each element is one FMA chain
    # in k order whatever the vector width and tile.
    assert results["haswell"][0] == "6x2x256bit"
    assert results["no fma"][0] == "6x2x128bit"
    assert results["tile 1x1x128"][0] == "1x1x128bit"
    assert results["tile 5x3x256"][0] == "5x3x256bit"
    _same_bits(results, TARGETS)


def test_every_blocking_gives_the_same_bits(results):
    # The same results with every block size forced away from the machine's: a
    # product's k split into passes of 1, 7 or 16, or taken in one; other row tiles,
    # panels, one-vector tiles and rows_dot groups. Each element stays one FMA chain in
    # k order, whatever the blocking.
    k_blocks = {name: k_block for name, (_, k_block, _) in results.items()}
    assert k_blocks["as the machine is"] == _blocking.BLOCKING.k_block
    assert k_blocks["blocking small"] == 7
    assert k_blocks["k_block 16 on haswell"] == 16
    assert results["k_block 16 on haswell"][0] == "6x2x256bit"
    assert k_blocks["k_block 1 tile 5x3x256"] == 1
    assert set(results["blocking small"][2]) == {"float32", "float64"}
    _same_bits(results, BLOCKINGS)


@pytest.mark.parametrize("name, features, isa", [
    ("skylake-avx512", "", "avx512"), ("znver4", "", "avx512"), ("haswell", "", "avx2"),
    ("znver2", "", "avx2"), ("sandybridge", "", "generic"), ("generic", "", "generic"),
    ("cortex-a72", "", "generic"), ("x", "+avx2,+fma,+avx512f", "avx512"),
    ("x", "+avx2,+fma,-avx512f", "avx2"), ("x", "+avx2,-fma", "generic"),
])
def test_the_tile_follows_the_target(name, features, isa):
    assert _simd.target_isa(name, features) == isa


@pytest.mark.parametrize("value", ["6x2", "0x2x256", "6x9x256", "6x2x1024", "big"])
def test_a_bad_tile_override_names_the_variable(value, monkeypatch):
    monkeypatch.setenv("FASTMLP_NUMBA_TILE", value)
    with pytest.raises(ValueError, match="FASTMLP_NUMBA_TILE"):
        _blocking.choose_tile()


def _signatures():
    return {name: set(map(str, kernel.signatures)) for name in dir(_kernels)
            if isinstance(kernel := getattr(_kernels, name), numba.core.registry.CPUDispatcher)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_of_any_kind_compile_no_new_kernel(dtype):
    # After one call of each entry point, inputs of other dtypes, layouts and
    # read-only flags are brought to the same kind of array before the kernels.
    # (Inputs whose dtype NumPy promotes with the parameters' to float64, int64
    # say, compute in float64 as every backend does: that compiles float64 once.)
    rng = np.random.default_rng(0)
    params = [((0.1 * rng.standard_normal((o, i))).astype(dtype), np.zeros(o, dtype))
              for i, o in zip((20, 16, 4), (16, 4))]
    x = rng.random((9, 20)).astype(dtype)
    y = np.arange(9) % 4
    probs, cache = backend.forward(params, x)
    backend.backward(params, cache, y)
    backend.predict_one(params, x[0])
    backend.softmax(probs)
    before = _signatures()
    readonly = x.copy()
    readonly.flags.writeable = False
    frozen = [(W.copy(), b.copy()) for W, b in params]
    for W, b in frozen:
        W.flags.writeable = b.flags.writeable = False
    kinds = [x.astype(np.int16), (255 * x).astype(np.uint8), x.astype(np.float16),
             np.asfortranarray(x), readonly, x[::1, ::1], np.repeat(x, 2, axis=1)[:, ::2]]
    for kind in kinds:
        np.testing.assert_array_equal(backend.forward(params, kind)[0],
                                      backend.forward(params, np.array(kind, dtype))[0])
        backend.predict_one(params, kind[0].astype(np.int64), 1.0, 0.0)
        backend.predict_one(params, kind[0], 1.0, 0.0)
        backend.predict_one(frozen, kind[0])
        backend.forward(frozen, kind)
        backend.backward(params, [np.asfortranarray(c) for c in cache], y.astype(np.int32))
        backend.softmax(np.asfortranarray(probs))
    assert _signatures() == before


def test_the_fused_epoch_compiles_once_per_dtype_for_any_kind_of_x():
    rng = np.random.default_rng(1)
    params = [((0.1 * rng.standard_normal((o, i))).astype(np.float32), np.zeros(o, np.float32))
              for i, o in zip((20, 16), (16, 4))]
    pixels = rng.integers(0, 256, (40, 20)).astype(np.uint8)
    y = np.arange(40) % 4
    rates = np.full(5, 0.01)
    backend.train_epoch(params, pixels, y, 8, optim.SGD(0.01), rates)
    backend.train_epoch(params, pixels.astype(np.float32), y, 8, optim.SGD(0.01), rates)
    before = _signatures()
    readonly = pixels.copy()
    readonly.flags.writeable = False
    for kind in (readonly, np.asfortranarray(pixels), readonly.astype(np.float32),
                 pixels[:, ::-1][:, ::-1]):
        backend.train_epoch(params, kind, y, 8, optim.SGD(0.01), rates)
    assert _signatures() == before


def test_a_failing_worker_stops_the_others(monkeypatch):
    # Worker 1 raises before its first barrier; worker 0, waiting there, must
    # leave when the epoch is aborted, and the error reach the caller.
    if backend.num_threads() < 2:  # OMP_NUM_THREADS=1, one CPU, or one numba thread
        pytest.skip("needs two worker threads")
    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)  # workers on threads, however small
    real = _kernels.train_epoch_worker

    def flaky(worker, *args):
        if worker == 1:
            time.sleep(0.2)
            raise RuntimeError("worker 1 failed")
        return real(worker, *args)

    rng = np.random.default_rng(0)
    params = [((0.1 * rng.standard_normal((o, i))).astype(np.float32), np.zeros(o, np.float32))
              for i, o in zip((20, 16), (16, 4))]
    x, y = rng.random((64, 20)).astype(np.float32), np.arange(64) % 4
    backend.train_epoch(params, x, y, 32, optim.SGD(0.1), np.full(2, 0.1))  # compiled first
    monkeypatch.setattr(_kernels, "train_epoch_worker", flaky)
    saved = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(backend.train_epoch, params, x, y, 32, optim.SGD(0.1),
                                 np.full(2, 0.1))
            with pytest.raises(RuntimeError, match="worker 1 failed"):
                future.result(timeout=60)
    finally:
        numba.set_num_threads(saved)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_during_fit_stops_the_workers(tmp_path, sigint_delivered):
    # Many long epochs on the fused path; SIGINT while they run must end the
    # process promptly with fastmlp's one-line message, not hang on a barrier.
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import fastmlp
        from fastmlp.cli import main
        rng = np.random.default_rng(0)
        np.savez(sys.argv[1], x_train=rng.integers(0, 256, (20000, 784)).astype(np.uint8),
                 y_train=rng.integers(0, 10, 20000))
        print("ready", flush=True)
        sys.exit(main(["train", "--backend", "numba", "--data", sys.argv[1], "--epochs", "500",
                       "--batch-size", "32"]))
    """)
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "d.npz")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(8)  # compiled or loaded, and training
    assert process.poll() is None, process.communicate()
    started = time.perf_counter()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.perf_counter() - started < 10
    assert process.returncode == 130, stderr
    assert "fastmlp: interrupted" in stderr and "Traceback" not in stderr


def test_fma_chains_count_what_they_compute():
    # The peak kernel's sum is the 12 chains' values: checks it ran all steps.
    x = np.float32(0.5)
    got = _kernels.fma_chains(3, x)
    want = np.float32(0)
    for i in range(_simd.PEAK_CHAINS):
        acc = np.float32(x + i)
        for _ in range(3):
            acc = np.float32(acc * x + x)
        want = np.float32(want + acc)
    assert got == want


def test_stale_cache_is_dropped_when_the_generator_changes(tmp_path):
    # A cached kernel whose inlined _simd or _elementary code changed must not be loaded.
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "_kernels.gemm-1.py311.nbi").write_bytes(b"stale")
    (folder / "_kernels.simd-stamp").write_text("another generator")

    class Kernel:
        class _cache:
            _cache_path = str(folder)

    _kernels._drop_stale_cache(Kernel)
    assert not (folder / "_kernels.gemm-1.py311.nbi").exists()
    stamp = (folder / "_kernels.simd-stamp").read_text()
    sources = Path(_simd.__file__).read_bytes() + Path(_elementary.__file__).read_bytes()
    # the optimizers' slots and integer_power, frozen or inlined in too
    table = (repr(_kernels.FUSED_RULES) + inspect.getsource(optim.integer_power)).encode()
    frozen = repr(_blocking.BLOCKING).encode()  # the tile and block sizes compiled in
    assert stamp == hashlib.sha256(sources + frozen + table).hexdigest()
    (folder / "_kernels.gemm-1.py311.nbi").write_bytes(b"fresh")
    _kernels._drop_stale_cache(Kernel)  # same stamp: kept
    assert (folder / "_kernels.gemm-1.py311.nbi").exists()


@pytest.mark.parametrize("change", [{"k_block": 7}, {"row_tile": 5}, {"forward_tile": 3},
                                    {"column_tile_rows": 2}, {"rows_dot_groups": 1},
                                    {"panel_tiles": 2}, {"gather_ahead": 0},
                                    {"columns_from": 1}, {"column_rows": 5},
                                    {"refresh_bytes": 1},
                                    {"tile": _simd.Tile(5, 3, 32)}])
def test_another_blocking_drops_the_cache(change, tmp_path, monkeypatch):
    # A cache compiled for other block sizes (another machine's caches, another
    # FASTMLP_NUMBA_BLOCKING) is never loaded.
    folder = tmp_path / "cache"

    class Kernel:
        class _cache:
            _cache_path = str(folder)

    _kernels._drop_stale_cache(Kernel)
    (folder / "_kernels.gemm-1.py311.nbi").write_bytes(b"compiled for the other blocking")
    monkeypatch.setattr(_blocking, "BLOCKING", _blocking.BLOCKING._replace(**change))
    _kernels._drop_stale_cache(Kernel)
    assert not (folder / "_kernels.gemm-1.py311.nbi").exists()


def test_kernel_array_is_c_contiguous_writeable_and_of_the_dtype():
    a = np.asfortranarray(np.ones((3, 4), np.int64))
    a.flags.writeable = False
    b = _api.kernel_array(a, np.float32)
    assert b.dtype == np.float32 and b.flags.c_contiguous and b.flags.writeable
