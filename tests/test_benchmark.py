"""``fastmlp bench``: its tables and ratios, the width sweep, threads, the peers, the plots."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import available_backends, peers
from fastmlp._timing import per_call
from fastmlp.benchmark import (
    Comparison,
    Sweep,
    compare,
    max_threads,
    plot,
    plot_format,
    plot_widths,
)
from fastmlp.cli import main


def _runs(width_seconds):
    """A sweep of made-up runs of ``{width: {batch: {contender: seconds}}}``."""
    return Sweep([Comparison((784, width, width, 10), samples=60_000, peak_gflops=200.0,
                             threads=2, epoch_seconds=seconds)
                  for width, seconds in width_seconds.items()])


def test_ratios_are_how_many_times_faster_than_the_reference():
    result = Comparison((784, 128, 128, 10), samples=60_000, peak_gflops=200.0,
                        epoch_seconds={128: {"matmul": 0.4, "numba": 0.2, "torch": 0.5,
                                             "jax": 0.25}},
                        forward_seconds={"matmul": 0.1, "numba": 0.05, "torch": 0.2},
                        predict_seconds={"numba": 9e-6})
    rows = {line.split()[0]: line.split() for line in str(result).splitlines()
            if line.endswith("x") and " 128 " in line}
    # backend batch s/epoch samples/s GFLOP/s %peak vs-numpy vs-torch vs-jax
    assert rows["numba"] == ["numba", "128", "0.200", "300,000", "152.2", "76.1%", "2.00x",
                             "2.50x", "1.25x"]
    assert rows["matmul"][-3:] == ["1.00x", "1.25x", "0.62x"]
    assert rows["jax"][-3:] == ["1.60x", "2.00x", "1.00x"]
    text = str(result)
    assert "\nnumba       0.050     2.00x     4.00x         -\n" in text
    assert text.endswith("\nnumba         9.0")


def test_without_the_references_the_ratio_columns_say_so():
    result = Comparison((4, 3), samples=10, peak_gflops=1.0,
                        epoch_seconds={5: {"numba": 1.0}})
    row = [line for line in str(result).splitlines() if line.startswith("numba")][0]
    assert row.split()[-3:] == ["-", "-", "-"]


def test_each_contender_is_printed_with_its_version_threads_and_process():
    result = Comparison((4, 3), samples=10, peak_gflops=50.0, threads=2, contenders={
        "numba": {"version": "fastmlp 0.1.0, numba 0.68.1", "threads": 2,
                  "threads_set_by": "numba.set_num_threads", "process": "bench"},
        "jax": {"version": "jax 0.10.2, jaxlib 0.10.2", "threads": 2,
                "threads_set_by": "CPU affinity", "process": "own"}})
    lines = str(result).splitlines()
    at = lines.index("contenders, each on 2 threads:")
    assert lines[at - 1] == "float32 FMA peak on 2 threads 50 GFLOP/s"
    assert lines[at + 1:at + 3] == [
        "  numba   fastmlp 0.1.0, numba 0.68.1; 2 threads (numba.set_num_threads)",
        "  jax     jax 0.10.2, jaxlib 0.10.2; 2 threads (CPU affinity), in a process of its own"]


def test_the_width_table_gives_gflops_and_share_of_the_peak_by_width():
    # An epoch of 60 000 through 784-W-W-10: 30.44 GFLOP at W = 128, 192.55 at W = 512.
    result = _runs({128: {128: {"numba": 0.2, "torch": 0.4}},
                    512: {128: {"numba": 2.0}, 1000: {"numba": 1.0}}})
    lines = result.width_table_lines()
    assert lines[0].startswith("GFLOP/s of an epoch and its share of the float32 FMA peak "
                               "(200 GFLOP/s), by the hidden width W of 784-W-W-10")
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines[3:]}
    assert rows == {("numba", "128"): ["152.2", "76%", "96.3", "48%"],
                    ("torch", "128"): ["76.1", "38%", "-"],
                    ("numba", "1000"): ["-", "192.6", "96%"]}
    assert str(result).endswith("\n".join(lines))


def test_a_sweep_round_trips_through_json_and_reads_an_older_saved_run():
    result = _runs({16: {32: {"numba": 0.5}}, 32: {32: {"numba": 0.7}}})
    assert Sweep.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    # what `fastmlp bench --json` printed before sweeps: one Comparison, PyTorch's version alone
    old = {"layer_sizes": [4, 3], "samples": 10, "peak_gflops": 1.0,
           "torch_version": "2.13.0+cpu", "epoch_seconds": {"32": {"torch": 0.5}}}
    (run,) = Sweep.from_dict(old).runs
    assert run.contenders == {"torch": {"version": "torch 2.13.0+cpu"}}
    assert run.epoch_seconds == {32: {"torch": 0.5}}
    assert "  torch   torch 2.13.0+cpu" in str(run)


def test_cli_bench_prints_every_backend_and_draws_the_plot(mnist_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    status = main(["bench", "--samples", "2000", "--epochs", "1", "--batch-sizes", "100",
                   "--no-torch", "--no-jax", "--data-dir", str(mnist_dir),
                   "--plot", str(path)])
    assert status == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " 100 " in line}
    assert set(rows) == set(available_backends()) - {"loop"}
    assert rows["matmul"][-3:] == ["1.00x", "-", "-"]
    assert "forward of all 2,000 samples as one batch" in out
    assert err.endswith(f"fastmlp: saved plot to {path}\n")  # a notice, not a result
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]  # no temporary file left


def test_cli_bench_sweeps_the_hidden_width(small_images, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    x, y = small_images(300, 0)
    np.savez(tmp_path / "small.npz", x_train=x.reshape(300, -1), y_train=y)
    path = tmp_path / "widths.png"
    assert main(["bench", "--data", str(tmp_path / "small.npz"), "--hidden", "16,32",
                 "--backends", "matmul,numba", "--batch-sizes", "50", "--epochs", "1",
                 "--no-torch", "--no-jax", "--json", "--plot", str(path)]) == 0
    captured = capsys.readouterr()
    result = Sweep.from_dict(json.loads(captured.out))
    assert [run.layer_sizes for run in result.runs] == [(64, 16, 16, 3), (64, 32, 32, 3)]
    assert result.widths == [16, 32]
    for run in result.runs:
        assert run.samples == 300 and run.threads == max_threads()
        assert list(run.epoch_seconds) == [50]
        assert list(run.epoch_seconds[50]) == ["matmul", "numba"]
        assert list(run.contenders) == ["matmul", "numba"]
        assert {about["threads"] for about in run.contenders.values()} == {max_threads()}
        assert run.contenders["numba"]["version"] == (
            f"fastmlp {fastmlp.__version__}, numba {run.machine['numba']['version']}")
    # progress names the network; the plot is GFLOP/s against the width
    assert "64-32-32-3, batch 50: matmul " in captured.err
    assert captured.err.rstrip().endswith(f"saved plot to {path}")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "by the hidden width W of 64-W-W-3" in str(result)


def test_every_contender_runs_on_the_threads_asked_for(small_images):
    import numba

    x, y = small_images(200, 0)
    before = numba.get_num_threads()
    result = compare(x, y, backend_names=["matmul", "numba"], batch_sizes=[100], epochs=1,
                     peer_names=(), threads=1, layer_sizes=(64, 8, 3))
    assert result.threads == 1
    assert {name: about["threads"] for name, about in result.contenders.items()} == {
        "matmul": 1, "numba": 1}
    assert {library["threads"] for library in result.machine["blas"]} == {1}
    assert "float32 FMA peak on 1 thread " in str(result)
    assert numba.get_num_threads() == before  # left as it was


def test_limited_threads_limits_a_blas_loaded_inside_it_and_restores_all():
    # In a fresh process: NumPy's BLAS is loaded before the block, SciPy's inside it.
    pytest.importorskip("scipy")
    script = """
import json, numba, numpy
from threadpoolctl import threadpool_info
from fastmlp.benchmark import limited_threads

def pools():
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()
            if pool["user_api"] == "blas"}

before = (numba.get_num_threads(), pools())
with limited_threads(1) as limit_blas:
    inside = (numba.get_num_threads(), pools())
    import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS)
    loaded = pools()
    limit_blas()
    limited = pools()
print(json.dumps([before, inside, loaded, limited, (numba.get_num_threads(), pools())]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    before, inside, loaded, limited, after = json.loads(run.stdout)
    assert inside == [1, dict.fromkeys(before[1], 1)]
    assert set(loaded) > set(before[1])  # SciPy brought a BLAS of its own
    assert set(limited.values()) == {1}
    assert after[0] == before[0] and after[1] == {**loaded, **before[1]}


def test_a_missing_peer_is_left_out_with_one_line_naming_the_extra(small_images, tmp_path,
                                                                    capsys, monkeypatch):
    monkeypatch.setattr(peers, "importable", lambda name: False)
    x, y = small_images(120, 2)
    np.savez(tmp_path / "mine.npz", x_train=x.reshape(120, -1), y_train=y)
    assert main(["bench", "--data", str(tmp_path / "mine.npz"), "--backends", "matmul",
                 "--batch-sizes", "60", "--epochs", "1"]) == 0
    out, err = capsys.readouterr()
    # notices, on stderr: stdout holds the tables alone
    assert err.endswith('fastmlp: PyTorch is not importable, so torch is not timed: '
                        'pip install "fastmlp[peers]"\n'
                        'fastmlp: JAX is not importable, so jax is not timed: '
                        'pip install "fastmlp[peers]"\n')
    assert "not importable" not in out and "in a process of its own" not in out
    assert main(["bench", "--data", str(tmp_path / "mine.npz"), "--backends", "matmul",
                 "--batch-sizes", "60", "--epochs", "1", "--no-torch", "--no-jax"]) == 0
    assert "not importable" not in "".join(capsys.readouterr())


def test_an_unknown_peer_is_refused_before_any_timing():
    with pytest.raises(ValueError, match="unknown peer 'tensorflow'; choose from torch, jax"):
        compare(np.zeros((4, 2)), np.zeros(4, int), peer_names=("tensorflow",))


def test_a_failing_peer_process_raises_with_its_error(tmp_path):
    # Without torch the import fails, with it the missing data: either is the process's error.
    with pytest.raises(peers.PeerError, match=r"^torch's process: (ModuleNotFound|FileNotFound)"):
        peers.PeerProcess("torch", (4, 3), "float32", 1, str(tmp_path / "nothing"))
    assert issubclass(peers.PeerError, OSError)  # the command line prints it as one line


def test_the_jax_peer_times_a_jitted_epoch_in_its_own_process(small_images):
    pytest.importorskip("jax")
    x, y = small_images(250, 0)
    result = compare(x, y, backend_names=["matmul"], batch_sizes=[64, 250], epochs=2,
                     peer_names=("jax",), threads=1, layer_sizes=(64, 16, 16, 3))
    jax = result.contenders["jax"]
    assert jax["version"].startswith("jax ") and ", jaxlib " in jax["version"]
    assert jax["threads"] == 1 and jax["process"] == "own"
    assert jax["threads_set_by"].startswith("CPU affinity")
    for seconds in (*result.epoch_seconds.values(), result.forward_seconds,
                    result.predict_seconds):
        assert list(seconds) == ["matmul", "jax"] and seconds["jax"] > 0


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_closing_a_peer_mid_request_kills_it_and_an_idle_one_ends(name, small_images):
    """After Ctrl-C nobody reads the answer: the peer's process must not work on for it."""
    pytest.importorskip(name)
    x, y = small_images(100, 0)
    with peers.shared_data(x, y) as data:
        idle = peers.PeerProcess(name, (64, 8, 3), "float32", 1, data)
        idle.close()
        busy = peers.PeerProcess(name, (64, 8, 3), "float32", 1, data)
        busy._process.stdin.write(json.dumps({"do": "trainer", "batch_size": 10}) + "\n")
        busy._process.stdin.flush()
        busy._waiting = True  # as _ask leaves it while the answer is awaited
        busy.close()
    assert idle._process.returncode == 0
    assert busy._process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("name", list(peers.PEERS))
def test_a_peer_trains_the_same_network_with_the_same_sgd_step(name, tmp_path):
    """One epoch of one batch is one SGD step: the peer's equals fastmlp's, in float64."""
    pytest.importorskip(name)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12), dtype=np.uint8)
    y = rng.integers(0, 4, 40)
    model = fastmlp.MLP((12, 8, 6, 4), dtype="float64", seed=0)
    arrays = [array for layer in model.params for array in layer]  # W, b, W, b, ...
    np.savez(tmp_path / "start.npz", x=x, y=y, **{f"p{i}": a for i, a in enumerate(arrays)})
    # in a process of its own, as fastmlp bench runs it
    script = f"""
import numpy as np
from fastmlp.machine import usable_cpus
from fastmlp.peers.{name} import Peer
data = np.load({str(tmp_path / "start.npz")!r})
peer = Peer((12, 8, 6, 4), "float64", usable_cpus())
peer.set_params([(data[f"p{{2 * l}}"], data[f"p{{2 * l + 1}}"]) for l in range(3)])
peer.trainer(data["x"], data["y"], batch_size=40)  # its untimed first epoch: one step
np.savez({str(tmp_path / "end.npz")!r}, *[a for layer in peer.get_params() for a in layer])
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    with fastmlp.use_backend("loop"):
        probabilities, cache = fastmlp.forward(model.params, peers.scaled(x, np.float64))
        grads = fastmlp.backward(model.params, cache, y)
    end = np.load(tmp_path / "end.npz")
    for l, ((W, b), (dW, db)) in enumerate(zip(model.params, grads)):
        np.testing.assert_allclose(end[f"arr_{2 * l}"], W - peers.LEARNING_RATE * dW, rtol=1e-7,
                                   atol=1e-12)
        np.testing.assert_allclose(end[f"arr_{2 * l + 1}"], b - peers.LEARNING_RATE * db,
                                   rtol=1e-7, atol=1e-12)


def test_a_slow_call_is_timed_over_fewer_calls():
    made = []

    def slow():  # 10 ms or more a call: 0.05 s holds at most 5 of them
        made.append(1)
        time.sleep(0.01)

    assert per_call(slow, calls=2000, seconds=0.05) >= 0.01
    assert 10 + 5 <= len(made) <= 10 + 5 * 5  # the estimate's 10, then 5 runs of 1 to 5 calls


def test_cli_bench_unknown_backend_is_one_line(mnist_dir, capsys):
    status = main(["bench", "--backends", "matmul,tensorflow", "--data-dir", str(mnist_dir)])
    assert status == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [err[0]] and err[0].startswith("fastmlp: error: unknown backend 'tensorflow'")


@pytest.mark.parametrize("name, image_format", [
    ("plot.png", "png"), ("plot.SVG", "svg"), ("plot", "png"), ("my.dir/plot", "png"),
])
def test_the_plot_format_comes_from_the_file_name(tmp_path, name, image_format):
    pytest.importorskip("matplotlib")
    (tmp_path / "my.dir").mkdir()
    assert plot_format(tmp_path / name) == image_format


def test_plot_writes_the_format_its_suffix_names(tmp_path):
    pytest.importorskip("matplotlib")
    result = Comparison((4, 3), samples=10, peak_gflops=1.0,
                        epoch_seconds={5: {"matmul": 1.0, "numba": 0.5}},
                        forward_seconds={"matmul": 0.1, "numba": 0.05})
    plot(result, tmp_path / "chart.svg")
    assert (tmp_path / "chart.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot(Comparison((4, 3), samples=10, peak_gflops=1.0), tmp_path / "empty.png")


def test_plot_widths_draws_a_line_per_contender_and_the_peak(tmp_path):
    pytest.importorskip("matplotlib")
    result = _runs({128: {128: {"numba": 0.2, "torch": 0.4}}, 512: {128: {"numba": 2.0}}})
    plot_widths(result, tmp_path / "widths.svg")
    svg = (tmp_path / "widths.svg").read_text()
    for label in ("numba", "torch", "float32 FMA peak (200, 2 threads)", "hidden width W",
                  "batch 128"):
        assert f"<!-- {label} -->" in svg
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_widths(_runs({128: {}}), tmp_path / "empty.png")


@pytest.mark.parametrize("path, message", [
    ("/nonexistent/dir/bench.png", "no directory /nonexistent/dir"),
    ("bench.docx", "unknown image format 'docx'"),
])
def test_cli_bench_refuses_a_bad_plot_path_before_timing(path, message, capsys):
    pytest.importorskip("matplotlib")
    # --data-dir points nowhere: the path must be refused before the data is even read.
    status = main(["bench", "--plot", path, "--data-dir", "/nonexistent/mnist"])
    assert status == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("fastmlp: error: cannot write the plot to")
    assert message in err[0]


def test_the_first_run_script_times_cold_warm_and_matmul_runs(small_idx, capsys, bench_script,
                                                              tmp_path):
    # bench/first_run.py on a small data set, the measured runs by matmul (nothing to
    # compile): each kind timed once a run, in a process of its own, and tabled
    from pathlib import Path

    script = bench_script("first_run.py")
    root = str(Path(__file__).parents[1])
    times = script.main(["--runs", "2", "--trees", root, "--backend", "matmul", "--data-dir",
                         str(small_idx)])
    assert list(times) == ["matmul cold", "matmul warm", "matmul"]
    assert all(len(seconds) == 2 and all(0 < second < 300 for second in seconds)
               for seconds in times.values())
    out = capsys.readouterr().out
    assert out.count("run 1/2") == out.count("run 2/2") == 3
    assert "| matmul cold | " in out and "| matmul warm | " in out and "| matmul | " in out
    with pytest.raises(OSError, match="exited 1"):  # a run that fails names itself
        script.main(["--runs", "1", "--trees", root, "--backend", "tensorflow", "--no-matmul",
                     "--data-dir", str(small_idx)])
    with pytest.raises(SystemExit, match="holds no fastmlp package"):
        script.main(["--trees", str(tmp_path)])
