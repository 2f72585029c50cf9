"""The fastmlp command line: data sources, training output, progress, saving, one-line errors."""

import csv
import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.backends.numba import _compile_notice as compile_notice
from fastmlp.benchmark import Sweep
from fastmlp.cli import COMMANDS, build_parser, main

EPOCH = r"epoch  (\d)/2  loss \d\.\d{4}  train acc \d+\.\d\d%  (test acc \d+\.\d\d%  )?"
FINAL = r"final  (test acc \d+\.\d\d%  )?train acc \d+\.\d\d%  loss \d\.\d{4}  2 epochs, "
COMPILING = f"fastmlp: {compile_notice.MESSAGE}"  # on stderr, while numba compiles


def test_train_prints_one_line_per_epoch_and_saves(mnist_dir, tmp_path, capsys):
    path = tmp_path / "model.npz"
    status = main(["train", "--epochs", "2", "--hidden", "32", "--dataset", "mnist",
                   "--data-dir", str(mnist_dir), "--backend", "matmul", "--save", str(path)])
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert status == 0
    # notices on stderr: what was read and what the run is, then what was written
    assert [line for line in captured.err.splitlines() if line != COMPILING] == [
        "fastmlp: MNIST: 60,000 training and 10,000 test images of 28x28, 10 classes",
        "fastmlp: 784-32-10 float32, backend matmul, adamw lr 0.003 weight decay 0.05 onecycle, "
        "batch 128",
        f"fastmlp: saved model to {path}"]
    # results on stdout
    assert "\r" not in "".join(out)  # captured output is no terminal: plain lines, no bar
    epochs = out[0:2]
    for epoch, line in enumerate(epochs, 1):
        assert re.match(EPOCH + r"[\d,]+ samples/s  \d+\.\d\d s$", line)
        assert line.startswith(f"epoch  {epoch}/2")
    accuracy = float(epochs[1].split("test acc ")[1].split("%")[0])
    assert accuracy > 90
    assert re.match(FINAL + r"\d+\.\d s training$", out[2])
    assert f"test acc {accuracy:.2f}%" in out[2]
    assert len(out) == 3
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
    (["bench", "--hidden", ","], "fastmlp: error: argument --hidden: expected at least one width"),
    (["bench", "--threads", "0"], "fastmlp: error: argument --threads: expected a positive"),
    (["bench", "--threads", "100000"], "fastmlp: error: threads must be between 1 and "),
    (["train", "--dataset", "cifar"],
     "fastmlp: error: argument --dataset: invalid choice: 'cifar'"),
    (["train", "--data", "a.npz", "--data-dir", "b"],
     "fastmlp: error: argument --data-dir: not allowed with argument --data"),
    (["train", "--data", "a.npz", "--dataset", "mnist"],
     "fastmlp: error: argument --data: not allowed with argument --dataset"),
    (["train", "--dataset", "mnist", "--data", "a.npz"],
     "fastmlp: error: argument --data: not allowed with argument --dataset"),
    (["evaluate", "m.npz", "--data", "a.npz", "--dataset", "mnist"],
     "fastmlp: error: argument --data: not allowed with argument --dataset"),
    (["bench", "--data-dir", "d", "--data", "a.npz"],
     "fastmlp: error: argument --data: not allowed with argument --data-dir"),
    (["train", "--data", "/nonexistent/mine.npz"],
     "fastmlp: error: cannot read /nonexistent/mine.npz: No such file or directory"),
    (["profile", "--data", "/nonexistent/mine.npz"], "fastmlp: error: cannot read"),
    (["bench", "--data-dir", "/nonexistent/idx"], "fastmlp: error: no such file: "),
])
def test_errors_print_one_line_and_exit_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_help_documents_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command.name, "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # as one line, unwrapped
    assert " ".join(command.description.split()) in help_text
    assert "examples: " + " ".join(command.examples.split()) in help_text
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command.name]
    for action in subparser._actions:
        assert action.help, f"fastmlp {command.name} {action.option_strings or action.dest}"


def test_the_main_help_states_where_output_goes_and_offers_the_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("Results go to standard output; notices ('fastmlp: ...': what was read and written, "
            "downloads, numba compiling) to standard error. --json on any command prints its "
            "results as JSON alone on standard output.") in help_text
    assert "--version print the installed version, where fastmlp runs from" in help_text


def test_every_example_parses():
    parser = build_parser()
    for command in COMMANDS:
        for line in command.examples.splitlines():
            words = line.split()
            assert words[:2] == ["fastmlp", command.name]
            assert parser.parse_args(words[1:]).run is command.run


def test_missing_data_directory_is_named(tmp_path):
    result = run_cli("train", "--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert str(tmp_path / "nowhere") in result.stderr


def test_diverging_training_stops_with_one_line(mnist_dir):
    result = run_cli("train", "--data-dir", str(mnist_dir), "--optimizer", "sgd", "--lr", "1e30",
                     "--schedule", "constant", "--hidden", "8")
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line != COMPILING]
    assert len(lines) == 3, result.stderr  # the run's two notices, then one line of error
    assert lines[1].startswith("fastmlp: 784-8-10 float32, backend numba, sgd lr 1e+30")
    assert lines[2].startswith("fastmlp: error: training diverged")
    assert "at epoch 1, step" in lines[2]


def test_a_closed_pipe_ends_output_quietly(mnist_dir):
    # `fastmlp profile --json | head -1`: the reader leaves before the JSON is written.
    process = subprocess.Popen(
        [sys.executable, "-m", "fastmlp", "profile", "--json", "--all-backends", "--steps", "1",
         "--hidden", "8", "--data-dir", str(mnist_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait() == 1
    # Nothing but, on a machine whose numba cache is cold, the one-line compile notice.
    assert [line for line in stderr.splitlines() if line != COMPILING] == []


def test_train_on_any_idx_data_set(small_idx, tmp_path, capsys):
    path = tmp_path / "small.npz"
    status = main(["train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden", "16",
                   "--batch-size", "16", "--save", str(path)])
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert status == 0
    assert err[0] == (f"fastmlp: IDX data set in {small_idx} (no checksums: --dataset verifies "
                      "a known one): 300 training and 60 test images of 8x8, 3 classes")
    assert err[1].startswith("fastmlp: 64-16-3 float32, backend ")
    assert [re.match(EPOCH, line).group(1) for line in out[0:2]] == ["1", "2"]
    assert float(re.search(r"test acc (\S+)%", out[2]).group(1)) > 90
    assert MLP.load(path).layer_sizes == (64, 16, 3)


def test_a_known_data_set_name_verifies_the_directory(mnist_dir):
    result = run_cli("train", "--dataset", "fashion-mnist", "--data-dir", str(mnist_dir))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"fastmlp: error: {mnist_dir / 'train-images-idx3-ubyte.gz'}: SHA-256 mismatch for "
        "train-images-idx3-ubyte: expected c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20"
        "f83aa44d888, found ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"]


def test_train_on_fashion_mnist_from_its_environment_variable(fashion_mnist_dir, monkeypatch,
                                                              capsys):
    monkeypatch.setenv("FASTMLP_FASHION_MNIST_DATA", str(fashion_mnist_dir))
    monkeypatch.setenv("FASTMLP_DATA", "/nonexistent/mnist")  # MNIST's variable is not read
    status = main(["train", "--dataset", "fashion-mnist", "--epochs", "1", "--hidden", "32",
                   "--backend", "matmul", "--quiet"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0 and len(out) == 1
    assert out[0].startswith("final  test acc ")
    assert float(out[0].split("test acc ")[1].split("%")[0]) > 80  # chance is 10 %


def test_quiet_prints_only_the_final_line(small_idx, tmp_path, capsys):
    path = tmp_path / "model.npz"
    status = main(["train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden", "16",
                   "--batch-size", "16", "--quiet", "--save", str(path)])
    out, err = capsys.readouterr()
    assert status == 0
    assert re.fullmatch(FINAL + r"\d+\.\d s training\n", out)
    assert [line for line in err.splitlines() if line != COMPILING] == []  # and no notices
    assert path.exists()


def test_train_logs_each_epoch_to_csv_and_resume_continues_the_file(small_idx, tmp_path,
                                                                     capsys):
    log, run = tmp_path / "log.csv", tmp_path / "run"
    options = ["--data-dir", str(small_idx), "--epochs", "2", "--hidden", "8", "--batch-size",
               "16", "--log", str(log)]
    assert main(["train", *options, "--checkpoint", str(run)]) == 0
    out = capsys.readouterr().out
    with open(log, newline="") as file:
        rows = list(csv.reader(file))
    # the validation columns named as the epoch lines name them: the test set's
    assert rows[0] == ["epoch", "loss", "train_accuracy", "test_accuracy", "samples_per_second",
                       "seconds", "test_loss"]
    assert [row[0] for row in rows[1:]] == ["1", "2"]
    epochs = re.findall(r"epoch  \d/2  loss (\S+)  train acc (\S+)%  test acc (\S+)%", out)
    assert [(f"{float(row[1]):.4f}", f"{100 * float(row[2]):.2f}", f"{100 * float(row[3]):.2f}")
            for row in rows[1:]] == epochs
    written = log.read_text()
    # --resume of the finished run: nothing trains, the log is written again, the same
    assert main(["train", "--resume", str(run), "--log", str(log), "--quiet"]) == 0
    assert log.read_text() == written
    assert "log" not in json.loads((run / "run.json").read_text())  # an output, not the run's


@pytest.mark.parametrize("with_test", [True, False])
def test_train_on_arrays_from_npz(with_test, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2, 3))
    y = (x[:, 0, 0] > 0).astype(np.int64) + 2 * (x[:, 1, 2] > 0)  # 4 classes
    arrays = {"x_train": x[:150], "y_train": y[:150]}
    if with_test:
        arrays.update(x_test=x[150:], y_test=y[150:])
    np.savez(tmp_path / "mine.npz", **arrays)
    status = main(["train", "--data", str(tmp_path / "mine.npz"), "--epochs", "2",
                   "--hidden", "8", "--batch-size", "10"])
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert status == 0
    tested = "50 test" if with_test else "no test"
    assert err[0] == (f"fastmlp: {tmp_path / 'mine.npz'}: 150 training and {tested} samples of "
                      "2x3, 4 classes")
    assert err[1].startswith("fastmlp: 6-8-4 float32")
    assert len(out) == 3
    for line in out:
        assert ("test acc" in line) == with_test
    assert re.match(FINAL, out[2])


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((3, 2))}, "missing array 'y_train'; an .npz data set holds x_train, "
                                    "y_train and optionally x_test, y_test"),
    ({"x_train": np.array([[0.0, np.nan]]), "y_train": np.array([0])},
     "x_train contains NaN; inputs must be finite"),
    ({"x_train": np.zeros((2, 2)), "y_train": np.array([0, -2])},
     "y_train has label -2; labels must be 0 .. n_classes - 1"),
    ({"x_train": np.zeros((2, 2)), "y_train": np.array([0, 1]), "x_test": np.zeros((1, 2)),
      "y_test": np.array([4_000_000_000])},
     "the largest label, 4,000,000,000, makes more classes than the 3 samples; labels must be "
     "0 .. n_classes - 1"),
])
def test_bad_npz_data_is_one_error_line(arrays, message, tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    result = run_cli("train", "--data", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"fastmlp: error: {path}: {message}\n"


def test_train_redirected_to_a_file_leaves_the_results_alone_there(small_idx, tmp_path):
    # fastmlp train ... > out.txt
    with open(tmp_path / "out.txt", "w") as file:
        result = subprocess.run(
            [sys.executable, "-m", "fastmlp", "train", "--data-dir", str(small_idx), "--epochs",
             "2", "--hidden", "16", "--batch-size", "16", "--backend", "matmul", "--save",
             str(tmp_path / "model.npz")], stdout=file, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr
    out = (tmp_path / "out.txt").read_text().splitlines()
    assert [re.match(EPOCH, line).group(1) for line in out[:2]] == ["1", "2"]
    assert re.match(FINAL, out[2]) and len(out) == 3
    assert result.stderr.splitlines() == [
        f"fastmlp: IDX data set in {small_idx} (no checksums: --dataset verifies a known one): "
        "300 training and 60 test images of 8x8, 3 classes",
        "fastmlp: 64-16-3 float32, backend matmul, adamw lr 0.003 weight decay 0.05 onecycle, "
        "batch 16",
        f"fastmlp: saved model to {tmp_path / 'model.npz'}"]


def test_the_console_script_is_main_with_its_objects_left_to_the_exit(small_idx, tmp_path):
    # console (the fastmlp script, python -m fastmlp) returns main's status, having
    # moved every object out of the garbage collector's way (gc.freeze) once the command
    # is done: its model is written whole, an error still exits 1
    code = ("import atexit, gc, sys\n"
            "from fastmlp.cli import console\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
            "sys.exit(console(sys.argv[1:]))")
    path = tmp_path / "model.npz"
    done = subprocess.run(
        [sys.executable, "-c", code, "train", "--data-dir", str(small_idx), "--epochs", "1",
         "--hidden", "8", "--backend", "matmul", "--quiet", "--save", str(path)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "frozen True"
    assert MLP.load(path).layer_sizes == (64, 8, 3)
    failed = subprocess.run([sys.executable, "-c", code, "train", "--backend", "tensorflow"],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and failed.stdout == "frozen True\n"
    assert failed.stderr.startswith("fastmlp: error: unknown backend 'tensorflow'")


def test_train_json_is_the_run_and_its_result_alone_on_stdout(small_idx, tmp_path, capsys):
    from fastmlp.datasets import load_idx_dataset

    path = tmp_path / "model.npz"
    assert main(["train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden", "16",
                 "--batch-size", "16", "--backend", "matmul", "--save", str(path),
                 "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # nothing but the JSON: no epoch lines, no final line
    assert list(result) == ["model", "data", "config", "history", "final", "saved"]
    assert result["model"] == {"layer_sizes": [64, 16, 3], "dtype": "float32",
                               "parameters": 64 * 16 + 16 + 16 * 3 + 3}
    assert result["data"] == {
        "description": f"IDX data set in {small_idx} (no checksums: --dataset verifies a known "
                       "one): 300 training and 60 test images of 8x8, 3 classes",
        "train_samples": 300, "test_samples": 60, "n_classes": 3}
    assert result["config"] == {
        "hidden": [16], "dtype": "float32", "seed": 0, "backend": "matmul", "epochs": 2,
        "batch_size": 16, "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05,
        "schedule": "onecycle", "early_stopping": False, "validation_fraction": 0.1,
        "patience": 5, "anneal_epochs": 5, "dataset": None, "data_dir": str(small_idx),
        "data": None}
    history = result["history"]
    assert [epoch["epoch"] for epoch in history] == [1, 2]
    assert list(history[0]) == ["epoch", "loss", "train_accuracy", "test_loss",
                                "test_accuracy", "samples_per_second", "seconds"]
    final = result["final"]
    assert final["test_accuracy"] == history[-1]["test_accuracy"] > 0.9
    assert (final["train_accuracy"], final["loss"]) == (history[-1]["train_accuracy"],
                                                        history[-1]["loss"])
    assert final["epochs"] == 2 and final["best_epoch"] is None and final["annealed_from"] is None
    assert final["stop_reason"] == "ran all 2 epochs" and final["resumed_after"] == 0
    assert final["training_seconds"] == pytest.approx(sum(e["seconds"] for e in history))
    assert result["saved"] == {"model": str(path), "plot": None, "checkpoint": None}
    # the numbers are the saved model's
    _, (x_test, y_test) = load_idx_dataset(small_idx)
    assert MLP.load(path).score(x_test.reshape(60, -1), y_test) == final["test_accuracy"]
    assert err.splitlines()[-1] == f"fastmlp: saved model to {path}"  # notices stay on stderr


def test_train_json_with_early_stopping_and_timings(small_idx, capsys):
    assert main(["train", "--data-dir", str(small_idx), "--epochs", "3", "--hidden", "8",
                 "--batch-size", "16", "--backend", "matmul", "--early-stopping",
                 "--validation-fraction", "0.2", "--timings", "--json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    history, final = result["history"], result["final"]
    assert [key for key in history[0] if key.startswith("val_")] == ["val_loss",
                                                                     "val_accuracy"]
    best = history[final["best_epoch"] - 1]
    assert best["val_loss"] == min(epoch["val_loss"] for epoch in history)
    assert (final["train_accuracy"], final["loss"]) == (best["train_accuracy"], best["loss"])
    assert 0 < final["test_accuracy"] <= 1  # the test set, scored once at the end
    timings = result["timings"]
    assert list(timings) == ["start-up and imports", "backend import", "data",
                             "input scaling (fit)", "epoch 1 (incl. kernels' first call)",
                             "epochs 2-3", "scoring and bookkeeping", "total"]
    assert timings["total"] == pytest.approx(sum(
        seconds for label, seconds in timings.items() if label != "total" and seconds))
    assert [line for line in err.splitlines() if line != COMPILING] == []  # --quiet


def run_in_terminal(*args, columns=100, stdout_to_terminal=True):
    """Run ``fastmlp`` with its standard error, and standard output unless told otherwise,
    on a pseudo-terminal; return the text the terminal got and, when stdout was not on it,
    what stdout got."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "fastmlp", *args],
                               stdout=terminal if stdout_to_terminal else subprocess.PIPE,
                               stderr=terminal)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    out = "" if stdout_to_terminal else process.stdout.read().decode()
    screen = b"".join(chunks).decode().replace("\r\n", "\n")  # the terminal's line ends
    assert process.wait(timeout=120) == 0, screen
    return screen if stdout_to_terminal else (screen, out)


def test_a_terminal_gets_a_progress_bar(small_idx):
    out = run_in_terminal("train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden",
                          "16", "--batch-size", "4")  # 75 steps an epoch, 10 updates of 8
    assert re.search(r"\repoch  1/2: +11%\|.*\| 8/75 \[.*step/s, loss \d\.\d{4}, "
                     r"acc \d+\.\d\d%\]", out)
    assert "| 75/75 [" in out
    # Each bar is cleared and the epoch's plain line printed in its place.
    on_screen = [line.rsplit("\r", 1)[-1] for line in out.split("\n")]
    epochs = [line for line in on_screen if line.startswith("epoch ")]
    assert [re.match(EPOCH, line).group(1) for line in epochs] == ["1", "2"]
    assert re.match(FINAL, [line for line in on_screen if line.startswith("final ")][0])


def test_the_bar_stays_on_the_terminal_when_the_lines_go_to_a_file(small_idx):
    # fastmlp train > log.txt: the bar is progress, on stderr, the terminal; the epoch lines
    # are results, on stdout, the file, without a bar's carriage returns.
    screen, out = run_in_terminal("train", "--data-dir", str(small_idx), "--epochs", "2",
                                  "--hidden", "16", "--batch-size", "4",
                                  stdout_to_terminal=False)
    assert "| 75/75 [" in screen and "samples/s" not in screen
    assert "\r" not in out
    lines = out.splitlines()  # the header lines are notices, on the terminal
    assert [re.match(EPOCH, line).group(1) for line in lines[:2]] == ["1", "2"]
    assert re.match(FINAL, lines[2]) and len(lines) == 3


def test_quiet_shows_no_bar_in_a_terminal(small_idx):
    out = run_in_terminal("train", "--data-dir", str(small_idx), "--epochs", "2", "--quiet")
    assert re.fullmatch(FINAL + r"\d+\.\d s training\n", out)


def test_profile_and_bench_take_any_data(small_idx, small_images, tmp_path, capsys):
    assert main(["profile", "--data-dir", str(small_idx), "--steps", "3", "--hidden", "16",
                 "--batch-size", "16", "--backend", "matmul", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["layer_sizes"] == [64, 16, 3] and profile["samples"] == 48
    x, y = small_images(120, 2)
    np.savez(tmp_path / "mine.npz", x_train=x.reshape(120, -1)[:, :10], y_train=y)
    assert main(["bench", "--data", str(tmp_path / "mine.npz"), "--backends", "matmul",
                 "--batch-sizes", "32", "--epochs", "1", "--no-torch", "--no-jax"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu ")  # what it ran on, then the tables
    assert "\n10-128-128-3 float32, plain SGD, 120 samples" in out


def test_bench_json_is_the_sweep_alone_on_stdout(small_images, tmp_path, capsys):
    x, y = small_images(120, 2)
    np.savez(tmp_path / "mine.npz", x_train=x.reshape(120, -1)[:, :10], y_train=y)
    assert main(["bench", "--data", str(tmp_path / "mine.npz"), "--backends", "matmul",
                 "--batch-sizes", "32,64", "--epochs", "1", "--no-torch", "--no-jax",
                 "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # nothing but the JSON
    assert list(data) == ["runs"] and len(data["runs"]) == 1  # one width: the default 128
    (run,) = data["runs"]
    assert set(run) == {"layer_sizes", "samples", "peak_gflops", "gemm_gflops", "threads",
                        "contenders", "machine", "dtype", "epoch_seconds", "forward_seconds",
                        "predict_seconds"}
    assert run["dtype"] == "float32"
    assert run["layer_sizes"] == [10, 128, 128, 3] and run["samples"] == 120
    assert list(run["contenders"]) == ["matmul"]
    assert run["contenders"]["matmul"]["threads"] == run["threads"] >= 1
    assert isinstance(run["peak_gflops"], float) and run["peak_gflops"] > 0
    assert list(run["epoch_seconds"]) == ["32", "64"]
    for seconds in [*run["epoch_seconds"].values(), run["forward_seconds"],
                    run["predict_seconds"]]:
        assert list(seconds) == ["matmul"]
        assert isinstance(seconds["matmul"], float) and seconds["matmul"] > 0
    assert run["machine"]["cpu"]["cores"] >= 1  # what it ran on
    result = Sweep.from_dict(data).runs[0]
    assert result.epoch_seconds[64]["matmul"] == run["epoch_seconds"]["64"]["matmul"]
    assert "batch 32: matmul " in captured.err  # the progress lines go to stderr


def test_bench_in_float64_times_every_contender_in_float64(small_images, tmp_path, capsys,
                                                            monkeypatch):
    import fastmlp.benchmark as benchmark

    dtypes = []
    real = benchmark.MLP
    monkeypatch.setattr(benchmark, "MLP",
                        lambda *a, **k: dtypes.append(k["dtype"]) or real(*a, **k))
    x, y = small_images(120, 2)
    np.savez(tmp_path / "mine.npz", x_train=x.reshape(120, -1)[:, :10], y_train=y)
    assert main(["bench", "--data", str(tmp_path / "mine.npz"), "--backends", "matmul",
                 "--batch-sizes", "64", "--epochs", "1", "--no-torch", "--no-jax", "--dtype",
                 "float64", "--json"]) == 0
    result = Sweep.from_dict(json.loads(capsys.readouterr().out))
    assert result.runs[0].dtype == "float64"
    assert dtypes and {np.dtype(d) for d in dtypes} == {np.dtype(np.float64)}
    assert "10-128-128-3 float64, plain SGD" in str(result)


def test_train_timings_split_the_whole_process(small_idx, capsys):
    assert main(["train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden", "8",
                 "--backend", "matmul", "--quiet", "--timings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("timings (whole process):")
    rows = {line[:40].strip(): line[40:].split() for line in lines[start + 1:]}
    assert list(rows) == ["start-up and imports", "backend import", "data",
                          "input scaling (fit)", "epoch 1 (incl. kernels' first call)",
                          "epochs 2-2", "scoring and bookkeeping", "total"]
    seconds = {label: float(cells[0]) for label, cells in rows.items() if cells[0] != "unknown"}
    parts = sum(value for label, value in seconds.items() if label != "total")
    assert seconds["total"] == pytest.approx(parts, abs=0.005)
    shares = [float(cells[2].rstrip("%")) for label, cells in rows.items()
              if label != "total" and cells[0] != "unknown"]
    assert sum(shares) == pytest.approx(100, abs=0.5)


def test_a_download_is_announced_on_stderr(mnist_dir, tmp_path, monkeypatch, capsys):
    import dataclasses

    from fastmlp import datasets

    mirror = tmp_path / "mirror"
    shutil.copytree(mnist_dir, mirror)
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(
        datasets.DATASETS["mnist"], mirrors=(mirror.as_uri() + "/",)))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--epochs", "1", "--hidden", "8", "--backend", "matmul"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"fastmlp: downloading MNIST into {tmp_path / 'cache' / 'mnist'}"
    assert len(os.listdir(tmp_path / "cache" / "mnist")) == 4
