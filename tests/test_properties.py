"""Property-based tests of the backend contract, with Hypothesis.

For random networks (1 to 4 layers, 1 to 40 units wide), batches from one
sample up (and single 1-D samples), both dtypes, and every memory layout a user
can hand over (C and Fortran order, strided, column-sliced and reversed views,
read-only arrays, ``np.memmap`` and ``np.load(mmap_mode='r')`` arrays), every
backend's ``forward`` and ``backward``, called through ``fastmlp.forward`` and
``fastmlp.backward``, equal the ``loop`` reference on plain C-ordered copies
within the dtype's tolerance, and leave their inputs as they were.

The examples are derandomized (and no example database is written), so the
tests give the same verdict on every run and every machine; a failure is
shrunk to a minimal example that reproduces it.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmlp

BACKENDS = fastmlp.available_backends()
# (rtol, atol relative to the largest magnitude), as in test_backends.py
TOLERANCE = {np.float64: (1e-7, 1e-12), np.float32: (1e-4, 1e-5)}
LAYOUTS = ["C", "fortran", "strided", "column-slice", "reversed", "read-only", "memmap",
           "npy-mmap"]
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


def assert_close(actual, desired, dtype, what):
    rtol, atol = TOLERANCE[dtype]
    scale = float(np.abs(desired).max(initial=0.0))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=what)


def lay_out(values, layout, directory: Path, name: str):
    """``values`` (a C-ordered array) in ``layout``: the same numbers, held differently."""
    if layout == "C":
        return values.copy()
    if layout == "fortran":
        return np.asfortranarray(values)
    if layout == "strided":  # every other row (or element) of a larger array
        return np.repeat(values, 2, axis=0)[::2]
    if layout == "column-slice":  # the first columns of a wider array
        if values.ndim == 1:
            return np.concatenate([values, values])[:values.size]
        return np.concatenate([values, values[:, :3] + 1], axis=1)[:, :values.shape[1]]
    if layout == "reversed":  # negative strides
        flipped = (slice(None, None, -1),) * values.ndim
        return np.ascontiguousarray(values[flipped])[flipped]
    if layout == "read-only":
        held = values.copy()
        held.setflags(write=False)
        return held
    if layout == "memmap":
        path = directory / f"{name}.dat"
        writer = np.memmap(path, dtype=values.dtype, mode="w+", shape=values.shape)
        writer[...] = values
        writer.flush()
        del writer
        return np.memmap(path, dtype=values.dtype, mode="r", shape=values.shape)
    if layout == "npy-mmap":
        np.save(directory / f"{name}.npy", values)
        return np.load(directory / f"{name}.npy", mmap_mode="r")
    raise AssertionError(f"unknown layout {layout}")


@st.composite
def problems(draw):
    """A network, a batch and labels (as seeds and sizes) and the layouts to hand them over in."""
    n_layers = draw(st.integers(1, 4))
    sizes = tuple(draw(st.lists(st.integers(1, 40), min_size=n_layers + 1,
                                max_size=n_layers + 1)))
    n_samples = draw(st.integers(1, 64))
    one_sample = n_samples == 1 and draw(st.booleans())  # x of shape (n_in,)
    return {
        "sizes": sizes,
        "n_samples": n_samples,
        "one_sample": one_sample,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "x_layout": draw(st.sampled_from(LAYOUTS)),
        "params_layout": draw(st.sampled_from(LAYOUTS)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@PROPERTY_SETTINGS
@given(problem=problems())
def test_every_layout_gives_the_reference_result_and_stays_unmodified(backend, problem,
                                                                        random_problem):
    dtype = problem["dtype"]
    params, x, y = random_problem(problem["sizes"], problem["n_samples"], dtype, problem["seed"])
    if problem["one_sample"]:
        x, y = x[0], y[0]
    with fastmlp.use_backend("loop"):
        want_probs, want_cache = fastmlp.forward(params, x)
        want_grads = fastmlp.backward(params, want_cache, y)

    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        held_x = lay_out(x, problem["x_layout"], directory, "x")
        held_params = [(lay_out(W, problem["params_layout"], directory, f"W{l}"),
                        lay_out(b, problem["params_layout"], directory, f"b{l}"))
                       for l, (W, b) in enumerate(params)]
        with fastmlp.use_backend(backend):
            probs, cache = fastmlp.forward(held_params, held_x)
            cache_before = [np.array(a, copy=True) for a in cache]
            grads = fastmlp.backward(held_params, cache, y)

        assert probs.shape == want_probs.shape and probs.dtype == dtype
        assert_close(probs, want_probs, dtype, "probs")
        assert len(cache) == len(want_cache)
        for l, (got, want) in enumerate(zip(cache, want_cache)):
            assert_close(got, want, dtype, f"cache[{l}]")
        assert len(grads) == len(want_grads)
        for l, ((dW, db), (want_dW, want_db)) in enumerate(zip(grads, want_grads)):
            assert dW.shape == want_dW.shape and db.shape == want_db.shape, f"layer {l}"
            assert dW.dtype == db.dtype == dtype, f"layer {l}"
            assert_close(dW, want_dW, dtype, f"layer {l} dW")
            assert_close(db, want_db, dtype, f"layer {l} db")

        np.testing.assert_array_equal(held_x, x, err_msg="x was modified")
        for l, ((W, b), (W_was, b_was)) in enumerate(zip(held_params, params)):
            np.testing.assert_array_equal(W, W_was, err_msg=f"W{l} was modified")
            np.testing.assert_array_equal(b, b_was, err_msg=f"b{l} was modified")
        for l, (a, a_was) in enumerate(zip(cache, cache_before)):
            np.testing.assert_array_equal(a, a_was, err_msg=f"backward modified cache[{l}]")
        del held_x, held_params  # release the memory maps before the directory goes
