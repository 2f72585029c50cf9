"""``fastmlp bench``: the comparison table, its ratios, and the plot."""

import pytest

from fastmlp import available_backends
from fastmlp.benchmark import Comparison, plot, plot_format
from fastmlp.cli import main


def test_ratios_are_how_many_times_faster_than_the_reference():
    result = Comparison((784, 128, 128, 10), samples=60_000, peak_gflops=200.0,
                        torch_version="2.13.0",
                        epoch_seconds={128: {"matmul": 0.4, "numba": 0.2, "torch": 0.5}},
                        forward_seconds={"matmul": 0.1, "numba": 0.05, "torch": 0.2},
                        predict_seconds={"numba": 9e-6})
    rows = {line.split()[0]: line.split() for line in str(result).splitlines()
            if line.endswith("x") and " 128 " in line}
    # backend batch s/epoch samples/s GFLOP/s %peak vs-numpy vs-torch
    assert rows["numba"] == ["numba", "128", "0.200", "300,000", "152.2", "76.1%", "2.00x", "2.50x"]
    assert rows["matmul"][-2:] == ["1.00x", "1.25x"]
    text = str(result)
    assert "\nnumba       0.050     2.00x     4.00x\n" in text
    assert text.endswith("\nnumba         9.0")


def test_without_the_references_the_ratio_columns_say_so():
    result = Comparison((4, 3), samples=10, peak_gflops=1.0,
                        epoch_seconds={5: {"numba": 1.0}})
    row = [line for line in str(result).splitlines() if line.startswith("numba")][0]
    assert row.split()[-2:] == ["-", "-"]


def test_cli_bench_prints_every_backend_and_draws_the_plot(mnist_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    status = main(["bench", "--samples", "2000", "--epochs", "1", "--batch-sizes", "100",
                   "--no-torch", "--data-dir", str(mnist_dir), "--plot", str(path)])
    assert status == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " 100 " in line}
    assert set(rows) == set(available_backends()) - {"loop"}
    assert rows["matmul"][-2:] == ["1.00x", "-"]
    assert "forward of all 2,000 samples as one batch" in out
    assert err.endswith(f"fastmlp: saved plot to {path}\n")  # a notice, not a result
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.png"]  # no temporary file left


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
