"""predict and predict_proba over arrays larger than memory, in batches, and over dask arrays."""

import pickle
import tracemalloc

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP

BACKENDS = fastmlp.available_backends()


@pytest.fixture(scope="module")
def trained(mnist):
    (x_train, y_train), _ = mnist
    model = MLP((784, 64, 32, 10), seed=0)
    model.fit(x_train[:6000], y_train[:6000], epochs=1, batch_size=128)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_give_the_result_of_one_call(mnist, backend, dtype):
    _, (x_test, _) = mnist
    x = x_test[:2500]
    model = MLP((784, 32, 10), dtype=dtype, seed=0)
    model.scaler.fit(x)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    with fastmlp.use_backend(backend):
        whole = model.predict_proba(x, batch_size=len(x))
        batched = model.predict_proba(x, batch_size=1000)  # 1000, 1000 and 500 rows
        assert batched.shape == (2500, 10) and batched.dtype == dtype
        np.testing.assert_allclose(batched, whole, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_array_equal(model.predict(x, batch_size=700), whole.argmax(axis=1))


def test_a_memory_mapped_file_is_read_in_batches_of_bounded_memory(trained, mnist, tmp_path):
    _, (x_test, _) = mnist
    rows = 50_000  # the 10 000 test images five times: 39 MB of uint8 on disk
    path = tmp_path / "big.npy"
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, 784))
    for begin in range(0, rows, len(x_test)):
        mapped[begin:begin + len(x_test)] = x_test
    mapped.flush()
    del mapped
    x = np.load(path, mmap_mode="r")
    with fastmlp.use_backend("matmul"):
        tracemalloc.start()
        try:
            probs = trained.predict_proba(x, batch_size=2000)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        expected = trained.predict_proba(x_test)
    np.testing.assert_allclose(probs, np.tile(expected, (5, 1)), rtol=1e-5, atol=1e-7)
    # One call would scale all 50 000 rows to float32 at once: 157 MB. In
    # batches: one scaled batch (6.3 MB), its activations, and the 2 MB result.
    one_call = rows * 784 * 4
    assert peak < 16e6, f"peak {peak / 1e6:.1f} MB"
    assert peak < one_call / 10


def test_every_batch_is_checked(trained, mnist):
    _, (x_test, _) = mnist
    x = x_test[:300].astype(np.float32)
    x[250, 7] = np.nan  # in the third batch of 100
    with pytest.raises(ValueError, match="x contains NaN"):
        trained.predict_proba(x, batch_size=100)
    with pytest.raises(ValueError, match="x has 783 features per sample but the model expects 784"):
        trained.predict_proba(x[:, 1:], batch_size=100)
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            trained.predict(x_test[:10], batch_size=bad)


def test_a_model_pickles_for_a_distributed_scheduler(trained, mnist):
    _, (x_test, _) = mnist
    copy = pickle.loads(pickle.dumps(trained))
    np.testing.assert_array_equal(copy.predict_proba(x_test[:100]),
                                  trained.predict_proba(x_test[:100]))


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name != "loop"])
def test_dask_map_blocks_on_threads_matches_numpy(trained, mnist, tmp_path, backend):
    da = pytest.importorskip("dask.array")
    _, (x_test, _) = mnist
    path = tmp_path / "test.npy"
    np.save(path, x_test)
    x = da.from_array(np.load(path, mmap_mode="r"), chunks=(1500, 784))  # 7 blocks
    used = set()

    # dask's worker threads do not see this thread's use_backend: select it in the block
    def proba(block):
        with fastmlp.use_backend(backend):
            used.add(fastmlp.get_backend_name())
            return trained.predict_proba(block)

    probs = x.map_blocks(proba, dtype=trained.dtype, chunks=(x.chunks[0], (trained.n_classes,)))
    labels = x.map_blocks(lambda block: trained.predict(block), dtype=np.int64, drop_axis=1)
    probs, labels = dask_compute(probs, labels)
    with fastmlp.use_backend(backend):
        expected = trained.predict_proba(x_test)
    assert used == {backend}
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def dask_compute(*arrays):
    import dask

    return dask.compute(*arrays, scheduler="threads", num_workers=4)
