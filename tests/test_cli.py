"""The fastmlp command line: training output, saving, and one-line errors."""

import subprocess
import sys

import pytest

from fastmlp import MLP
from fastmlp.cli import main


def test_train_prints_one_line_per_epoch_and_saves(mnist_dir, tmp_path, capsys):
    path = tmp_path / "model.npz"
    status = main(["train", "--epochs", "2", "--hidden", "32", "--data-dir", str(mnist_dir),
                   "--backend", "matmul", "--save", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0].startswith("fastmlp: 784-32-10 float32, backend matmul, adamw lr 0.003")
    epochs = [line for line in out if line.startswith("epoch")]
    assert len(epochs) == 2
    assert epochs[1].startswith("epoch  2/2  loss ")
    for field in ("train acc", "test acc", "samples/s", " s"):
        assert field in epochs[1]
    accuracy = float(epochs[1].split("test acc ")[1].split("%")[0])
    assert accuracy > 90
    assert out[-1] == f"saved model to {path}"
    model = MLP.load(path)
    assert model.layer_sizes == (784, 32, 10)
    from fastmlp.datasets import load_mnist

    _, (x_test, y_test) = load_mnist(mnist_dir)
    assert 100 * model.score(x_test.reshape(-1, 784), y_test) == pytest.approx(accuracy, abs=0.01)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], capture_output=True,
                          text=True, env=env)


@pytest.mark.parametrize("args, message", [
    (["train", "--backend", "tensorflow"], "fastmlp: error: unknown backend 'tensorflow'; valid"),
    (["train", "--data-dir", "/nonexistent/mnist"], "fastmlp: error: "),
    (["train", "--epochs", "0"], "fastmlp: error: argument --epochs: expected a positive integer"),
    (["train", "--optimizer", "lbfgs"], "fastmlp: error: argument --optimizer: invalid choice"),
    (["train", "--hidden", "12,x"], "fastmlp: error: argument --hidden: expected comma-separated"),
    (["fly"], "fastmlp: error: argument command: invalid choice: 'fly'"),
    (["profile", "--backend", "tensorflow"], "fastmlp: error: unknown backend 'tensorflow'"),
    (["profile", "--steps", "0"], "fastmlp: error: argument --steps: expected a positive"),
    (["profile", "--data-dir", "/nonexistent/mnist"], "fastmlp: error: no such file"),
    (["bench", "--backends", "numba,jax"], "fastmlp: error: unknown backend 'jax'"),
    (["bench", "--batch-sizes", "128,big"], "fastmlp: error: argument --batch-sizes: expected"),
    (["bench", "--batch-sizes", ","], "fastmlp: error: argument --batch-sizes: expected at least"),
    (["bench", "--backends", ","], "fastmlp: error: argument --backends: expected comma-sep"),
])
def test_errors_print_one_line_and_exit_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)
    assert "Traceback" not in result.stderr


def test_missing_data_directory_is_named(tmp_path):
    result = run_cli("train", "--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert str(tmp_path / "nowhere") in result.stderr


def test_diverging_training_stops_with_one_line(mnist_dir):
    result = run_cli("train", "--data-dir", str(mnist_dir), "--optimizer", "sgd", "--lr", "1e30",
                     "--schedule", "constant", "--hidden", "8")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastmlp: error: training diverged")
    assert "at epoch 1, step" in lines[0]


def test_a_closed_pipe_ends_output_quietly(mnist_dir):
    # `fastmlp profile --json | head -1`: the reader leaves before the JSON is written.
    process = subprocess.Popen(
        [sys.executable, "-m", "fastmlp", "profile", "--json", "--all-backends", "--steps", "1",
         "--hidden", "8", "--data-dir", str(mnist_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait() == 1
    assert stderr == ""
