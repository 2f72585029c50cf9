"""``fastmlp profile``: FLOP counts, phase attribution, and the printed and JSON reports."""

import copy
import json
import time
import types
import warnings

import numpy as np
import pytest

import fastmlp
import fastmlp.profile
from fastmlp import MLP, TrainingDivergedError, backends, optim
from fastmlp.cli import main
from fastmlp.preprocessing import InputScaler
from fastmlp.profile import (
    PHASES,
    _phased_steps,
    flops_per_sample,
    profile_training,
    side_by_side,
)
from fastmlp.steps import ComposedSteps
from fastmlp.train import train_epoch


def test_flops_match_the_layer_formula():
    # 784-128-128-10: forward a@W.T per layer, backward dW per layer and delta@W above the first.
    products = [784 * 128, 128 * 128, 128 * 10]
    assert flops_per_sample((784, 128, 128, 10)) == {
        "forward": 2 * sum(products),
        "backward": 2 * sum(products) + 2 * (128 * 128 + 128 * 10),
        "total": 4 * sum(products) + 2 * (128 * 128 + 128 * 10),
    }
    # One layer: no gradient flows below it, so backward costs what forward does.
    assert flops_per_sample((4, 3)) == {"forward": 24, "backward": 24, "total": 48}


def test_flops_are_what_a_training_step_multiplies(monkeypatch):
    """Count 2 m k n for every product the BLAS backend's forward and backward make."""
    from fastmlp.backends import matmul

    counted = []
    real = np.matmul

    def counting(a, b, **kwargs):
        counted.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return real(a, b, **kwargs)

    monkeypatch.setattr(np, "matmul", counting)
    sizes, n = (20, 12, 7, 5, 3), 9
    params = [(np.ones((n_out, n_in)), np.zeros(n_out)) for n_in, n_out in zip(sizes, sizes[1:])]
    _, cache = matmul.forward(params, np.ones((n, 20)))
    forward = sum(counted)
    matmul.backward(params, cache, np.zeros(n, int))
    assert {"forward": forward, "backward": sum(counted) - forward, "total": sum(counted)} == {
        phase: n * flop for phase, flop in flops_per_sample(sizes).items()}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (600, 30), dtype=np.uint8), rng.integers(0, 10, 600)


@pytest.fixture
def slow_backend(monkeypatch):
    """A backend registered as 'slow': matmul's kernels after a fixed sleep each."""
    matmul = backends.load_backend("matmul")

    def forward(params, x):
        time.sleep(0.004)
        return matmul.forward(params, x)

    def backward(params, cache, y):
        time.sleep(0.008)
        return matmul.backward(params, cache, y)

    module = types.SimpleNamespace(forward=forward, backward=backward, softmax=matmul.softmax,
                                   run_steps=ComposedSteps(forward, backward))
    monkeypatch.setitem(backends._named_backends, "slow", "unused")
    monkeypatch.setitem(backends._loaded, "slow", module)
    return "slow"


@pytest.fixture
def virtual_clock(monkeypatch):
    """The profiler's clock replaced by one that moves only by ``advance(seconds)``."""
    now = [0.0]
    monkeypatch.setattr(fastmlp.profile, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    def advance(seconds):
        now[0] += seconds

    return advance


def test_each_phase_gets_its_own_time(virtual_clock, monkeypatch, data):
    # Each phase takes a fixed virtual time (powers of two, so sums are exact) and nothing
    # else takes any: every phase must be charged exactly its own, overhead nothing.
    spent = {"data": 2**-10, "forward": 2**-8, "backward": 2**-7, "update": 2**-9}
    matmul = backends.load_backend("matmul")

    def forward(params, x):
        virtual_clock(spent["forward"])
        return matmul.forward(params, x)

    def backward(params, cache, y):
        virtual_clock(spent["backward"])
        return matmul.backward(params, cache, y)

    def wrap(method, phase):
        def timed(*args, **kwargs):
            virtual_clock(spent[phase])
            return method(*args, **kwargs)
        return timed

    module = types.SimpleNamespace(forward=forward, backward=backward, softmax=matmul.softmax,
                                   run_steps=ComposedSteps(forward, backward))
    monkeypatch.setitem(backends._named_backends, "timed", "unused")
    monkeypatch.setitem(backends._loaded, "timed", module)
    monkeypatch.setattr(InputScaler, "transform", wrap(InputScaler.transform, "data"))
    monkeypatch.setattr(optim.SGD, "step", wrap(optim.SGD.step, "update"))
    x, y = data
    result = profile_training("timed", x=x, y=y, steps=10, batch_size=50, hidden=(8,),
                              optimizer="sgd", peak=100.0)
    assert result.steps == 10 and result.samples == 500
    assert result.seconds == {phase: 10 * spent.get(phase, 0.0) for phase in PHASES}
    assert result.total_seconds == 10 * sum(spent.values())
    assert result.fused_seconds is None  # the timed backend runs the loop the phases timed


def test_time_spent_in_a_kernel_is_counted_in_its_phase(slow_backend, data):
    x, y = data
    result = profile_training(slow_backend, x=x, y=y, steps=10, batch_size=50, hidden=(8,),
                              optimizer="sgd", peak=100.0)
    # at least the sleeps (no upper bound: a busy machine can stretch any of them)
    assert result.seconds["forward"] >= 10 * 0.004
    assert result.seconds["backward"] >= 10 * 0.008
    assert sum(result.seconds.values()) == pytest.approx(result.total_seconds)


@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_timed_phases_account_for_the_measured_total(backend, data):
    x, y = data
    result = profile_training(backend, x=x, y=y, batch_size=64, hidden=(16,), peak=100.0)
    assert result.steps == 10 and result.samples == 600  # one epoch by default
    assert set(result.seconds) == set(PHASES)
    assert all(seconds > 0 for seconds in result.seconds.values())
    # overhead is what the named phases leave of the total
    assert sum(result.seconds.values()) == pytest.approx(result.total_seconds)
    has_fused = hasattr(backends.load_backend(backend), "train_epoch")
    assert (result.fused_seconds is not None) == has_fused
    # a fused row exactly where fit runs a loop other than the one the phases timed
    assert has_fused == (not isinstance(backends.load_backend(backend).run_steps, ComposedSteps))
    flop = flops_per_sample((30, 16, 10))
    assert result.gflops("forward") == pytest.approx(
        600 * flop["forward"] / result.seconds["forward"] / 1e9)
    assert result.gflops("total") == pytest.approx(600 * flop["total"] / result.total_seconds / 1e9)
    assert result.samples_per_second == pytest.approx(600 / result.total_seconds)


def test_steps_beyond_an_epoch_continue_with_a_new_shuffle(data):
    x, y = data
    result = profile_training("numba", x=x, y=y, steps=25, batch_size=64, hidden=(16,),
                              peak=100.0)
    assert result.steps == 25
    assert result.samples == 2 * 600 + 5 * 64
    assert result.fused_seconds is not None
    # numba's fused epoch times its parts, within its wall time (which adds the packing)
    assert tuple(result.fused_parts) == backends.load_backend("numba").PARTS
    assert 0 < sum(result.fused_parts.values()) <= result.fused_seconds
    assert result.gflops("products") > result.gflops("fused")
    assert "products" in str(result) and "wait" in str(result)


@pytest.mark.parametrize("backend", ["matmul", "numba"])
def test_a_batch_larger_than_the_data_is_one_batch_per_epoch(backend, data):
    x, y = data
    result = profile_training(backend, x=x, y=y, steps=3, batch_size=10_000, hidden=(8,),
                              peak=1.0)
    assert (result.batch_size, result.steps, result.samples) == (600, 3, 1800)
    assert result.fused_seconds is not None


def test_divergence_stops_with_one_error_and_no_warnings(data):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning would fail here first
        with pytest.raises(TrainingDivergedError,
                           match=r"non-finite at (warm-up|profiled) step \d+ of \d+"):
            profile_training("matmul", x=x, y=y, optimizer="sgd", learning_rate=1e30,
                             hidden=(8,), peak=1.0)


@pytest.mark.parametrize("backend", fastmlp.available_backends())
def test_divergence_stops_before_the_update_as_fit_does(backend, data):
    x, y = data
    batch_size, steps = 50, 6
    batches = [np.arange(begin, begin + batch_size) for begin in range(0, steps * batch_size,
                                                                        batch_size)]
    profiled = MLP((30, 8, 10), dtype=np.float64, seed=0)
    profiled.scaler.fit(x)
    trained = copy.deepcopy(profiled)
    module = backends.load_backend(backend)
    # A learning rate of 1e200 keeps the first loss finite and overflows the weights it updates.
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(TrainingDivergedError, match="non-finite at profiled step 2 of 6"):
            _phased_steps(module, profiled, optim.SGD(1e200), x, y, batches, "profiled")
        X = trained.scaler.transform(x, trained.dtype)
        _, _, failed_step = train_epoch(module, trained.params, X[:steps * batch_size],
                                        y[:steps * batch_size], batch_size, optim.SGD(1e200),
                                        np.full(steps, 1e200))
    assert failed_step == 1  # the second step, counted from 0
    assert np.isfinite(profiled.params[0][0]).all()
    for (W, b), (W_fit, b_fit) in zip(profiled.params, trained.params):
        np.testing.assert_array_equal(W, W_fit)
        np.testing.assert_array_equal(b, b_fit)


def test_report_and_json_name_every_phase(data):
    x, y = data
    result = profile_training("matmul", x=x, y=y, steps=4, batch_size=64, hidden=(16,),
                              dtype="float64", peak=50.0)
    text = str(result)
    assert text.startswith("cpu ")  # what it ran on comes first: fastmlp.machine.summary
    assert "\nbackend matmul: 30-16-10 float64, batch 64, adamw, 4 steps (256 samples)" in text
    for phase in (*PHASES, "total", "fused"):
        assert f"\n{phase} " in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["seconds"].keys() == set(PHASES)
    assert data["peak_gflops"] == 50.0
    assert data["gflops"]["total"] == pytest.approx(result.gflops("total"))
    assert data["machine"]["cpu"]["model"] and "numba" in data["machine"]
    table = side_by_side([result, result]).splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("30-16-10 float64"))
    assert table[header + 2].split() == ["matmul", "matmul"]


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tensorflow"}, "unknown backend 'tensorflow'"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ({"y": np.full(600, 10)}, r"label 10 out of range"),
    ({"y": np.zeros(599, int)}, "y has 599 labels but x has 600 samples"),
])
def test_bad_arguments_name_the_problem(data, kwargs, message):
    x, y = data
    arguments = {"backend": "matmul", "x": x, "y": y, "hidden": (8,), "peak": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        profile_training(**arguments)


def test_nan_input_is_refused(data):
    x, y = data
    x = x.astype(np.float64)
    x[3, 4] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        profile_training("matmul", x=x, y=y, peak=1.0)


def test_cli_profile_json_on_mnist(mnist_dir, capsys):
    status = main(["profile", "--backend", "numba", "--steps", "5", "--hidden", "16",
                   "--data-dir", str(mnist_dir), "--json"])
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backend"] == "numba"
    assert data["steps"] == 5 and data["samples"] == 5 * 128
    assert data["layer_sizes"] == [784, 16, 10]
    assert 0 < data["peak_gflops"] < float("inf")
    assert data["seconds"].keys() == set(PHASES)
    assert sum(data["seconds"].values()) == pytest.approx(data["total_seconds"])


def test_cli_profile_all_backends_side_by_side(mnist_dir, capsys):
    status = main(["profile", "--all-backends", "--steps", "3", "--hidden", "16",
                   "--data-dir", str(mnist_dir)])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cpu ")
    header = next(i for i, line in enumerate(lines) if line.startswith("784-16-10 float32"))
    assert lines[header].startswith("784-16-10 float32, batch 128, adamw, 3 steps (384 samples)")
    assert lines[header + 2].split() == fastmlp.available_backends()
    labels = [line[:17].strip() for line in lines[header + 3:]]
    assert labels[:6] == [f"{phase} s (%)" for phase in PHASES] + ["total s"]
    assert "fused samples/s" in labels
