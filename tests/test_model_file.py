"""Model files: format version 2, and `MLP.load` failing fast, by name, on bad or hostile files."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from fastmlp import MLP, ModelFileError
from fastmlp.model import FORMAT_VERSION


@pytest.fixture
def arrays(tmp_path):
    """The arrays of a saved, trained 6-5-3 float32 model."""
    rng = np.random.default_rng(0)
    model = MLP((6, 5, 3), seed=0)
    model.fit(rng.integers(0, 256, (20, 6), dtype=np.uint8), rng.integers(0, 3, 20), epochs=1)
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        return dict(data)


def write(path, arrays, **changes):
    """Save ``arrays`` with ``changes`` applied (a value of None deletes the array)."""
    arrays = {**arrays, **changes}
    np.savez(path, **{name: value for name, value in arrays.items() if value is not None})
    return path


def test_files_are_format_2_and_hold_the_scaler_state(tmp_path, arrays):
    assert FORMAT_VERSION == 2 and arrays["format_version"] == 2
    assert sorted(arrays) == ["W0", "W1", "b0", "b1", "dtype", "format_version", "layer_sizes",
                              "scaler_fitted", "scaler_mean", "scaler_std", "standardize"]
    # an untrained model's scaler stays unfitted, so a loaded model fits it on its training data
    MLP((6, 3), seed=0).save(tmp_path / "untrained.npz")
    model = MLP.load(tmp_path / "untrained.npz")
    assert not model.scaler.fitted
    x = np.arange(60, dtype=np.uint8).reshape(10, 6)
    model.fit(x, np.arange(10) % 3, epochs=1)
    assert model.scaler.fitted and model.scaler.mean == 29.5


def test_load_builds_no_random_weights(tmp_path, arrays, monkeypatch):
    def no_random_numbers(*args, **kwargs):
        raise AssertionError("load initialised random weights")

    monkeypatch.setattr(np.random, "default_rng", no_random_numbers)
    model = MLP.load(write(tmp_path / "model.npz", arrays))
    assert model.layer_sizes == (6, 5, 3) and model.dtype == np.float32
    for l, (W, b) in enumerate(model.params):
        np.testing.assert_array_equal(W, arrays[f"W{l}"])
        np.testing.assert_array_equal(b, arrays[f"b{l}"])


def test_weights_are_cast_to_the_saved_dtype(tmp_path, arrays):
    model = MLP.load(write(tmp_path / "model.npz", arrays, dtype=np.array("float64")))
    assert model.dtype == np.float64
    assert all(W.dtype == b.dtype == np.float64 for W, b in model.params)
    np.testing.assert_array_equal(model.params[0][0], arrays["W0"].astype(np.float64))


def test_a_format_1_file_names_the_old_input_rule(tmp_path, arrays):
    old = {name: value for name, value in arrays.items() if name != "scaler_fitted"}
    path = write(tmp_path / "old.npz", old, format_version=np.array(1))
    with pytest.raises(ModelFileError, match=(
            r"saved by an older fastmlp \(model format 1\) under the old input rule, which "
            r"divided uint8 inputs by 255.*retrain the model, or re-save it in format 2")):
        MLP.load(path)


@pytest.mark.parametrize("changes, message", [
    ({"format_version": np.array(99)}, "has model format version 99; this fastmlp reads 2"),
    ({"format_version": np.array("2")}, "format_version must be a scalar of integer type"),
    ({"format_version": np.array([2, 2])}, r"format_version must be a scalar .* shape \(2,\)"),
    ({"layer_sizes": np.array([[6, 5, 3]])}, "layer_sizes must be a 1-D array of integer type"),
    ({"layer_sizes": np.array([6.0, 5.0, 3.0])}, r"layer_sizes must be a 1-D .* of float64"),
    ({"layer_sizes": np.array([6])}, r"an input and an output size, all >= 1, got \(6,\)"),
    ({"layer_sizes": np.array([6, 0, 3])}, r"all >= 1, got \(6, 0, 3\)"),
    ({"layer_sizes": np.array([6, -5, 3])}, r"all >= 1, got \(6, -5, 3\)"),
    ({"layer_sizes": np.array([6, 5, 4, 3])}, "missing array 'W2'"),
    ({"layer_sizes": np.array([6, 3])}, r"holds arrays 'W1', 'b1' that are not part of a model "
                                        r"with layer_sizes \(6, 3\) \(1 layers\)"),
    ({"W2": np.zeros((2, 3)), "b2": np.zeros(2)}, "holds arrays 'W2', 'b2' that are not part"),
    ({"notes": np.array("hello")}, "holds arrays 'notes' that are not part of a model"),
    ({"b0": None}, "missing array 'b0'"),
    ({"W1": None}, "missing array 'W1'"),
    ({"scaler_std": None}, "missing array 'scaler_std'"),
    ({"scaler_fitted": None}, "missing array 'scaler_fitted'"),
    ({"dtype": np.array("float16")}, "dtype must be float32 or float64, got 'float16'"),
    ({"dtype": np.array("int64")}, "dtype must be float32 or float64, got 'int64'"),
    ({"dtype": np.array(32)}, r"dtype must be a scalar of string type, got shape \(\) of int64"),
    ({"standardize": np.array(1.0)}, "standardize must be a scalar of boolean type"),
    ({"scaler_std": np.array(0.0)}, "scaler_std is 0.0; it must be finite and > 0"),
    ({"scaler_std": np.array(-2.0)}, "scaler_std is -2.0; it must be finite and > 0"),
    ({"scaler_std": np.array(np.nan)}, "scaler_std is nan; it must be finite and > 0"),
    ({"scaler_std": np.array(np.inf)}, "scaler_std is inf; it must be finite and > 0"),
    ({"scaler_mean": np.array(np.nan)}, "scaler_mean is nan; it must be finite"),
    ({"scaler_mean": np.array(-np.inf)}, "scaler_mean is -inf; it must be finite"),
    ({"scaler_mean": np.array(1)}, "scaler_mean must be a scalar of floating-point type"),
    ({"W0": np.zeros((2, 2), np.float32)}, r"layer 0 has shapes \(2, 2\), \(5,\); "
                                           r"layer_sizes say \(5, 6\), \(5,\)"),
    ({"b1": np.zeros((1, 3), np.float32)}, r"layer 1 has shapes \(3, 5\), \(1, 3\)"),
    ({"W0": np.zeros((5, 6), np.int64)}, "layer 0 holds int64 and float32; weights must be floats"),
    ({"W1": np.zeros((3, 5), complex)}, "layer 1 holds complex128 and float32"),
    ({"W1": np.full((3, 5), np.nan, np.float32)}, "layer 1 has NaN or inf weights"),
    ({"b0": np.full(5, np.inf, np.float32)}, "layer 0 has NaN or inf weights"),
], ids=lambda value: next(iter(value)) if isinstance(value, dict) else None)
def test_bad_files_name_the_problem(tmp_path, arrays, changes, message):
    path = write(tmp_path / "bad.npz", arrays, **changes)
    with pytest.raises(ModelFileError, match=message):
        MLP.load(path)


def test_no_format_version_means_not_a_model_file(tmp_path, arrays):
    with pytest.raises(ModelFileError, match="is not a fastmlp model file"):
        MLP.load(write(tmp_path / "bad.npz", arrays, format_version=None))


def rewrite(path, arrays, member_bytes):
    """Write ``arrays`` as an uncompressed zip, raw bytes for the members in ``member_bytes``."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in arrays.items():
            data = member_bytes.get(name)
            if data is None:
                buffer = io.BytesIO()
                np.save(buffer, value)
                data = buffer.getvalue()
            archive.writestr(f"{name}.npy", data)
    return path


def lying_header(shape, dtype="<f4"):
    """The bytes of a .npy member whose header claims ``shape`` but which holds 120 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(120)


def load_peak_bytes(path):
    """``MLP.load(path)`` must fail; the peak memory it allocated meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as error:
            MLP.load(path)
        return tracemalloc.get_traced_memory()[1], str(error.value)
    finally:
        tracemalloc.stop()


def test_huge_layer_sizes_fail_before_anything_is_allocated(tmp_path, arrays):
    path = write(tmp_path / "huge.npz", arrays, layer_sizes=np.array([10**9, 10**9]),
                 W0=np.zeros((2, 2), np.float32), b0=np.zeros(2, np.float32), W1=None, b1=None)
    peak, message = load_peak_bytes(path)
    assert "layer 0 has shapes (2, 2), (2,); layer_sizes say (1000000000, 1000000000)" in message
    assert peak < 1_000_000  # the claimed 4 GB weight matrix was never allocated


@pytest.mark.parametrize("shape", [(10**9, 10**9), (50_000, 100_000)])
def test_a_header_claiming_more_than_is_stored_fails_before_allocating(tmp_path, arrays, shape):
    sizes = np.array(shape[::-1])
    arrays = {**arrays, "layer_sizes": sizes}
    for name in ("W1", "b1", "b0"):
        del arrays[name]
    path = rewrite(tmp_path / "lying.npz", arrays, {"W0": lying_header(shape)})
    peak, message = load_peak_bytes(path)
    assert f"array 'W0' claims shape {shape} of float32, but 120 bytes are stored" in message
    assert peak < 1_000_000


def test_compressed_members_are_refused(tmp_path, arrays):
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    with pytest.raises(ModelFileError, match="array '.*' is compressed or claims more bytes"):
        MLP.load(tmp_path / "compressed.npz")


def test_members_that_are_not_arrays_are_refused(tmp_path, arrays):
    path = rewrite(tmp_path / "extra.npz", arrays, {})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("README.txt", "not an array")
    with pytest.raises(ModelFileError, match="member 'README.txt' is not a NumPy array"):
        MLP.load(path)


def test_object_arrays_are_refused_unread(tmp_path, arrays):
    path = write(tmp_path / "pickle.npz", arrays, layer_sizes=np.array([6, 5, 3], dtype=object))
    with pytest.raises(ModelFileError, match="array 'layer_sizes' holds Python objects"):
        MLP.load(path)


def test_a_plain_npy_file_is_not_a_model(tmp_path):
    np.save(tmp_path / "weights.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="cannot read model file .*weights.npy"):
        MLP.load(tmp_path / "weights.npy")
