"""How many threads the numba backend's kernels use: ``fastmlp.backends.numba.num_threads``.

The rule (its docstring, and the threads section of the backends page): the
smallest of numba's thread count in the calling thread, the CPUs in the
process's affinity mask, and ``OMP_NUM_THREADS`` as it was when fastmlp was
imported. Each bound is tested where it comes from: numba's count and the
variable's value in this process, and in subprocesses the affinity mask,
restricted after importing numba (when numba has already sized its threads by
the whole machine), and the variable, set when the process starts; there the
fused epoch must start that many workers, a large product split into that many
ranges, and the model come out the same bits as without the restriction.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from fastmlp import backends  # noqa: E402
from fastmlp.backends.numba import num_threads, settings, thread_limits  # noqa: E402
from fastmlp.machine import usable_cpus  # noqa: E402


def set_variable(monkeypatch, value):
    """As if ``OMP_NUM_THREADS`` had been ``value`` (None: unset) when fastmlp was imported."""
    monkeypatch.setattr(backends, "OMP_NUM_THREADS_AT_IMPORT", value)


@pytest.fixture
def no_variable(monkeypatch):
    set_variable(monkeypatch, None)


def unrestricted():
    return min(numba.get_num_threads(), usable_cpus())


def test_without_the_variable_the_kernels_use_numbas_threads_on_the_usable_cpus(no_variable):
    assert thread_limits() == {"numba": numba.get_num_threads(), "affinity": usable_cpus()}
    assert num_threads() == unrestricted()
    assert settings()["threads"] == num_threads()
    assert settings()["thread_limits"] == thread_limits()


@pytest.mark.parametrize("value, limit", [("1", 1), ("1,4", 1), (" 2 ", 2), ("3,1", 3),
                                          ("100000", 100000)])
def test_omp_num_threads_caps_the_kernels_threads(monkeypatch, value, limit):
    set_variable(monkeypatch, value)
    assert thread_limits()["OMP_NUM_THREADS"] == limit
    assert num_threads() == min(limit, unrestricted())


@pytest.mark.parametrize("value", ["", "0", "-2", "two", "1.5", ",2"])
def test_an_omp_num_threads_that_is_not_a_positive_count_is_no_limit(monkeypatch, value):
    set_variable(monkeypatch, value)
    assert "OMP_NUM_THREADS" not in thread_limits()
    assert num_threads() == unrestricted()


def test_omp_num_threads_set_after_the_import_changes_nothing(monkeypatch, no_variable):
    # what a dask LocalCluster's nanny does to the process that starts the workers
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert "OMP_NUM_THREADS" not in thread_limits()
    assert num_threads() == unrestricted()


def test_numba_set_num_threads_limits_the_calling_thread_only(no_variable):
    if unrestricted() < 2:
        pytest.skip("one thread here whatever numba is told")
    seen = {}

    def limited():
        numba.set_num_threads(1)  # numba's count is per thread
        seen["limited"] = num_threads()

    worker = threading.Thread(target=limited)
    worker.start()
    worker.join()
    assert seen["limited"] == 1
    assert num_threads() == unrestricted()


def test_the_epochs_workers_and_the_product_splits_follow_num_threads(monkeypatch, no_variable,
                                                                     random_problem):
    # in this process: a lower bound reaches both places that start threads
    if unrestricted() < 2:
        pytest.skip("one thread here whatever the variable says")
    from fastmlp.backends.numba import _api, _fused, train_epoch
    from fastmlp.optim import SGD

    workers, tasks = [], []
    run_workers, split_rows = _fused.run_workers, _api.split_rows

    def counting_workers(kernel, n, *args):
        workers.append(n)
        return run_workers(kernel, n, *args)

    def counting_splits(kernel, n, t, *args):
        tasks.append(t)
        return split_rows(kernel, n, t, *args)

    monkeypatch.setattr(_fused, "run_workers", counting_workers)
    monkeypatch.setattr(_api, "split_rows", counting_splits)
    monkeypatch.setattr(_api, "PARALLEL_WORK", 1)
    params, x, y = random_problem((20, 16, 3), 64, np.float64)
    for variable, threads in ((None, unrestricted()), ("1", 1)):
        set_variable(monkeypatch, variable)
        workers.clear()
        tasks.clear()
        _api.forward(params, x)
        train_epoch(params, x, y, 32, SGD(), [0.1, 0.1])
        assert workers == [threads]
        assert tasks and set(tasks) == {threads}


CHILD = textwrap.dedent("""
    import hashlib, json, os, sys

    import numpy as np

    from fastmlp import MLP, use_backend
    from fastmlp.backends.numba import _api, _fused, num_threads, thread_limits

    workers, tasks = [], []
    run_workers, split_rows = _fused.run_workers, _api.split_rows
    def counting_workers(kernel, n, *args):
        workers.append(n)
        return run_workers(kernel, n, *args)
    def counting_splits(kernel, n, t, *args):
        tasks.append(t)
        return split_rows(kernel, n, t, *args)
    _fused.run_workers, _api.split_rows = counting_workers, counting_splits
    _api.PARALLEL_WORK = 1  # every product splits

    if sys.argv[1] == "affinity":  # after numba sized its threads by the whole mask
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 40), dtype=np.uint8)
    y = (x[:, 0] > 127).astype(int) + (x[:, 1] > 127)
    model = MLP((40, 32, 16, 3), dtype="float64", seed=0)
    with use_backend("numba"):
        history = model.fit(x, y, epochs=2, batch_size=64, optimizer="adamw")
        proba = model.predict_proba(x)
    digest = hashlib.sha256()
    for array in [a for layer in model.params for a in layer] + [proba]:
        digest.update(np.ascontiguousarray(array).tobytes())
    print(json.dumps({"workers": workers, "tasks": tasks, "threads": num_threads(),
                      "limits": thread_limits(), "loss": history.loss,
                      "digest": digest.hexdigest()}))
""")


def run_child(mode, **variables):
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    env.update(variables)
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def unrestricted_child():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity to restrict on this OS")
    child = run_child("plain")
    if child["threads"] < 2:
        pytest.skip("the kernels run one thread here already")
    return child


@pytest.mark.parametrize("mode, variables", [("affinity", {}), ("plain", {"OMP_NUM_THREADS": "1"})],
                         ids=["one CPU in the affinity mask", "OMP_NUM_THREADS=1"])
def test_a_restricted_process_trains_on_one_thread_to_the_same_bits(unrestricted_child, mode,
                                                                    variables):
    child = run_child(mode, **variables)
    assert child["threads"] == 1
    assert child["workers"] and set(child["workers"]) == {1}
    assert child["tasks"] and set(child["tasks"]) == {1}
    assert set(unrestricted_child["workers"]) == {unrestricted_child["threads"]}
    assert set(unrestricted_child["tasks"]) == {unrestricted_child["threads"]}
    assert child["limits"]["numba"] == unrestricted_child["limits"]["numba"]
    assert child["loss"] == unrestricted_child["loss"]
    assert child["digest"] == unrestricted_child["digest"]
