"""Checkpoints: a run interrupted and resumed gives the same bits; other runs are refused."""

import csv
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, CheckpointError
from fastmlp._atomic import unwritable
from fastmlp.checkpoint import checkpoint_file
from fastmlp.cli import main


def problem(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12))
    return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)


def parameter_bytes(model):
    return b"".join(a.tobytes() for pair in model.params for a in pair)


def interrupt_after(epoch):
    """A callback that stops training as Ctrl-C would, once ``epoch`` is done."""
    def callback(done, history):
        if done == epoch:
            raise KeyboardInterrupt
    return callback


SETTINGS = {
    "adamw": dict(optimizer="adamw"),
    "momentum, early stopping": dict(optimizer="momentum", early_stopping=True, patience=50),
    "sgd, cosine, validation data": dict(optimizer="sgd", schedule="cosine",
                                         validation_data=problem(60, seed=1)),
    "adam, class weights, early stopping": dict(optimizer="adam", class_weight="balanced",
                                                early_stopping=True, patience=50),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_a_resumed_run_ends_with_the_bits_of_the_uninterrupted_one(backend, settings, dtype,
                                                                   tmp_path):
    x, y = problem()
    kwargs = dict(epochs=4, batch_size=32, seed=3, **SETTINGS[settings])
    with fastmlp.use_backend(backend):
        whole = MLP((12, 16, 3), dtype=dtype, seed=0)
        expected = whole.fit(x, y, **kwargs)
        with pytest.raises(KeyboardInterrupt):
            MLP((12, 16, 3), dtype=dtype, seed=0).fit(
                x, y, checkpoint=tmp_path / "run", callback=interrupt_after(2), **kwargs)
        # a new process would start from a new model: the checkpoint brings back the rest
        resumed = MLP((12, 16, 3), dtype=dtype, seed=7)
        history = resumed.fit(x, y, checkpoint=tmp_path / "run", resume=True, **kwargs)
    assert parameter_bytes(resumed) == parameter_bytes(whole)
    assert resumed.scaler.mean == whole.scaler.mean and resumed.scaler.std == whole.scaler.std
    for name in ("loss", "train_accuracy", "val_accuracy", "val_loss"):
        assert getattr(history, name) == getattr(expected, name), name
    assert (history.best_epoch, history.stop_reason) == (expected.best_epoch,
                                                        expected.stop_reason)
    assert (history.resumed_after, expected.resumed_after) == (2, 0)


def noise(n=300, seed=0):
    """Labels that do not depend on the inputs: the validation loss soon stalls."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12)), rng.integers(0, 3, n)


# best epoch 9, stalled after 11 (patience 2), annealed over 12-14, on every backend
ANNEALING = dict(epochs=20, batch_size=32, seed=3, optimizer="adam", learning_rate=0.01,
                 early_stopping=True, validation_fraction=0.2, patience=2, anneal_epochs=3)


@pytest.mark.parametrize("interrupted", [11, 12], ids=["at the stall", "in the anneal"])
@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_a_run_resumed_at_its_stall_or_in_its_anneal_ends_with_the_same_bits(
        backend, interrupted, tmp_path):
    x, y = noise()
    with fastmlp.use_backend(backend):
        whole = MLP((12, 16, 3), seed=0)
        expected = whole.fit(x, y, **ANNEALING)
        with pytest.raises(KeyboardInterrupt):
            MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=tmp_path / "run",
                                         callback=interrupt_after(interrupted), **ANNEALING)
        assert checkpoint_meta(tmp_path / "run")["stopping"]["annealed_from"] == 12
        resumed = MLP((12, 16, 3), seed=7)
        history = resumed.fit(x, y, checkpoint=tmp_path / "run", resume=True, **ANNEALING)
    assert (expected.best_epoch, expected.annealed_from, len(expected)) == (9, 12, 14)
    assert parameter_bytes(resumed) == parameter_bytes(whole)
    assert (history.loss, history.val_loss) == (expected.loss, expected.val_loss)
    assert (history.annealed_from, history.stop_reason) == (12, expected.stop_reason)


def test_a_checkpoint_from_before_the_anneal_resumes_without_one(tmp_path):
    x, y = noise()
    kwargs = {**ANNEALING, "anneal_epochs": 0}
    whole = MLP((12, 16, 3), seed=0)
    expected = whole.fit(x, y, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=tmp_path / "run",
                                     callback=interrupt_after(5), **kwargs)
    # as fastmlp wrote it before early stopping could anneal: no annealed_from
    path = checkpoint_file(tmp_path / "run")
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["stopping"]["annealed_from"]
    assert "anneal" not in meta["config"]["early stopping"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    resumed = MLP((12, 16, 3), seed=7)
    history = resumed.fit(x, y, checkpoint=tmp_path / "run", resume=True, **kwargs)
    assert parameter_bytes(resumed) == parameter_bytes(whole)
    assert (len(history), history.annealed_from) == (len(expected), None) == (11, None)


def test_a_checkpoint_with_another_anneal_is_refused(tmp_path):
    x, y = noise()
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=tmp_path / "run",
                                     callback=interrupt_after(1), **ANNEALING)
    with pytest.raises(CheckpointError, match="restore_best True, anneal_epochs 3 in the "
                                              "checkpoint, .*restore_best True, anneal_epochs 4 "
                                              "now"):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=tmp_path / "run", resume=True,
                                     **{**ANNEALING, "anneal_epochs": 4})


def test_the_optimizer_state_comes_back(tmp_path):
    x, y = problem()
    whole = fastmlp.optim.AdamW(learning_rate=3e-3)
    MLP((12, 16, 3), seed=0).fit(x, y, epochs=3, optimizer=whole)
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, epochs=3, optimizer=fastmlp.optim.AdamW(3e-3),
                                     checkpoint=tmp_path, callback=interrupt_after(2))
    resumed = fastmlp.optim.AdamW(learning_rate=3e-3)
    MLP((12, 16, 3), seed=0).fit(x, y, epochs=3, optimizer=resumed, checkpoint=tmp_path,
                                 resume=True)
    expected, state = whole.state_dict(), resumed.state_dict()
    assert state["steps"] == expected["steps"] == 3 * 3  # 300 samples: 3 batches an epoch
    assert state["class"] == "AdamW" and state["hyper"] == expected["hyper"]
    for name in ("m", "v"):
        assert [a.tobytes() for a in state["arrays"][name]] == \
            [a.tobytes() for a in expected["arrays"][name]]


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    x, y = problem()
    model = MLP((12, 16, 3), seed=0)
    expected = model.fit(x, y, epochs=2, checkpoint=tmp_path / "run")
    again = MLP((12, 16, 3), seed=0)
    history = again.fit(x, y, epochs=2, checkpoint=tmp_path / "run", resume=True)
    assert parameter_bytes(again) == parameter_bytes(model)
    assert history.loss == expected.loss and history.seconds == expected.seconds


def stop_after(epoch, calls=None):
    """A callback that ends training with StopTraining once ``epoch`` is done."""
    def callback(done, history):
        if calls is not None:
            calls.append(done)
        if done == epoch:
            raise fastmlp.StopTraining("enough")
    return callback


def checkpoint_meta(directory):
    with np.load(checkpoint_file(directory)) as archive:
        return json.loads(str(archive["meta"]))


@pytest.mark.parametrize("settings", ["adamw", "momentum, early stopping"])
def test_a_run_a_callback_stopped_is_finished_and_resumes_to_nothing(settings, tmp_path):
    x, y = problem()
    kwargs = dict(epochs=6, batch_size=32, seed=3, checkpoint=tmp_path / "run",
                  **SETTINGS[settings])
    model = MLP((12, 16, 3), seed=0)
    expected = model.fit(x, y, callback=stop_after(2), **kwargs)
    reason = "callback stopped training after epoch 2: enough"
    assert expected.stop_reason == reason and len(expected) == 2
    meta = checkpoint_meta(tmp_path / "run")
    assert (meta["epoch"], meta["finished"]) == (2, True)
    assert meta["history"]["stop_reason"] == reason
    calls = []
    resumed = MLP((12, 16, 3), seed=7)
    history = resumed.fit(x, y, resume=True, callback=stop_after(None, calls), **kwargs)
    assert calls == []  # no epoch ran
    assert parameter_bytes(resumed) == parameter_bytes(model)
    assert (history.loss, history.stop_reason, history.best_epoch, history.resumed_after) == \
        (expected.loss, reason, expected.best_epoch, 2)


def test_the_cli_resumes_a_run_a_callback_stopped_at_once(small_idx, tmp_path, capsys):
    # a run of fit() with the options fastmlp train has by default, stopped after epoch 2 of 5
    (x, y), (x_test, y_test) = fastmlp.datasets.load_idx_dataset(small_idx)
    x, x_test = x.reshape(len(x), -1), x_test.reshape(len(x_test), -1)
    model = MLP((64, 8, 3), seed=0)
    model.scaler.fit(x)
    model.fit(x, y, epochs=5, batch_size=16, validation_data=(x_test, y_test), seed=0,
              checkpoint=tmp_path / "run", callback=stop_after(2))
    assert main(["train", "--data-dir", str(small_idx), "--hidden", "8", "--epochs", "5",
                 "--batch-size", "16", "--resume", str(tmp_path / "run"),
                 "--save", str(tmp_path / "model.npz")]) == 0
    out, err = capsys.readouterr()
    # a notice, on stderr; the results on stdout
    assert f"fastmlp: resuming the run checkpointed in {tmp_path / 'run'} after epoch 2/5\n" \
        in err
    assert out.startswith("callback stopped training after epoch 2: enough\n")
    assert "epoch " not in out.replace("after epoch 2", "")
    assert re.search(r"\nfinal  test acc \d+\.\d\d%  train acc \d+\.\d\d%  loss \d\.\d{4}  "
                     r"2 epochs, ", out)
    assert parameter_bytes(MLP.load(tmp_path / "model.npz")) == parameter_bytes(model)


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def untimed(rows):
    """A CSV log's rows without its samples_per_second and seconds, which no rerun repeats."""
    return [[cell for name, cell in zip(rows[0], row) if name not in ("samples_per_second",
                                                                     "seconds")]
            for row in rows]


def test_the_csv_log_of_a_resumed_run_holds_each_epoch_once(tmp_path):
    x, y = problem()
    kwargs = dict(epochs=4, batch_size=32, seed=3, validation_data=problem(60, seed=1))
    MLP((12, 16, 3), seed=0).fit(x, y, log_csv=tmp_path / "whole.csv", **kwargs)
    whole = read_csv(tmp_path / "whole.csv")
    log, run = tmp_path / "run.csv", tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=run, log_csv=log,
                                     callback=interrupt_after(2), **kwargs)
    interrupted = log.read_text()
    assert untimed(read_csv(log)) == untimed(whole[:3])  # the header, epochs 1 and 2
    # and a row the checkpoint does not have (a checkpoint older than the log, say)
    with open(log, "a") as file:
        file.write(interrupted.splitlines()[-1].replace("2,", "3,", 1) + "\n")
    MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=run, resume=True, log_csv=log, **kwargs)
    rows = read_csv(log)
    assert log.read_text().startswith(interrupted)  # the interrupted run's rows, as they were
    assert untimed(rows) == untimed(whole)  # one header, epochs 1 .. 4 once each
    # a log first asked for when resuming holds the epochs before the resume too
    shutil.rmtree(run)
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=run, callback=interrupt_after(3),
                                     **kwargs)
    MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=run, resume=True,
                                 log_csv=tmp_path / "late.csv", **kwargs)
    assert untimed(read_csv(tmp_path / "late.csv")) == untimed(whole)


@pytest.mark.parametrize("change, difference", [
    (dict(layer_sizes=(12, 8, 3)), "layer sizes: 12-16-3 in the checkpoint, 12-8-3 now"),
    (dict(dtype="float64"), "dtype: float32 in the checkpoint, float64 now"),
    (dict(n=299), "training data: 300 samples of 12 features (float64), digest "),
    (dict(epochs=5), "epochs: 4 in the checkpoint, 5 now"),
    (dict(batch_size=64), "batch size: 32 in the checkpoint, 64 now"),
    (dict(optimizer=fastmlp.optim.Adam(3e-3)),
     "optimizer: AdamW (beta1 0.9, beta2 0.999, eps 1e-08, weight_decay 0.05, "
     "decoupled_weight_decay True) in the checkpoint, Adam (beta1 0.9, beta2 0.999, eps 1e-08, "
     "weight_decay 0.0, decoupled_weight_decay False) now"),
    (dict(seed=1), "seed: 0 in the checkpoint, 1 now"),
    (dict(class_weight={0: 2.0}), "sample weights: none in the checkpoint, digest "),
    (dict(early_stopping=True), "early stopping: off in the checkpoint, val_loss of a "
                                "stratified 0.1 of the training data, patience 5"),
])
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(change, difference,
                                                                    tmp_path):
    x, y = problem()
    settings = dict(layer_sizes=(12, 16, 3), dtype="float32", n=300, epochs=4, batch_size=32,
                    optimizer="adamw", seed=0, early_stopping=False)
    with pytest.raises(KeyboardInterrupt):
        run(settings, x, y, tmp_path, callback=interrupt_after(1))
    with pytest.raises(CheckpointError) as error:
        run({**settings, **change}, x, y, tmp_path, resume=True)
    message = str(error.value)
    assert message.startswith(f"checkpoint {checkpoint_file(tmp_path / 'run')} is of another "
                              "run; ")
    assert difference in message
    also = 1 if "early_stopping" in change else 0  # and then the validation data differ too
    assert message.count(" in the checkpoint, ") == 1 + also


def run(settings, x, y, tmp_path, **kwargs):
    settings = dict(settings)
    model = MLP(settings.pop("layer_sizes"), dtype=settings.pop("dtype"), seed=0)
    n = settings.pop("n")
    return model.fit(x[:n], y[:n], checkpoint=tmp_path / "run", **settings, **kwargs)


def test_a_new_run_does_not_overwrite_a_checkpoint(tmp_path):
    x, y = problem()
    MLP((12, 16, 3), seed=0).fit(x, y, epochs=1, checkpoint=tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    with pytest.raises(CheckpointError, match=re.escape(
            f"{tmp_path / 'run'} already holds a checkpoint; resume it (resume=True, or "
            f"fastmlp train --resume {tmp_path / 'run'}) or remove it first")):
        MLP((12, 16, 3), seed=0).fit(x, y, epochs=1, checkpoint=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == before


def test_resume_needs_a_checkpoint(tmp_path):
    x, y = problem()
    with pytest.raises(CheckpointError, match=re.escape(
            f"no checkpoint to resume in {tmp_path} (no checkpoint.npz)")):
        MLP((12, 16, 3), seed=0).fit(x, y, checkpoint=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"resume=True needs the checkpoint directory"):
        MLP((12, 16, 3), seed=0).fit(x, y, resume=True)


def test_an_optimizer_without_state_dict_cannot_checkpoint(tmp_path):
    class Plain:
        learning_rate = 0.1

        def step(self, params, grads, learning_rate):
            pass

    x, y = problem()
    with pytest.raises(TypeError, match="checkpoints need an optimizer with state_dict()"):
        MLP((12, 16, 3), seed=0).fit(x, y, optimizer=Plain(), checkpoint=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "no meta"])
def test_a_broken_checkpoint_is_named(damage, tmp_path):
    x, y = problem()
    MLP((12, 16, 3), seed=0).fit(x, y, epochs=1, checkpoint=tmp_path)
    path = tmp_path / "checkpoint.npz"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "not a zip":
        path.write_bytes(b"hello")
    else:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files if name != "meta"}
        np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read checkpoint {path}: ")):
        MLP((12, 16, 3), seed=0).fit(x, y, epochs=1, checkpoint=tmp_path, resume=True)


def test_ctrl_c_while_writing_a_checkpoint_leaves_the_last_one(tmp_path, monkeypatch):
    x, y = problem()
    fsync = os.fsync

    def interrupt_the_second(callback=[]):  # noqa: B006 - counts the calls
        def fsync_or_interrupt(fd):
            callback.append(fd)
            if len(callback) == 2:
                raise KeyboardInterrupt
            fsync(fd)
        return fsync_or_interrupt

    monkeypatch.setattr(os, "fsync", interrupt_the_second())
    with pytest.raises(KeyboardInterrupt):
        MLP((12, 16, 3), seed=0).fit(x, y, epochs=3, checkpoint=tmp_path)
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # no temporary file left
    with np.load(tmp_path / "checkpoint.npz") as archive:
        assert json.loads(str(archive["meta"]))["epoch"] == 1


def test_the_cli_checks_the_checkpoint_directory_before_any_work(small_idx, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a directory")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    cases = [
        (["--checkpoint", str(tmp_path / "nowhere" / "run")],
         f"cannot write checkpoints to {tmp_path / 'nowhere' / 'run'}: no directory "
         f"{tmp_path / 'nowhere'}"),
        (["--checkpoint", str(tmp_path / "notes.txt")],
         f"cannot write checkpoints to {tmp_path / 'notes.txt'}: {tmp_path / 'notes.txt'} is "
         "not a directory"),
        (["--resume", str(tmp_path)], f"no checkpoint to resume in {tmp_path} (no "
                                      "checkpoint.npz)"),
    ]
    if unwritable(read_only / "probe") is not None:  # root may write anywhere
        cases.append((["--checkpoint", str(read_only / "run")],
                      f"cannot write checkpoints to {read_only / 'run'}: cannot create a file "
                      f"in {read_only}: Permission denied"))
    try:
        for options, message in cases:
            status = main(["train", "--data-dir", str(small_idx), "--epochs", "1", *options])
            captured = capsys.readouterr()
            assert (status, captured.out, captured.err) == (1, "", f"fastmlp: error: {message}\n")
    finally:
        read_only.chmod(stat.S_IRWXU)


def test_the_cli_refuses_checkpoint_with_resume(small_idx, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data-dir", str(small_idx), "--checkpoint", str(tmp_path / "a"),
              "--resume", str(tmp_path)])
    assert "argument --resume: not allowed with argument --checkpoint" in capsys.readouterr().err


def fastmlp_train(*args, **popen):
    command = [sys.executable, "-m", "fastmlp", "train", "--hidden", "32", "--epochs", "6",
               "--backend", "numba", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def test_a_run_stopped_by_ctrl_c_resumes_to_the_same_model_file(mnist_dir, tmp_path,
                                                               sigint_delivered):
    data = ["--data-dir", mnist_dir, "--quiet"]
    whole = fastmlp_train(*data, "--save", tmp_path / "whole.npz")
    assert whole.wait() == 0, whole.stderr.read()
    run = tmp_path / "run"
    interrupted = fastmlp_train(*data, "--checkpoint", run, "--save", tmp_path / "resumed.npz")
    while not (run / "checkpoint.npz").exists() and interrupted.poll() is None:
        time.sleep(0.01)
    interrupted.send_signal(signal.SIGINT)  # during epoch 2 of 6
    _, err = interrupted.communicate()
    assert interrupted.returncode == 130
    assert err == f"fastmlp: interrupted; continue with --resume {run}\n"
    assert not (tmp_path / "resumed.npz").exists()
    with np.load(run / "checkpoint.npz") as archive:
        assert 1 <= json.loads(str(archive["meta"]))["epoch"] < 6
    # --resume alone: the run's options (network, epochs, backend, data) come from run/
    resumed = subprocess.Popen([sys.executable, "-m", "fastmlp", "train", "--resume", str(run),
                                "--quiet", "--save", str(tmp_path / "resumed.npz")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert resumed.wait() == 0, resumed.stderr.read()
    assert (tmp_path / "resumed.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()


def test_resume_takes_the_runs_options_unless_given_again(small_idx, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(small_idx), "--epochs", "2", "--hidden", "8",
                 "--batch-size", "16", "--checkpoint", str(run), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert main(["train", "--resume", str(run)]) == 0
    out, err = (stream.splitlines() for stream in capsys.readouterr())
    assert err[0] == ("fastmlp: the checkpointed run's options: --hidden 8 --epochs 2 "
                      f"--batch-size 16 --data-dir {small_idx}")
    assert err[-1] == f"fastmlp: resuming the run checkpointed in {run} after epoch 2/2"
    assert out[-1].split(" epochs, ")[0] == first.split(" epochs, ")[0]
    for option in ("--epochs", "--epo"):  # given again, abbreviated or not, it stands
        assert main(["train", "--resume", str(run), option, "3", "--quiet"]) == 1
        assert capsys.readouterr().err == (
            f"fastmlp: error: checkpoint {run / 'checkpoint.npz'} is of another run; "
            "epochs: 2 in the checkpoint, 3 now\n")
