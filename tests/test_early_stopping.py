"""Early stopping: the stratified split, Keras's rule, the anneal, the best weights restored, the
CLI."""

import json
import math
import re
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, PerformanceWarning
from fastmlp.cli import main
from fastmlp.optim import Adam, annealed, onecycle
from fastmlp.train import EarlyStopping, History, validation_split


def test_the_split_is_stratified_disjoint_sorted_and_drawn_from_the_seed():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    rows = validation_split(y, 0.1, np.random.default_rng(0))
    assert np.bincount(y[rows]).tolist() == [50, 30, 20]
    assert np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, validation_split(y, 0.1, np.random.default_rng(0)))
    assert not np.array_equal(rows, validation_split(y, 0.1, np.random.default_rng(1)))


@pytest.mark.parametrize("fraction, message", [
    (0.0, "validation_fraction must be between 0 and 1, got 0.0"),
    (1.0, "validation_fraction must be between 0 and 1, got 1.0"),
    ("0.1", "validation_fraction must be between 0 and 1, got '0.1'"),
    (0.01, "validation_fraction=0.01 of 20 samples holds out 0 of them"),
])
def test_a_split_that_cannot_be_made_is_refused(fraction, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validation_split(np.arange(20) % 2, fraction, np.random.default_rng(0))


def run_rule(values, **settings):
    """Feed ``values`` to an EarlyStopping as successive epochs; the epochs it ran, and it."""
    stopping, history = EarlyStopping(**settings), History()
    for epoch, value in enumerate(values, 1):
        history.val_loss.append(value)
        history.val_accuracy.append(value)
        if stopping.update(epoch, history, np.array([value])):
            return epoch, stopping
    return len(values), stopping


def test_the_rule_stops_after_patience_epochs_without_improvement():
    epochs, stopping = run_rule([0.5, 0.4, 0.41, 0.39, 0.395, 0.40, 0.38], patience=2)
    assert (epochs, stopping.best_epoch, stopping.best) == (6, 4, 0.39)
    assert stopping.best_params.tolist() == [0.39]
    assert stopping.reason() == "validation loss did not improve for 2 epochs"


def test_an_improvement_must_beat_min_delta():
    epochs, stopping = run_rule([0.5, 0.45, 0.44, 0.43], patience=2, min_delta=0.02)
    assert (epochs, stopping.best_epoch) == (4, 2)
    assert stopping.reason() == "validation loss did not improve by more than 0.02 for 2 epochs"


def test_accuracy_is_better_when_higher():
    epochs, stopping = run_rule([0.90, 0.95, 0.94, 0.93], monitor="val_accuracy", patience=2)
    assert (epochs, stopping.best_epoch, stopping.best) == (4, 2, 0.95)


def test_a_stall_starts_the_anneal_and_training_stops_when_it_is_done():
    # 0.41 and 0.42 do not beat 0.4: stalled after epoch 4; epochs 5-7 anneal, improving or not
    epochs, stopping = run_rule([0.5, 0.4, 0.41, 0.42, 0.3, 0.2, 0.1, 0.05], patience=2,
                                anneal_epochs=3)
    assert (epochs, stopping.annealed_from, stopping.anneal) == (7, 5, (5, 3))
    assert (stopping.best_epoch, stopping.best) == (7, 0.1)
    epochs, stopping = run_rule([0.5, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46], patience=2,
                                anneal_epochs=3)
    assert (epochs, stopping.annealed_from, stopping.best_epoch) == (7, 5, 2)
    epochs, stopping = run_rule([0.5, 0.4, 0.41, 0.42, 0.3], patience=2)  # Keras's rule
    assert (epochs, stopping.annealed_from, stopping.anneal) == (4, None, None)


@pytest.mark.parametrize("settings, message", [
    (dict(anneal_epochs=-1), "anneal_epochs must be an integer >= 0, got -1"),
    (dict(anneal_epochs=2.5), "anneal_epochs must be an integer >= 0, got 2.5"),
    (dict(anneal_epochs=True), "anneal_epochs must be an integer >= 0, got True"),
    (dict(monitor="loss"), "monitor must be one of 'val_loss', 'val_accuracy', got 'loss'"),
    (dict(patience=0), "patience must be a positive integer"),
    (dict(min_delta=-0.1), "min_delta must be a finite number >= 0, got -0.1"),
    (dict(min_delta=float("nan")), "min_delta must be a finite number >= 0, got nan"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EarlyStopping(**settings)


def noisy_problem(n=400, seed=0):
    """Labels that do not depend on the inputs: validation loss rises once training fits noise."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 20)), rng.integers(0, 3, n)


@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_training_stops_early_and_ends_with_the_best_epochs_weights(backend):
    x, y = noisy_problem()
    x_val, y_val = noisy_problem(200, seed=1)
    model = MLP((20, 64, 3), seed=0)
    with fastmlp.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)  # every backend keeps its fast path
        history = model.fit(x, y, epochs=30, batch_size=32, optimizer="adam",
                            learning_rate=0.01, schedule="constant",
                            validation_data=(x_val, y_val), early_stopping=True, patience=3)
        best_loss = model.loss(x_val, y_val)
    assert len(history) < 30
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    assert len(history) == history.best_epoch + 3
    assert history.stop_reason == "early stopping: validation loss did not improve for 3 epochs"
    assert history.annealed_from is None  # a constant rate has nothing to anneal
    assert best_loss == pytest.approx(history.val_loss[history.best_epoch - 1], rel=1e-6)


class RecordingAdam(Adam):
    """Adam that keeps the learning rate of every step it takes."""

    def __init__(self, learning_rate):
        super().__init__(learning_rate)
        self.rates = []

    def step(self, params, grads, learning_rate=None):
        self.rates.append(learning_rate)
        super().step(params, grads, learning_rate)


STEPS = 13  # batches of 32 in noisy_problem's 400 samples


def fit_recording_rates(epochs, patience, anneal_epochs):
    """Early stopping on the noisy problem with a one-cycle schedule, on matmul (whose
    steps call ``optimizer.step``); the model, its history, every step's rate, the
    validation data and the ``annealed_from`` a callback saw after each epoch."""
    x, y = noisy_problem()
    validation = noisy_problem(200, seed=1)
    optimizer = RecordingAdam(learning_rate=0.01)
    model = MLP((20, 64, 3), seed=0)
    seen = []
    with fastmlp.use_backend("matmul"):
        history = model.fit(x, y, epochs=epochs, batch_size=32, optimizer=optimizer,
                            validation_data=validation, early_stopping=True, patience=patience,
                            anneal_epochs=anneal_epochs,
                            callback=lambda epoch, history: seen.append(history.annealed_from))
    return model, history, np.array(optimizer.rates), validation, seen


def test_a_stalled_run_anneals_the_rate_to_the_schedules_end_and_stops():
    model, history, rates, validation, seen = fit_recording_rates(60, patience=3,
                                                                  anneal_epochs=4)
    # validation loss falls until epoch 9, then rises: stalled after 12, annealed over 13-16
    assert (history.best_epoch, history.annealed_from, len(history)) == (9, 13, 16)
    assert seen == [None] * 12 + [13] * 4
    assert history.stop_reason == ("early stopping: validation loss did not improve for 3 "
                                   "epochs, so the learning rate annealed over epochs 13 to 16")
    total, start = 60 * STEPS, 12 * STEPS
    assert len(rates) == 16 * STEPS
    # the one-cycle planned for 60 epochs up to the stall, still warming up there ...
    assert rates[:start].tolist() == [0.01 * onecycle(s, total) for s in range(start)]
    assert rates[start - 1] == pytest.approx(0.00754, rel=1e-3)  # 155 of 234 warm-up steps
    # ... then half a cosine from there down to one-cycle's end, 1/25e4 of the peak
    first, end = 0.01 * onecycle(start, total), 0.01 / 25 / 1e4
    anneal = rates[start:]
    assert anneal[0] == first
    assert anneal[2 * STEPS] == pytest.approx((first + end) / 2, rel=1e-12)
    assert anneal[-1] == pytest.approx(
        end + (first - end) * (1 + math.cos(math.pi * (4 * STEPS - 1) / (4 * STEPS))) / 2,
        rel=1e-12)
    assert anneal[-1] < first / 1000
    assert np.all(np.diff(anneal) < 0)
    assert model.loss(*validation) == pytest.approx(history.val_loss[8], rel=1e-6)


def test_an_anneal_is_cut_to_end_with_training():
    _, history, rates, _, _ = fit_recording_rates(9, patience=2, anneal_epochs=4)
    # stalled after epoch 6 of 9: the anneal has 3 epochs, not 4, and ends at one-cycle's end
    assert (history.annealed_from, len(history)) == (7, 9)
    assert history.stop_reason.endswith("so the learning rate annealed over epochs 7 to 9")
    total, start = 9 * STEPS, 6 * STEPS
    assert rates[start:].tolist() == [0.01 * annealed(onecycle, start, 4 * STEPS)(s, total)
                                      for s in range(start, total)]
    first, end = 0.01 * onecycle(start, total), 0.01 / 25 / 1e4
    assert rates[-1] == pytest.approx(
        end + (first - end) * (1 + math.cos(math.pi * (3 * STEPS - 1) / (3 * STEPS))) / 2,
        rel=1e-12)


def test_anneal_epochs_0_stops_at_the_stall_as_before():
    _, history, rates, _, seen = fit_recording_rates(60, patience=3, anneal_epochs=0)
    assert (history.best_epoch, history.annealed_from, len(history)) == (9, None, 12)
    assert history.stop_reason == "early stopping: validation loss did not improve for 3 epochs"
    assert rates.tolist() == [0.01 * onecycle(s, 60 * STEPS) for s in range(12 * STEPS)]
    assert seen == [None] * 12


def test_a_bad_anneal_epochs_is_refused_by_fit():
    x, y = noisy_problem()
    with pytest.raises(ValueError, match="anneal_epochs must be an integer >= 0, got -2"):
        MLP((20, 8, 3), seed=0).fit(x, y, epochs=2, early_stopping=True, anneal_epochs=-2)


def test_a_callback_that_stops_training_still_gets_the_best_epochs_weights(capsys):
    x, y = noisy_problem()
    validation = noisy_problem(200, seed=1)

    def stop_at_6(epoch, history):
        if epoch == 6:
            raise fastmlp.StopTraining("six is plenty")

    model = MLP((20, 64, 3), seed=0)
    history = model.fit(x, y, epochs=30, batch_size=32, optimizer="adam", learning_rate=0.01,
                        schedule="constant", validation_data=validation, early_stopping=True,
                        patience=10, callback=stop_at_6, verbose=1)
    assert len(history) == 6
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1 < 6
    assert model.loss(*validation) == pytest.approx(min(history.val_loss), rel=1e-6)
    assert history.stop_reason == "callback stopped training after epoch 6: six is plenty"
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (f"{history.stop_reason}; best epoch {history.best_epoch} (val_loss "
                    f"{min(history.val_loss):.4f}), weights restored")


def test_without_restore_best_the_last_weights_stay():
    x, y = noisy_problem()
    validation = noisy_problem(200, seed=1)
    model = MLP((20, 64, 3), seed=0)
    history = model.fit(x, y, epochs=30, batch_size=32, optimizer="adam", learning_rate=0.01,
                        schedule="constant", validation_data=validation,
                        early_stopping=True, patience=3, restore_best=False)
    assert model.loss(*validation) == pytest.approx(history.val_loss[-1], rel=1e-6)
    assert history.val_loss[-1] > min(history.val_loss)


def test_without_validation_data_a_stratified_split_is_held_out():
    x, y = noisy_problem(400)
    model = MLP((20, 16, 3), seed=0)
    history = model.fit(x, y, epochs=3, batch_size=32, early_stopping=True,
                        validation_fraction=0.25)
    held_out = len(validation_split(y, 0.25, np.random.default_rng(0)))
    assert held_out == 100
    assert all(round(accuracy * held_out, 6).is_integer() for accuracy in history.val_accuracy)
    assert history.stop_reason == "ran all 3 epochs" and history.best_epoch is not None


def test_without_early_stopping_nothing_changes():
    x, y = noisy_problem()
    history = MLP((20, 16, 3), seed=0).fit(x, y, epochs=2)
    assert history.val_loss == [None, None] and history.best_epoch is None
    assert history.stop_reason == "ran all 2 epochs"


def test_the_cli_holds_out_a_split_and_scores_the_test_set_once(small_idx, capsys):
    status = main(["train", "--data-dir", str(small_idx), "--epochs", "4", "--hidden", "16",
                   "--batch-size", "16", "--early-stopping", "--validation-fraction", "0.2",
                   "--patience", "2"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    epochs = [line for line in out if line.startswith("epoch ")]
    assert all(re.search(r"  val loss \d\.\d{4}  val acc \d+\.\d\d%  ", line) for line in epochs)
    assert not any("test acc" in line for line in epochs)
    assert re.fullmatch(r"(ran all 4 epochs|early stopping: .*); best epoch \d \(val_loss "
                        r"\d\.\d{4}\), weights restored", out[-2])
    assert re.match(r"final  test acc \d+\.\d\d%  best epoch \d: val acc \d+\.\d\d%  ", out[-1])


def test_the_cli_anneals_for_anneal_epochs_after_the_stall(small_idx, capsys):
    finals = {}
    for anneal in ("2", "0"):
        assert main(["train", "--data-dir", str(small_idx), "--epochs", "30", "--hidden", "16",
                     "--batch-size", "16", "--lr", "0.03", "--early-stopping",
                     "--validation-fraction", "0.2", "--patience", "1", "--anneal-epochs",
                     anneal, "--json"]) == 0
        finals[anneal] = json.loads(capsys.readouterr().out)["final"]
    # stalled after epoch 7 (best 6): 2 epochs of annealing, or none
    assert [finals[a][key] for a in ("2", "0") for key in ("epochs", "best_epoch",
                                                            "annealed_from")] == \
        [9, 6, 8, 7, 6, None]
    assert finals["2"]["stop_reason"] == ("early stopping: validation loss did not improve for "
                                          "1 epoch, so the learning rate annealed over epochs "
                                          "8 to 9")


def test_the_cli_refuses_a_negative_anneal(small_idx, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data-dir", str(small_idx), "--early-stopping", "--anneal-epochs", "-1"])
    assert "--anneal-epochs: expected an integer >= 0, got '-1'" in capsys.readouterr().err


def test_the_held_out_rows_do_not_shape_the_input_scaling():
    from fastmlp.preprocessing import InputScaler

    x, y = noisy_problem(400)
    x[:, 0] += np.arange(400)  # rows that differ, so that leaving some out shows
    model = MLP((20, 8, 3), seed=0)
    model.fit(x, y, epochs=1, early_stopping=True, validation_fraction=0.25)
    kept = np.ones(400, bool)
    kept[validation_split(y, 0.25, np.random.default_rng(0))] = False
    expected = InputScaler().fit(x[kept])
    assert (model.scaler.mean, model.scaler.std) == (expected.mean, expected.std)
    assert model.scaler.mean != InputScaler().fit(x).mean


def test_the_mnist_script_prints_its_table(mnist_dir, capsys, bench_script):
    script = bench_script("early_stopping.py")
    results = script.main(["--train-size", "2000", "--epochs", "40", "--seeds", "0",
                           "--data-dir", str(mnist_dir)])
    assert list(results) == [(path, 0, run) for path in ("fit", "estimator")
                             for run in ("plain", "stop", "anneal")]
    fit = {run: results["fit", 0, run] for run in ("plain", "stop", "anneal")}
    assert (fit["plain"]["epochs"], fit["plain"]["best"]) == (15, None)
    assert (fit["stop"]["epochs"], fit["stop"]["best"], fit["stop"]["annealed_from"]) == \
        (23, 18, None)
    # on 1,800 images the anneal does not beat epoch 18's validation loss: the same model
    assert (fit["anneal"]["epochs"], fit["anneal"]["best"], fit["anneal"]["annealed_from"]) == \
        (28, 18, 24)
    assert fit["anneal"]["accuracy"] == fit["stop"]["accuracy"] > 0.85
    estimator = {run: results["estimator", 0, run] for run in ("stop", "anneal")}
    assert estimator["anneal"]["epochs"] == estimator["stop"]["epochs"] + 5
    out = capsys.readouterr().out
    assert out.startswith("MNIST, 2,000 training images, 10,000 test; test accuracy")
    assert ("| path | seed | plain (15 epochs) | early stopping, epochs=40, anneal_epochs=0 | "
            "early stopping, epochs=40 |") in out
    assert "| MLP.fit | 0 | " in out and "| MLPClassifier | mean | " in out
