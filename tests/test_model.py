"""The MLP: initialisation, prediction, input scaling, saving, and errors on bad input."""

import os

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, ModelFileError

BACKENDS = fastmlp.available_backends()


def small_data(n=20, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_features)), rng.integers(0, n_classes, n)


def test_he_initialisation_shapes_dtypes_and_scale():
    model = MLP((784, 128, 128, 10), seed=0)
    assert [(W.shape, b.shape) for W, b in model.params] == [
        ((128, 784), (128,)), ((128, 128), (128,)), ((10, 128), (10,))]
    assert all(W.dtype == np.float32 and b.dtype == np.float32 for W, b in model.params)
    assert model.params[0][0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    assert not model.params[0][1].any()
    np.testing.assert_array_equal(MLP(seed=0).params[0][0], model.params[0][0])
    assert not np.array_equal(MLP(seed=1).params[0][0], model.params[0][0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_predictions_are_consistent(backend, dtype):
    x, y = small_data()
    model = MLP((6, 5, 3), dtype=dtype, seed=0)
    with fastmlp.use_backend(backend):
        probs = model.predict_proba(x)
        assert probs.shape == (20, 3) and probs.dtype == dtype
        np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(model.predict(x), probs.argmax(axis=1))
        assert model.score(x, y) == pytest.approx(np.mean(probs.argmax(axis=1) == y))
        expected_loss = -np.mean(np.log(probs[np.arange(20), y]))
        assert model.loss(x, y) == pytest.approx(expected_loss, rel=1e-5)
        one = model.predict(x[3])
        assert isinstance(one, int) and one == probs[3].argmax()
        np.testing.assert_allclose(model.predict_proba(x[3]), probs[3], rtol=1e-5)


TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-7, atol=1e-12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_log_proba_is_the_log_of_predict_proba(backend, dtype):
    x, _ = small_data()
    model = MLP((6, 5, 4, 3), dtype=dtype, seed=0)
    with fastmlp.use_backend(backend):
        probs = model.predict_proba(x)
        log_probs = model.predict_log_proba(x)
        assert log_probs.shape == (20, 3) and log_probs.dtype == dtype
        np.testing.assert_allclose(np.exp(log_probs), probs, **TOLERANCE[dtype])
        np.testing.assert_allclose(log_probs, np.log(probs), **TOLERANCE[dtype])
        one = model.predict_log_proba(x[3])
        assert one.shape == (3,) and one.dtype == dtype
        np.testing.assert_allclose(one, log_probs[3], **TOLERANCE[dtype])
        # in batches of 7, 7 and 6 rows: the same up to the rounding of BLAS products
        np.testing.assert_allclose(model.predict_log_proba(x, batch_size=7), log_probs,
                                   **TOLERANCE[dtype])
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            model.predict_log_proba(x, batch_size=0)


def reference_logits(model, x):
    """The network's logits in float64, with NumPy, from the definition (backends/loop.py)."""
    a = np.asarray(x, np.float64)
    for l, (W, b) in enumerate(model.params):
        z = a @ W.T.astype(np.float64) + b
        a = z if l == len(model.params) - 1 else np.maximum(z, 0)
    return a


# Logit gaps beyond which exp underflows to 0: exp(-104) is below float32's smallest
# subnormal number (1.4e-45), exp(-746) below float64's (4.9e-324).
UNDERFLOWING_GAP = {np.float32: 150.0, np.float64: 1000.0}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_log_proba_is_finite_where_probabilities_underflow(backend, dtype):
    x, _ = small_data()
    model = MLP((6, 5, 3), dtype=dtype, seed=0, standardize=False)
    gap = UNDERFLOWING_GAP[dtype]
    model.params[-1][1][:] = [0.0, -gap, gap]
    z = reference_logits(model, x)
    shifted = z - z.max(axis=1, keepdims=True)
    expected = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    with fastmlp.use_backend(backend):
        probs = model.predict_proba(x)
        log_probs = model.predict_log_proba(x)
    assert (probs[:, :2] == 0).all()  # exp underflowed: log(probs) is -inf there
    assert np.isfinite(log_probs).all()
    assert (log_probs[:, 1] < -1.5 * gap).all()
    np.testing.assert_allclose(log_probs, expected, **TOLERANCE[dtype])
    np.testing.assert_allclose(np.exp(log_probs), probs, **TOLERANCE[dtype])


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name in ("loop", "numba")])
def test_predict_log_proba_of_a_row_does_not_depend_on_the_batch(backend):
    # loop and numba compute each row the same way wherever it lies; so does the
    # product that makes the logits from their last hidden layer
    x, _ = small_data(n=50)
    model = MLP((6, 5, 3), seed=0)
    order = np.random.default_rng(0).permutation(50)
    with fastmlp.use_backend(backend):
        log_probs = model.predict_log_proba(x)
        np.testing.assert_array_equal(model.predict_log_proba(x[order]), log_probs[order])
        np.testing.assert_array_equal(model.predict_log_proba(x[3]), log_probs[3])
        np.testing.assert_array_equal(model.predict_log_proba(x[3:4]), log_probs[3:4])


def pixel_carriers(images):
    """The same 0-255 values as uint8, int64, float32, float64 arrays and as a Python list."""
    return {"uint8": images, "int64": images.astype(np.int64),
            "float32": images.astype(np.float32), "float64": images.astype(np.float64),
            "list": images.tolist()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_pixel_values_give_the_same_predictions_whatever_carries_them(backend, dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 12), dtype=np.uint8)
    model = MLP((12, 8, 5), dtype=dtype, seed=0)
    model.scaler.fit(images)
    with fastmlp.use_backend(backend):
        want = model.predict_proba(images)
        want_one = model.predict_proba(images[3])  # the backend's single-sample path, if any
        for name, x in pixel_carriers(images).items():
            np.testing.assert_array_equal(model.predict_proba(x), want, err_msg=name)
            np.testing.assert_array_equal(model.predict_proba(x[3]), want_one, err_msg=name)
            np.testing.assert_array_equal(model.predict(x), want.argmax(axis=1), err_msg=name)
    np.testing.assert_allclose(want_one, want[3], rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_on_the_same_pixel_values_gives_the_same_model(backend):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (40, 12), dtype=np.uint8), rng.integers(0, 3, 40)
    trained = {}
    with fastmlp.use_backend(backend):
        for name, x in pixel_carriers(images).items():
            model = MLP((12, 6, 3), seed=0)
            model.fit(x, labels, epochs=2, batch_size=16)
            trained[name] = model
    want = trained.pop("uint8")
    for name, model in trained.items():
        assert (model.scaler.mean, model.scaler.std) == (want.scaler.mean, want.scaler.std), name
        for (W, b), (W_want, b_want) in zip(model.params, want.params):
            np.testing.assert_array_equal(W, W_want, err_msg=name)
            np.testing.assert_array_equal(b, b_want, err_msg=name)


def test_save_and_load_round_trip(tmp_path):
    x, y = small_data()
    model = MLP((6, 5, 4, 3), dtype=np.float64, seed=3)
    model.fit(x, y, epochs=2, batch_size=8)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = MLP.load(path)
    assert loaded.layer_sizes == (6, 5, 4, 3) and loaded.dtype == np.float64
    assert loaded.scaler.mean == model.scaler.mean and loaded.scaler.std == model.scaler.std
    for (W, b), (W2, b2) in zip(model.params, loaded.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would create it


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    MLP((6, 3), seed=0).save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        MLP((6, 3), seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_unreadable_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        MLP.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        MLP.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a fastmlp model file"):
        MLP.load(other)
    good = tmp_path / "good.npz"
    MLP((6, 3), seed=0).save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="cannot read model file"):
        MLP.load(truncated)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((2, 3, 6)), ValueError, "must be 1-D .* or 2-D .* got 3-D"),
    (np.zeros((4, 5)), ValueError, "x has 5 features per sample but the model expects 6"),
    (np.zeros((0, 6)), ValueError, "empty batch"),
    (np.array([["a"] * 6]), TypeError, "must hold real numbers, got dtype <U1"),
    (np.zeros((2, 6), dtype=complex), TypeError, "must hold real numbers"),
    (np.array([[np.nan] * 6]), ValueError, "x contains NaN"),
    (np.array([[np.inf] * 6]), ValueError, "x contains inf"),
])
def test_bad_inputs_name_the_problem(x, error, message):
    model = MLP((6, 3), seed=0)
    for predict in (model.predict, model.predict_log_proba):
        with pytest.raises(error, match=message):
            predict(x)


@pytest.mark.parametrize("format", ["csr", "csc"])
def test_sparse_input_is_refused_by_name(format):
    sparse = pytest.importorskip("scipy.sparse")
    x = sparse.random(4, 6, density=0.5, format=format, random_state=0)
    model = MLP((6, 3), seed=0)
    message = rf"x is a sparse matrix \({format}\); fastmlp takes dense arrays: pass x.toarray\(\)"
    with pytest.raises(TypeError, match=message):
        model.predict(x)
    with pytest.raises(TypeError, match=message):
        model.fit(x, np.array([0, 1, 2, 0]), epochs=1)


@pytest.mark.parametrize("y, error, message", [
    (np.array([0, 1, 3]), ValueError, r"label 3 out of range: labels must be in \[0, 3\)"),
    (np.array([0, -1, 2]), ValueError, "label -1 out of range"),
    (np.array([0, 1]), ValueError, "y has 2 labels but x has 3 samples"),
    (np.array([[0, 1, 2]]), ValueError, "must be a 1-D array of class indices"),
    (np.array([0.0, 1.5, 2.0]), ValueError, "integer class indices"),
    (np.array(["a", "b", "c"]), TypeError, "integer class indices, got dtype <U1"),
])
def test_bad_labels_name_the_problem(y, error, message):
    model = MLP((6, 3), seed=0)
    x = np.zeros((3, 6))
    with pytest.raises(error, match=message):
        model.score(x, y)
    with pytest.raises(error, match=message):
        model.fit(x, y, epochs=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"layer_sizes": (784,)}, "layer_sizes needs an input and an output size"),
    ({"layer_sizes": (784, 0, 10)}, "all >= 1"),
    ({"dtype": np.int32}, "dtype must be float32 or float64, got int32"),
    ({"dtype": "float16"}, "dtype must be float32 or float64, got float16"),
])
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


def test_public_kernels_validate_parameters():
    with pytest.raises(ValueError, match="layer 1: W has 4 inputs, previous layer gives 5"):
        fastmlp.forward([(np.zeros((5, 3)), np.zeros(5)), (np.zeros((2, 4)), np.zeros(2))],
                        np.zeros((1, 3)))
    with pytest.raises(ValueError, match="x has 2 features per sample but the model expects 3"):
        fastmlp.forward([(np.zeros((5, 3)), np.zeros(5))], np.zeros((1, 2)))
    params = [(np.zeros((3, 3)), np.zeros(3))]
    probs, cache = fastmlp.forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="label 7 out of range"):
        fastmlp.backward(params, cache, [0, 7])
    with pytest.raises(ValueError, match="softmax expects 1-D or 2-D input"):
        fastmlp.softmax(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("model, text", [
    (MLP((784, 128, 128, 10)), "MLP((784, 128, 128, 10), dtype='float32')"),
    (MLP([6, 5, 3], dtype=np.float64, standardize=False),
     "MLP((6, 5, 3), dtype='float64', standardize=False)"),
])
def test_repr_is_the_constructor_call_of_the_architecture(model, text, tmp_path):
    assert repr(model) == text
    again = eval(text, {"MLP": MLP})
    assert (again.layer_sizes, again.dtype, again.scaler.standardize) == (
        model.layer_sizes, model.dtype, model.scaler.standardize)
    model.save(tmp_path / "model.npz")
    assert repr(MLP.load(tmp_path / "model.npz")) == text


def test_summary_tables_the_layers_parameters_scaling_and_backend(capsys):
    import io

    model = MLP((6, 5, 3), dtype=np.float64)
    model.scaler.fit(np.array([[1.0, 3.0], [1.0, 3.0]]))  # mean 2, std 1
    with fastmlp.use_backend("einsum"):
        model.summary()
    assert capsys.readouterr().out == (
        "MLP((6, 5, 3), dtype='float64')\n"
        "layer    output  W       b     parameters  activation\n"
        "input    (N, 6)                         0  standardize (mean 2, std 1)\n"
        "dense 1  (N, 5)  (5, 6)  (5,)          35  relu\n"
        "dense 2  (N, 3)  (3, 5)  (3,)          18  softmax\n"
        "total parameters: 53 (424 bytes of float64)\n"
        "backend: einsum\n")
    assert sum(W.size + b.size for W, b in model.params) == 53
    file = io.StringIO()
    MLP((4, 2), standardize=False).summary(file=file)
    lines = file.getvalue().splitlines()
    assert lines[2] == "input    (N, 4)                         0  none (cast to float32)"
    assert lines[-2] == "total parameters: 10 (40 bytes of float32)"
    file = io.StringIO()
    MLP((784, 1000, 10)).summary(file=file)
    assert file.getvalue().splitlines()[-2] == "total parameters: 795,010 (3.0 MiB of float32)"
    assert lines[-1] == f"backend: {fastmlp.get_backend_name()}"
