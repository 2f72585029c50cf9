"""``fastmlp.MLP`` with every activation and output: training on targets, what predict
answers, the model file, ONNX export and the command line's evaluate and predict."""

import json

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, family
from fastmlp.cli import main
from fastmlp.exceptions import ModelFileError

BACKENDS = ["matmul", "numba"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastmlp.use_backend(request.param):
        yield request.param


def binary_problem(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def regression_problem(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    Y = np.stack([x[:, 0] - 2 * x[:, 1], np.sin(x[:, 2])], axis=1)
    return x, Y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_logistic_unit_is_a_binary_classifier(backend, dtype):
    x, y = binary_problem()
    model = MLP((6, 16, 1), activation="tanh", output="logistic", dtype=dtype, seed=0)
    history = model.fit(x, y, epochs=20, batch_size=32, learning_rate=0.01)
    assert history.loss[-1] < history.loss[0]
    probs = model.predict_proba(x)
    assert probs.shape == (400, 1) and probs.dtype == dtype
    assert ((probs >= 0) & (probs <= 1)).all()
    labels = model.predict(x)
    assert labels.dtype == np.int64 and labels.shape == (400,)
    np.testing.assert_array_equal(labels, (probs[:, 0] > 0.5).astype(np.int64))
    assert set(np.unique(labels)) == {0, 1}
    assert model.predict(x[0]) in (0, 1) and isinstance(model.predict(x[0]), int)
    assert model.score(x, y) == pytest.approx(np.mean(labels == y))
    assert model.score(x, y) > 0.9
    assert history.train_accuracy[-1] > 0.9
    assert model.loss(x, y) == pytest.approx(
        family.LOSSES["logistic"](probs.astype(np.float64), y[:, None]), rel=1e-5)


def test_several_logistic_units_are_multilabel(backend):
    x, y = binary_problem()
    Y = np.stack([y, 1 - y, (x[:, 2] > 0)], axis=1).astype(float)
    model = MLP((6, 16, 3), activation="relu", output="logistic", seed=0)
    model.fit(x, Y, epochs=20, batch_size=32, learning_rate=0.01)
    labels = model.predict(x)
    assert labels.shape == (400, 3) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, (model.predict_proba(x) > 0.5).astype(np.int64))
    assert model.score(x, Y) == pytest.approx(np.mean((labels == Y).all(axis=1)))
    assert model.score(x, Y) > 0.8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_output_is_a_regression(backend, dtype):
    x, Y = regression_problem()
    model = MLP((5, 32, 2), activation="tanh", output="identity", dtype=dtype, seed=0)
    history = model.fit(x, Y, epochs=40, batch_size=32, learning_rate=0.01,
                        validation_data=(x[:50], Y[:50]), verbose=0)
    assert history.train_accuracy[-1] is None and history.val_accuracy[-1] is None
    assert history.val_loss[-1] == pytest.approx(model.loss(x[:50], Y[:50]), rel=1e-5)
    values = model.predict(x)
    assert values.shape == (400, 2) and values.dtype == dtype
    assert model.predict(x[0]).shape == (2,)
    r2 = 1 - ((Y - values) ** 2).sum(axis=0) / ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    assert model.score(x, Y) == pytest.approx(r2.mean(), rel=1e-5)
    assert model.score(x, Y) > 0.9
    with pytest.raises(ValueError, match="predict_proba needs a softmax or logistic output; "
                                         "this model's output is 'identity'"):
        model.predict_proba(x)
    with pytest.raises(ValueError, match="predict_log_proba needs a softmax or logistic"):
        model.predict_log_proba(x)


def test_one_regression_output_takes_1d_targets(backend):
    x, Y = regression_problem()
    model = MLP((5, 16, 1), activation="logistic", output="identity", seed=0)
    model.fit(x, Y[:, 0], epochs=30, batch_size=32, learning_rate=0.01)
    assert model.predict(x).shape == (400, 1)
    assert model.score(x, Y[:, 0]) > 0.8


def test_exp_output_fits_counts(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 3))
    rate = np.exp(0.8 * x[:, 0] - 0.5 * x[:, 1])
    counts = rng.poisson(rate).astype(float)
    model = MLP((3, 16, 1), activation="tanh", output="exp", dtype=np.float64, seed=0)
    history = model.fit(x, counts, epochs=30, batch_size=50, learning_rate=0.01)
    assert history.loss[-1] < history.loss[0]
    predicted = model.predict(x)[:, 0]
    assert (predicted > 0).all()
    assert np.corrcoef(predicted, rate)[0, 1] > 0.9


def test_targets_are_checked_for_the_output():
    x, Y = regression_problem(20)
    with pytest.raises(ValueError, match=r"y has shape \(20, 2\); a network of 3 identity "
                                         r"outputs needs targets of shape \(20, 3\)"):
        MLP((5, 3), output="identity").fit(x, Y, epochs=1)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        MLP((5, 2), output="logistic").fit(x, Y, epochs=1)
    with pytest.raises(ValueError, match="negative targets"):
        MLP((5, 2), output="exp").fit(x, Y, epochs=1)
    with pytest.raises(ValueError, match="class_weight needs class labels"):
        MLP((5, 2), output="identity").fit(x, Y, epochs=1, class_weight="balanced")
    with pytest.raises(ValueError, match="monitor='val_accuracy' needs a classifier"):
        MLP((5, 2), output="identity").fit(x, Y, epochs=1, early_stopping=True,
                                           monitor="val_accuracy")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP((5, 2), activation="swish")
    with pytest.raises(ValueError, match="unknown output 'linear'"):
        MLP((5, 2), output="linear")


def test_softmax_takes_a_matrix_of_target_rows(backend):
    x, y = binary_problem()
    labels, rows = MLP((6, 8, 2), seed=0), MLP((6, 8, 2), seed=0)
    labels.fit(x, y, epochs=2, batch_size=40)
    rows.fit(x, np.eye(2)[y], epochs=2, batch_size=40)
    for (W, b), (W1, b1) in zip(labels.params, rows.params):
        np.testing.assert_array_equal(W, W1)
        np.testing.assert_array_equal(b, b1)


def test_early_stopping_on_a_regression(backend):
    x, Y = regression_problem()
    history = MLP((5, 16, 2), activation="tanh", output="identity", seed=0).fit(
        x, Y, epochs=5, early_stopping=True, validation_fraction=0.2)
    assert len(history.val_loss) == len(history) and history.val_loss[-1] is not None


def test_repr_and_summary_name_the_family():
    model = MLP((4, 8, 1), activation="tanh", output="logistic")
    assert repr(model) == "MLP((4, 8, 1), activation='tanh', output='logistic', dtype='float32')"
    assert repr(MLP((4, 2))) == "MLP((4, 2), dtype='float32')"
    import io

    text = io.StringIO()
    model.summary(file=text)
    lines = text.getvalue().splitlines()
    assert lines[3].endswith("tanh") and lines[4].endswith("logistic")


@pytest.mark.parametrize("activation, output", [("tanh", "logistic"), ("leaky_relu", "exp"),
                                                ("identity", "identity"), ("relu", "softmax")])
def test_the_model_file_keeps_the_family(tmp_path, activation, output):
    model = MLP((5, 7, 3), activation=activation, output=output, dtype=np.float64, seed=1)
    model.scaler.fit(np.arange(10.0))
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = MLP.load(path)
    assert (loaded.activation, loaded.output) == (activation, output)
    x = np.random.default_rng(0).standard_normal((4, 5))
    np.testing.assert_array_equal(loaded.predict_values(x), model.predict_values(x))
    with np.load(path) as file:
        default = (activation, output) == ("relu", "softmax")
        # a ReLU + softmax file is what fastmlp wrote before the family, readable by it
        assert ("activation" in file.files) == ("output" in file.files) == (not default)


def _rewrite(path, **arrays):
    with np.load(path) as file:
        content = {key: file[key] for key in file.files}
    content.update(arrays)
    np.savez(path, **content)


def test_a_file_naming_an_unknown_family_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    MLP((3, 2), activation="tanh").save(path)
    _rewrite(path, activation=np.array("swish"))
    with pytest.raises(ModelFileError, match="unknown activation 'swish'"):
        MLP.load(path)
    _rewrite(path, activation=np.array(["tanh"]))
    with pytest.raises(ModelFileError, match="activation must be a scalar of string type"):
        MLP.load(path)


def test_an_old_pickle_is_relu_and_softmax():
    import pickle

    model = MLP((3, 2))
    state = dict(model.__dict__)
    del state["activation"], state["output"]
    old = MLP.__new__(MLP)
    old.__setstate__(state)
    assert (old.activation, old.output) == ("relu", "softmax")
    assert pickle.loads(pickle.dumps(model)).output == "softmax"


onnx_combinations = [(a, o) for a in family.ACTIVATION_NAMES for o in family.OUTPUT_NAMES]


@pytest.mark.parametrize("activation, output", onnx_combinations)
def test_onnx_export_runs_every_activation_and_output(tmp_path, activation, output):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(2)
    model = MLP((12, 9, 7, 3), activation=activation, output=output, dtype=np.float64, seed=0)
    model.scaler.fit(rng.uniform(0, 255, (50, 12)))
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = rng.uniform(0, 255, (6, 12)).astype(np.float32)
    (got,) = session.run(None, {"pixels": pixels})
    want_name = "probabilities" if output in ("softmax", "logistic") else "values"
    assert session.get_outputs()[0].name == want_name
    with fastmlp.use_backend("matmul"):
        np.testing.assert_allclose(got, model.predict_values(pixels), rtol=1e-9, atol=1e-12)


def _binary_npz(tmp_path):
    x, y = binary_problem(300)
    pixels = np.clip(np.round(127 + 40 * x), 0, 255).astype(np.uint8)
    path = tmp_path / "binary.npz"
    np.savez(path, x_test=pixels, y_test=y, class_names=np.array(["no", "yes"]))
    return pixels, y, path


def test_evaluate_scores_one_logistic_unit_as_two_classes(tmp_path, capsys):
    pixels, y, data = _binary_npz(tmp_path)
    model = MLP((6, 8, 1), activation="tanh", output="logistic", seed=0)
    model.fit(pixels, y, epochs=15, batch_size=20, learning_rate=0.01)
    model.save(tmp_path / "binary_model.npz")
    assert main(["evaluate", str(tmp_path / "binary_model.npz"), "--data", str(data),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in report["classes"]] == ["no", "yes"]
    assert report["accuracy"] == pytest.approx(model.score(pixels, y))
    assert report["accuracy"] > 0.9
    assert sum(map(sum, report["confusion_matrix"])) == 300


def test_evaluate_refuses_a_regression(tmp_path, capsys):
    _, _, data = _binary_npz(tmp_path)
    MLP((6, 2), output="identity").save(tmp_path / "regression.npz")
    assert main(["evaluate", str(tmp_path / "regression.npz"), "--data", str(data)]) != 0
    assert ("the model has an identity output (a regression); classes are scored for a "
            "softmax output or one logistic unit") in capsys.readouterr().err


@pytest.mark.parametrize("output, units", [("logistic", 1), ("identity", 2)])
def test_predict_on_images(tmp_path, capsys, output, units):
    pytest.importorskip("PIL")
    from PIL import Image

    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    path = tmp_path / "one.png"
    Image.fromarray(image).save(path)
    model = MLP((784, 8, units), activation="tanh", output=output, seed=0)
    model.save(tmp_path / "model.npz")
    assert main(["predict", str(tmp_path / "model.npz"), str(path), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    if output == "logistic":
        p = float(model.predict_proba(np.zeros((1, 784)) + 0)[0, 0])  # shape only
        assert result["class"] in (0, 1) and len(result["probabilities"]) == 2
        assert result["probabilities"][1] == pytest.approx(1 - result["probabilities"][0])
        assert 0 <= p <= 1
    else:
        assert len(result["outputs"]) == 2 and "class" not in result
