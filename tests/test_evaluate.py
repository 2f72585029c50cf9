"""fastmlp evaluate and the plots: numbers that match the model, pictures that are pictures."""

import json
import sys

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.cli import main
from fastmlp.evaluate import MNIST_CLASSES, evaluate, evaluation_data
from fastmlp.metrics import classification_report


@pytest.fixture(scope="module")
def model(mnist):
    (x_train, y_train), _ = mnist
    model = MLP((784, 32, 10), seed=0)
    model.fit(x_train[:10_000], y_train[:10_000], epochs=2)
    return model


def assert_is_a_picture(path, min_size=(600, 300)):
    """A PNG of at least ``min_size`` pixels with many colours: not blank, not one flat fill."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], image.size
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = np.unique(pixels, axis=0)
    assert len(colours) > 50, len(colours)
    # no single colour covers the picture: white background plus drawing
    assert np.mean(np.all(pixels == pixels[0], axis=1)) < 0.95


def test_report_matches_the_models_predictions(model, model_file, mnist_dir, mnist, capsys):
    _, (x_test, y_test) = mnist
    assert main(["evaluate", model_file, "--dataset", "mnist", "--data-dir",
                 str(mnist_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    accuracy = model.score(x_test, y_test)
    assert lines[0] == (f"{model_file}: 784-32-10 float32 on the MNIST test set ({mnist_dir}), "
                        "10,000 samples")
    right = round(accuracy * 10_000)
    assert lines[1] == f"accuracy {100 * accuracy:.2f}% ({right:,} of 10,000 right)"
    assert lines[3].split() == ["class", "precision", "recall", "f1-score", "support"]
    report = classification_report(y_test, model.predict(x_test), 10)
    for digit in range(10):
        name, precision, recall, f1, support = lines[4 + digit].split()
        assert name == str(digit)
        assert float(precision) == pytest.approx(report.precision[digit], abs=5e-5)
        assert float(recall) == pytest.approx(report.recall[digit], abs=5e-5)
        assert float(f1) == pytest.approx(report.f1[digit], abs=5e-5)
        assert int(support.replace(",", "")) == np.sum(y_test == digit)
    assert lines[14].startswith("macro avg") and lines[15].startswith("weighted avg")
    assert lines[17] == "confusion matrix (rows: true class, columns: predicted class)"
    assert lines[18].split() == list(MNIST_CLASSES)
    matrix = np.array([[int(c.replace(",", "")) for c in line.split()[1:]]
                       for line in lines[19:29]])
    np.testing.assert_array_equal(matrix, report.confusion)


def test_json_holds_the_same_numbers(model, model_file, mnist, capsys):
    _, (x_test, y_test) = mnist
    assert main(["evaluate", model_file, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result) == ["accuracy", "classes", "confusion_matrix", "data", "macro_avg",
                              "model", "samples", "weighted_avg"]
    assert result["model"] == model_file and result["samples"] == 10_000
    assert result["accuracy"] == pytest.approx(model.score(x_test, y_test), abs=1e-12)
    assert [c["name"] for c in result["classes"]] == list(MNIST_CLASSES)
    assert [c["support"] for c in result["classes"]] == np.bincount(y_test).tolist()
    assert np.trace(result["confusion_matrix"]) == round(10_000 * result["accuracy"])


def test_any_idx_directory_or_a_known_data_set_by_name(model_file, mnist_dir, capsys):
    # --data-dir alone: any data set in the IDX layout, classes named by their labels
    assert main(["evaluate", model_file, "--data-dir", str(mnist_dir)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(f"on the test set of the IDX data set in {mnist_dir}, 10,000 samples")


def test_fashion_mnist_rows_carry_its_class_names(fashion_mnist_dir, capsys, tmp_path):
    from fastmlp.datasets import dataset_info

    path = tmp_path / "fashion.npz"
    MLP((784, 8, 10), seed=0).save(path)
    assert main(["evaluate", str(path), "--dataset", "fashion-mnist", "--data-dir",
                 str(fashion_mnist_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "on the Fashion-MNIST test set" in lines[0]
    names = dataset_info("fashion-mnist").class_names
    assert [line[:len(name)] for line, name in zip(lines[4:14], names)] == list(names)


def test_an_npz_file_with_class_names(model, model_file, mnist, tmp_path, capsys):
    _, (x_test, y_test) = mnist
    names = [f"class-{digit}" for digit in range(10)]
    path = tmp_path / "subset.npz"
    np.savez(path, x_test=x_test[:500].reshape(-1, 28, 28), y_test=y_test[:500],
             class_names=np.array(names))
    assert main(["evaluate", model_file, "--data", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"on {path}, 500 samples")
    assert [line.split()[0] for line in out[4:14]] == names
    assert out[18].split() == [str(i) for i in range(10)]  # long names: columns by index
    assert out[19].startswith("0 class-0 ")
    np.savez(tmp_path / "plain.npz", x=x_test[:300], y=y_test[:300])
    data = evaluation_data(data=tmp_path / "plain.npz")
    assert data.class_names == MNIST_CLASSES and data.x.shape == (300, 784)
    result = evaluate(model, data)
    assert result.accuracy == pytest.approx(model.score(x_test[:300], y_test[:300]))


def test_mistakes_come_most_confident_first(model, mnist):
    _, (x_test, y_test) = mnist
    result = evaluate(model, evaluation_data())
    shown = result.confident_mistakes(24)
    assert len(shown) == 24
    assert np.all(result.y_pred[shown] != result.y_true[shown])
    assert np.all(np.diff(result.confidence[shown]) <= 0)
    wrong = result.y_pred != result.y_true
    assert result.confidence[shown[-1]] >= np.sort(result.confidence[wrong])[-24]


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/none.npz"], "fastmlp: error: data file {tmp}/none.npz does not exist"),
    (["--data", "{tmp}/bad.npz"],
     "fastmlp: error: {tmp}/bad.npz holds images, labels; expected x_test and y_test (or x and y)"),
    (["--data", "{tmp}/three.npz"],
     "fastmlp: error: the model has 10 classes but {tmp}/three.npz has 3 (a, b, c)"),
    (["--plot", "{tmp}/nodir/plot.png"],
     "fastmlp: error: cannot write the plot to {tmp}/nodir/plot.png: no directory"),
    (["--plot", "{tmp}/plot.xyz"], "fastmlp: error: cannot write the plot to {tmp}/plot.xyz: "
                                   "unknown image format 'xyz'"),
])
def test_errors_are_one_line(model_file, mnist, tmp_path, capsys, args, message):
    _, (x_test, y_test) = mnist
    np.savez(tmp_path / "bad.npz", images=x_test[:10], labels=y_test[:10])
    np.savez(tmp_path / "three.npz", x=x_test[:10], y=y_test[:10] % 3, class_names=["a", "b", "c"])
    args = [arg.format(tmp=tmp_path) for arg in args]
    assert main(["evaluate", model_file, *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(message.format(tmp=tmp_path)), captured.err


def test_data_and_data_dir_exclude_each_other(model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", model_file, "--data", "a.npz", "--data-dir", "d"])
    assert exit_info.value.code == 2
    assert "argument --data-dir: not allowed with argument --data" in capsys.readouterr().err


def test_evaluate_plot_draws_matrix_and_mistakes(model_file, tmp_path, capsys):
    path = tmp_path / "evaluation.png"
    assert main(["evaluate", model_file, "--plot", str(path)]) == 0
    assert capsys.readouterr().err.endswith(f"fastmlp: saved plot to {path}\n")
    assert_is_a_picture(path, min_size=(1400, 600))


def test_train_plot_draws_the_curves(mnist_dir, tmp_path, capsys):
    path = tmp_path / "training.png"
    assert main(["train", "--epochs", "3", "--hidden", "16", "--data-dir", str(mnist_dir),
                 "--plot", str(path)]) == 0
    assert capsys.readouterr().err.endswith(f"fastmlp: saved plot to {path}\n")
    assert_is_a_picture(path, min_size=(1000, 400))


@pytest.mark.parametrize("command", [["evaluate", "{model}"], ["train", "--epochs", "1"]])
def test_without_matplotlib_the_error_names_the_extra(model_file, monkeypatch, tmp_path, capsys,
                                                      command):
    for name in [name for name in sys.modules if name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = [arg.format(model=model_file) for arg in command]
    assert main([*args, "--plot", str(tmp_path / "out.png")]) == 1
    assert capsys.readouterr().err == (
        'fastmlp: error: plotting needs matplotlib: pip install "fastmlp[plot]"\n')
    assert not (tmp_path / "out.png").exists()
