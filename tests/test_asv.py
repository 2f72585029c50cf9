"""The asv benchmark suite in bench/asv_benchmarks imports, is well-formed and runs.

asv runs from a copy of ``asv.conf.json`` whose output directories point into
``tmp_path``, with ``HOME`` there too (``asv machine`` writes
``~/.asv-machine.json``), so the tests write nothing into the repository or the
user's home. ``--python=same`` benchmarks the installed fastmlp in this
interpreter instead of building environments.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastmlp

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "asv.conf.json"
BENCHMARKS = ["training.Forward.time_forward", "training.Backward.time_backward",
              "training.Epoch.time_epoch", "training.Epoch.peakmem_epoch",
              "training.Accuracy.track_test_accuracy"]


def _load_config() -> dict:
    # asv.conf.json is JSON with whole-line // comments
    lines = CONFIG.read_text().splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


@pytest.fixture
def asv(tmp_path):
    """Run ``python -m asv ARGS`` on a temporary copy of the config; return the process."""
    config = _load_config()
    config.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / config["benchmark_dir"]),
        env_dir=str(tmp_path / "env"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
    )
    config_path = tmp_path / "asv.conf.json"
    config_path.write_text(json.dumps(config))
    env = dict(os.environ, HOME=str(tmp_path))

    def run(*args, **extra_env):
        # The timeout only catches a hang: a busy 2-core machine can take minutes.
        return subprocess.run(
            [sys.executable, "-m", "asv", *args, "--config", str(config_path)],
            cwd=ROOT, env=dict(env, **extra_env), capture_output=True, text=True,
            timeout=900, stdin=subprocess.DEVNULL,
        )

    return run


def test_config_keeps_asv_output_in_ignored_dot_asv():
    config = _load_config()
    assert config["benchmark_dir"] == "bench/asv_benchmarks"
    for key in ("env_dir", "results_dir", "html_dir"):
        assert config[key].startswith(".asv/"), key
    assert ".asv/" in (ROOT / ".gitignore").read_text().split()


def test_benchmark_params_cover_available_backends(bench_script):
    training = bench_script("asv_benchmarks/training.py")
    assert set(fastmlp.available_backends()) <= set(training.BACKENDS)
    for suite in (training.Forward, training.Backward, training.Epoch, training.Accuracy):
        assert suite.params[0] == training.BACKENDS
        assert len(suite.param_names) == len(suite.params)


def test_asv_check_finds_no_problems(asv):
    result = asv("check", "--python=same")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No problems found" in output


def test_asv_quick_run_of_matmul_rows(asv, mnist_dir):
    # One call per benchmark, matmul rows only: numba would compile for ~12 s in a fresh venv
    # and loop takes seconds; `asv check` above covers the whole suite.
    machine = asv("machine", "--yes", "--machine", "asv-test")
    assert machine.returncode == 0, machine.stdout + machine.stderr
    result = asv("run", "--python=same", "--quick", "--dry-run", "--show-stderr",
                 "--machine", "asv-test", "--bench", r"\('matmul'",
                 FASTMLP_DATA=str(mnist_dir.resolve()))
    output = result.stdout + result.stderr
    # asv run exits with 2 when a benchmark fails
    assert result.returncode == 0, output
    for name in BENCHMARKS:
        assert re.search(rf"{re.escape(name)}\s+ok", output), output
    # two epochs of the default recipe: far above chance, whatever the machine
    accuracy = re.search(r"track_test_accuracy\s+ok\s*\n.*?matmul\s+([\d.]+)", output,
                         re.DOTALL)
    assert accuracy and float(accuracy.group(1)) > 95, output
