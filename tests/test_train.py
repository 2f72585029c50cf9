"""Training: real MNIST learns, histories are complete, divergence stops with a message."""

import ast
import csv
import importlib.util
import inspect
import io
import os
import pathlib
import re
import sys
import types
import warnings

import numpy as np
import pytest

import fastmlp
import fastmlp.steps
import fastmlp.train
from fastmlp import MLP, StopTraining, TrainingDivergedError, backends, optim
from fastmlp.steps import NO_TIMER, ComposedSteps


def synthetic(n=300, n_features=8, n_classes=3, seed=0):
    """Linearly separable blobs: a network that learns anything gets them right."""
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centers[y] + rng.standard_normal((n, n_features)), y


FAST_BACKENDS = [name for name in fastmlp.available_backends() if name != "loop"]


@pytest.fixture(scope="module")
def mnist_runs(mnist):
    """Each fast backend trained on the same 6000 real MNIST images with the same seed."""
    (x_train, y_train), (x_test, y_test) = mnist
    runs = {}
    for backend in FAST_BACKENDS:
        model = MLP(seed=0)
        with fastmlp.use_backend(backend), warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow or other warnings in normal training
            history = model.fit(x_train[:6000], y_train[:6000], epochs=4, batch_size=64,
                                validation_data=(x_test, y_test), seed=0)
        runs[backend] = model, history
    return runs


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_training_on_real_mnist_beats_chance_by_far(mnist, mnist_runs, backend):
    _, (x_test, y_test) = mnist
    model, history = mnist_runs[backend]
    assert history.val_accuracy[-1] == pytest.approx(model.score(x_test, y_test))
    assert history.val_accuracy[-1] > 0.92  # chance is 0.10
    assert history.loss[-1] < history.loss[0]
    assert history.train_accuracy[-1] > history.train_accuracy[0]


@pytest.mark.parametrize("backend", [name for name in FAST_BACKENDS if name != "matmul"])
def test_backends_reach_the_same_accuracy_as_matmul(mnist_runs, backend):
    # Same seed, same batches: only rounding differs, so the test accuracy agrees within noise.
    reference = mnist_runs["matmul"][1]
    history = mnist_runs[backend][1]
    assert history.val_accuracy[-1] == pytest.approx(reference.val_accuracy[-1], abs=0.005)
    assert history.loss[-1] == pytest.approx(reference.loss[-1], rel=0.05)


def test_reference_backend_trains_like_matmul(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    scores = {}
    for backend in ("loop", "matmul"):
        model = MLP((784, 32, 10), dtype=np.float64, seed=1)
        with fastmlp.use_backend(backend):
            model.fit(x_train[:1000], y_train[:1000], epochs=1, batch_size=50, seed=1)
        scores[backend] = (model.score(x_test[:2000], y_test[:2000]), model.params)
    assert scores["loop"][0] == pytest.approx(scores["matmul"][0], abs=1e-9)
    for layer, layer2 in zip(scores["loop"][1], scores["matmul"][1]):
        for p, p2 in zip(layer, layer2):
            np.testing.assert_allclose(p, p2, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", list(optim.OPTIMIZERS))
@pytest.mark.parametrize("schedule", list(optim.SCHEDULES))
def test_every_optimizer_and_schedule_learns(optimizer, schedule, dtype):
    x, y = synthetic()
    model = MLP((8, 16, 3), dtype=dtype, seed=0)
    history = model.fit(x, y, epochs=10, batch_size=16, optimizer=optimizer, schedule=schedule,
                        validation_data=(x, y), seed=0)
    assert model.params[0][0].dtype == dtype
    assert history.val_accuracy[-1] > 0.95
    assert history.loss[-1] < history.loss[0]


def test_history_has_one_entry_per_epoch_and_callback_sees_it():
    x, y = synthetic()
    seen = []
    history = MLP((8, 4, 3), seed=0).fit(x, y, epochs=3, batch_size=100,
                                          callback=lambda epoch, h: seen.append((epoch, len(h))))
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert len(history.loss) == len(history.train_accuracy) == len(history.seconds) == 3
    assert history.val_accuracy == [None, None, None]
    assert all(s > 0 for s in history.samples_per_second)
    np.testing.assert_allclose(np.array(history.samples_per_second) * history.seconds, 300)


def stop_after(epoch, message="", seen=None):
    """A callback raising StopTraining(message) once ``epoch`` is done; it notes each call."""
    def callback(done, history):
        if seen is not None:
            seen.append(done)
        if done == epoch:
            raise StopTraining(message)
    return callback


def test_a_callback_ends_training_with_its_reason(capsys):
    x, y = synthetic()
    interrupted = MLP((8, 4, 3), seed=0)
    with pytest.raises(KeyboardInterrupt):  # the same 10-epoch run, cut after epoch 3
        interrupted.fit(x, y, epochs=10, batch_size=50, callback=interrupt_after(3))
    seen = []
    model = MLP((8, 4, 3), seed=0)
    history = model.fit(x, y, epochs=10, batch_size=50, verbose=1,
                        callback=stop_after(3, "loss low enough", seen))
    assert seen == [1, 2, 3] and len(history) == 3
    assert history.stop_reason == "callback stopped training after epoch 3: loss low enough"
    for (W, b), (W2, b2) in zip(model.params, interrupted.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("epoch  3/10 ")
    assert lines[3] == "callback stopped training after epoch 3: loss low enough"
    history = MLP((8, 4, 3), seed=0).fit(x, y, epochs=10, batch_size=50, callback=stop_after(1))
    assert history.stop_reason == "callback stopped training after epoch 1"
    # on the last epoch, training ends anyway: the run ran all its epochs
    history = MLP((8, 4, 3), seed=0).fit(x, y, epochs=2, batch_size=50, callback=stop_after(2))
    assert history.stop_reason == "ran all 2 epochs"
    assert not issubclass(StopTraining, (ValueError, RuntimeError, FloatingPointError))


def interrupt_after(epoch):
    def callback(done, history):
        if done == epoch:
            raise KeyboardInterrupt
    return callback


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


COLUMNS = ["epoch", "loss", "train_accuracy", "val_accuracy", "samples_per_second", "seconds",
           "val_loss"]


def test_the_csv_log_gets_a_header_and_each_epochs_row_as_the_epoch_ends(tmp_path):
    x, y = synthetic()
    path = tmp_path / "log.csv"
    path.write_text("an older file\n")
    seen = []
    history = MLP((8, 4, 3), seed=0).fit(
        x, y, epochs=3, batch_size=50, validation_data=(x[:40], y[:40]), log_csv=path,
        callback=lambda epoch, history: seen.append(read_csv(path)))
    # flushed as each epoch ends: the callback, after the epoch, reads its row
    assert [len(rows) for rows in seen] == [2, 3, 4]
    rows = read_csv(path)
    assert rows[0] == COLUMNS == ["epoch", *fastmlp.train.HISTORY_COLUMNS]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    for name, column in zip(COLUMNS[1:], list(zip(*rows[1:]))[1:]):
        assert [float(cell) for cell in column] == getattr(history, name), name  # exact
    unvalidated = MLP((8, 4, 3), seed=0).fit(x, y, epochs=2, batch_size=50, log_csv=path)
    rows = read_csv(path)
    assert len(rows) == 3 and [row[3] for row in rows[1:]] == ["", ""]
    assert [float(row[1]) for row in rows[1:]] == unvalidated.loss


def test_an_unwritable_csv_log_is_refused_before_training(tmp_path):
    x, y = synthetic(n=20)
    (tmp_path / "read-only.csv").write_text("")
    (tmp_path / "read-only.csv").chmod(0o444)
    cases = [(tmp_path / "nowhere" / "log.csv", f"no directory {tmp_path / 'nowhere'}"),
             (tmp_path, f"{tmp_path} is a directory")]
    if not os.access(tmp_path / "read-only.csv", os.W_OK):  # root may write anywhere
        cases.append((tmp_path / "read-only.csv", f"{tmp_path / 'read-only.csv'} is not "
                                                  "writable"))
    for path, problem in cases:
        model = MLP((8, 3), seed=0)
        before = [a.copy() for pair in model.params for a in pair]
        with pytest.raises(OSError, match=re.escape(
                f"cannot write the training log to {path}: {problem}")):
            model.fit(x, y, epochs=1, log_csv=path)
        assert all(np.array_equal(a, b) for a, b in
                   zip(before, [a for pair in model.params for a in pair]))
        assert not model.scaler.fitted


def test_same_seed_gives_the_same_model_and_batches_cover_every_sample():
    x, y = synthetic(n=101)
    a, b = MLP((8, 4, 3), seed=5), MLP((8, 4, 3), seed=5)
    a.fit(x, y, epochs=2, batch_size=10, seed=7)
    b.fit(x, y, epochs=2, batch_size=10, seed=7)
    for (W, _), (W2, _) in zip(a.params, b.params):
        np.testing.assert_array_equal(W, W2)
    c = MLP((8, 4, 3), seed=5)
    c.fit(x, y, epochs=2, batch_size=10, seed=8)
    assert not np.array_equal(a.params[0][0], c.params[0][0])


def test_switching_backend_mid_training_just_works():
    x, y = synthetic()
    model = MLP((8, 16, 3), seed=0)
    with fastmlp.use_backend("einsum"):
        model.fit(x, y, epochs=2, batch_size=16)
    with fastmlp.use_backend("matmul"):
        history = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y))
    assert history.val_accuracy[-1] > 0.95


def test_diverging_loss_stops_with_a_message_and_no_warnings():
    x, y = synthetic()
    model = MLP((8, 16, 3), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TrainingDivergedError,
                           match=r"loss became non-finite \(nan or inf\) at epoch 1, "
                                 r"step \d+ of 10; try a lower learning rate"):
            model.fit(x, y, epochs=5, batch_size=32, optimizer="sgd", learning_rate=1e30,
                      schedule="constant")


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"validation_data": (np.zeros((2, 5)), [0, 1])}, "x_val has 5 features"),
    ({"validation_data": (np.zeros((2, 8)), [0, 9])}, "y_val has label 9 out of range"),
])
def test_bad_training_arguments(kwargs, message):
    x, y = synthetic(n=20)
    with pytest.raises(ValueError, match=message):
        MLP((8, 3), seed=0).fit(x, y, **kwargs)


def test_check_finite_false_leaves_nan_to_the_scaler_or_the_loss():
    x, y = synthetic(n=20)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN; inputs must be finite"):
        MLP((8, 3), seed=0).fit(x, y, epochs=1)
    with pytest.raises(ValueError, match="x_val contains NaN; inputs must be finite"):
        MLP((8, 3), seed=0).fit(x[4:], y[4:], epochs=1, validation_data=(x[:4], y[:4]))
    with pytest.raises(ValueError, match="the mean and standard deviation of x are nan"):
        MLP((8, 3), seed=0).fit(x, y, epochs=1, check_finite=False)
    with pytest.raises(TrainingDivergedError):
        MLP((8, 3), seed=0, standardize=False).fit(x, y, epochs=1, check_finite=False)


def test_one_dimensional_training_input_is_rejected():
    with pytest.raises(ValueError, match=r"x must be 2-D \(n_samples, n_features\)"):
        MLP((8, 3)).fit(np.zeros(8), [1])


EPOCH_LINE = (r"epoch  [12]/2  loss \d+\.\d{4}  train acc \d+\.\d\d%  (val acc \d+\.\d\d%  )?"
              r"[\d,]+ samples/s  \d+\.\d\d s")


def test_verbose_1_prints_one_plain_line_per_epoch(capsys):
    x, y = synthetic()
    MLP((8, 16, 3), seed=0).fit(x, y, epochs=2, verbose=1, validation_data=(x, y))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(EPOCH_LINE, line) and "val acc" in line
    MLP((8, 16, 3), seed=0).fit(x, y, epochs=2, verbose="auto")  # captured: not a terminal
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.splitlines()) == 2 and "val acc" not in out
    MLP((8, 16, 3), seed=0).fit(x, y, epochs=2, validation_data=(x, y))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_progress_bar_leaves_training_bit_for_bit_the_same(backend, capsys):
    # 3001 samples at batch 32: 94 steps, the last one of 25 samples, in parts of 10 steps.
    x, y = synthetic(n=3001)
    runs = {}
    for verbose in (1, 2):
        model = MLP((8, 16, 3), seed=0)
        with fastmlp.use_backend(backend):
            history = model.fit(x, y, epochs=2, batch_size=32, verbose=verbose, seed=3,
                                validation_data=(x, y), validation_name="test")
        runs[verbose] = model, history, capsys.readouterr()
    (plain, plain_history, plain_out), (barred, barred_history, barred_out) = runs[1], runs[2]
    assert plain_out.err == ""
    # The epoch lines are results, on stdout; the bar is progress, on stderr.
    (plain_out, barred_out), barred_err = (plain_out.out, barred_out.out), barred_out.err
    for (W, b), (W2, b2) in zip(plain.params, barred.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert barred_history.train_accuracy == plain_history.train_accuracy
    assert barred_history.val_accuracy == plain_history.val_accuracy
    np.testing.assert_allclose(barred_history.loss, plain_history.loss, rtol=1e-12)
    # The bar is drawn with carriage returns and cleared; the epoch lines are those of verbose=1.
    assert "\r" not in plain_out + barred_out
    assert re.search(r"\repoch  1/2: +11%\|.*\| 10/94 \[.*step/s, loss \d\.\d{4}, acc \d+\.\d\d%\]",
                     barred_err)
    assert "| 94/94 [" in barred_err
    assert "samples/s" not in barred_err

    def untimed(lines):
        return [re.sub(r"[\d,]+ samples/s .*", "", line) for line in lines.split("\n")]

    assert untimed(barred_out) == untimed(plain_out)
    assert len(barred_out.splitlines()) == 2 and "test acc" in barred_out.splitlines()[0]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_auto_shows_the_bar_when_stderr_is_a_terminal_whatever_stdout_is(monkeypatch):
    # `python train.py > log.txt` in a terminal: the bar on the screen, the lines in the file.
    x, y = synthetic(n=200)
    for stdout, stderr, bar in [(io.StringIO(), Terminal(), True),
                                (Terminal(), io.StringIO(), False),
                                (Terminal(), Terminal(), True)]:
        monkeypatch.setattr(sys, "stdout", stdout)
        monkeypatch.setattr(sys, "stderr", stderr)
        MLP((8, 4, 3), seed=0).fit(x, y, epochs=2, batch_size=20, verbose="auto")
        lines = stdout.getvalue().splitlines()
        assert [line[:11] for line in lines] == ["epoch  1/2 ", "epoch  2/2 "]
        assert "\r" not in stdout.getvalue()
        assert ("| 10/10 [" in stderr.getvalue()) is bar
        assert "samples/s" not in stderr.getvalue()


def test_divergence_is_reported_at_the_same_step_with_a_bar(capsys):
    x, y = synthetic(n=3000)
    messages = []
    for verbose in (0, 2):
        with pytest.raises(TrainingDivergedError) as info:
            MLP((8, 16, 3), seed=0).fit(x, y, epochs=2, batch_size=16, optimizer="sgd",
                                        learning_rate=1e30, schedule="constant",
                                        verbose=verbose)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert re.search(r"at epoch 1, step \d+ of 188", messages[0])


@pytest.mark.parametrize("verbose", [3, -1, "yes", None, 1.5])
def test_bad_verbose(verbose):
    x, y = synthetic(n=20)
    with pytest.raises(ValueError, match=re.escape(
            f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")):
        MLP((8, 3), seed=0).fit(x, y, verbose=verbose)


def test_fit_runs_a_backend_through_its_run_steps_alone(monkeypatch):
    # A backend that is nothing but run_steps trains: fit asks it nothing else, hands
    # it the raw uint8 rows with the model's scaler (no scaled copy), one call an epoch.
    matmul = backends.load_backend("matmul")
    calls = []

    def run_steps(params, batches, optimizer, learning_rates, timer=NO_TIMER):
        calls.append(batches)
        return ComposedSteps(matmul.forward, matmul.backward)(params, batches, optimizer,
                                                              learning_rates, timer)

    monkeypatch.setitem(backends._named_backends, "steps-only", "unused")
    monkeypatch.setitem(backends._loaded, "steps-only", types.SimpleNamespace(run_steps=run_steps))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (200, 8), dtype=np.uint8), rng.integers(0, 3, 200)
    models = {name: MLP((8, 16, 3), seed=0) for name in ("steps-only", "matmul")}
    for name, model in models.items():
        with fastmlp.use_backend(name):
            model.fit(x, y, epochs=3, batch_size=32, seed=1)
    assert len(calls) == 3
    for batches in calls:
        assert batches.x is x and batches.scaler is models["steps-only"].scaler
        assert batches.batch_size == 32 and sorted(batches.order) == list(range(200))
    # matmul's own run_steps (buffers allocated once) trains as the plain loop, bit for bit
    for (W, b), (W2, b2) in zip(models["steps-only"].params, models["matmul"].params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_every_backend_declares_its_run_of_steps(backend):
    module = backends.load_backend(backend)
    assert callable(module.run_steps)
    if backend in ("loop", "einsum"):  # the one loop over the module's own functions
        assert isinstance(module.run_steps, ComposedSteps)
        assert (module.run_steps.forward, module.run_steps.backward) == (module.forward,
                                                                         module.backward)


def imported_modules(path, module):
    """The modules the source file ``path`` of ``module`` imports, or imports from, by full name."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                    if node.level else node.module)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # from .. import train


def test_no_backend_imports_the_trainer():
    # The types a backend implements and receives live in fastmlp.steps, which the trainer
    # imports too; a backend that imported fastmlp.train would depend on the loop it plugs into.
    package = pathlib.Path(fastmlp.__file__).parent
    importers = []
    for path in sorted((package / "backends").rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        if "fastmlp.train" in imported_modules(path, module):
            importers.append(module)
    assert importers == []
    assert "fastmlp.steps" in imported_modules(package / "backends" / "loop.py",
                                               "fastmlp.backends.loop")


def test_the_trainer_still_offers_the_types_it_used_to_define():
    for name in ("Batches", "StepsDone", "Timer", "NO_TIMER", "ComposedSteps",
                 "training_inputs"):
        assert getattr(fastmlp.train, name) is getattr(fastmlp.steps, name), name


def test_mlp_fit_takes_fits_parameters_and_passes_each_on(monkeypatch):
    # MLP.fit spells out fastmlp.fit's parameters, defaults and annotations (no **kwargs
    # hiding them from help() and editors), and hands every one to fastmlp.fit.
    method = list(inspect.signature(MLP.fit).parameters.values())
    function = list(inspect.signature(fastmlp.fit).parameters.values())
    assert [p.name for p in method][:3] == ["self", "x", "y"]
    assert method[1:] == function[1:]
    assert inspect.signature(MLP.fit).return_annotation == "History"
    received = {}
    monkeypatch.setattr(fastmlp.train, "fit",
                        lambda model, x, y, **kwargs: received.update(kwargs, model=model))
    given = {p.name: object() for p in function[3:]}
    model = MLP((8, 3))
    model.fit("x", "y", **given)
    assert received == {**given, "model": model}


def test_a_progress_bar_runs_the_epoch_in_parts_of_about_half_a_second(monkeypatch):
    # The first part is a tenth of the epoch's steps; each later one as many steps as
    # the part before ran in PROGRESS_SECONDS, whatever the pace: a fast epoch takes
    # few calls (each call of a fused epoch starts its workers again).
    from fastmlp import train

    clock = [0.0]
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])
    calls = []

    def run_steps(params, part, optimizer, rates):
        calls.append(len(rates))
        clock[0] += 0.01 * len(rates)  # 10 ms a step
        return train.StepsDone(1.0 * len(rates), len(rates), -1)

    class Bar:
        def set_postfix_str(self, *args, **kwargs):
            pass

        def update(self, steps):
            calls.append(("bar", steps))

    batches = types.SimpleNamespace(batch_size=4, sample_weight=None, order=np.arange(4 * 230),
                                    _replace=lambda order: types.SimpleNamespace(order=order))
    done = train._run_in_parts(run_steps, None, batches, None, np.ones(230), Bar())
    assert done == train.StepsDone(230.0, 230, -1)
    assert [c for c in calls if not isinstance(c, tuple)] == [23, 50, 50, 50, 50, 7]
    assert sum(steps for _, steps in (c for c in calls if isinstance(c, tuple))) == 230
