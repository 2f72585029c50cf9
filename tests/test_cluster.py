"""A hyper-parameter search on a dask.distributed cluster, as the sklearn guide shows it.

``GridSearchCV`` over ``fastmlp.sklearn.MLPClassifier`` runs its fits on a
``LocalCluster`` of two worker processes through joblib's dask backend, and
finds what the same search finds run sequentially here, score for score: the
numba backend's results do not depend on the thread count, so one thread per
worker and all of this process's give the same bits. The workers' kernels use
the one thread each was given (dask's nanny sets ``OMP_NUM_THREADS=1`` in them,
which ``fastmlp.backends.numba.num_threads`` honours), while this process's
keep theirs, though the nanny sets the variable here too.
"""

import os

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")

import joblib  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastmlp.backends.numba import num_threads, thread_limits  # noqa: E402
from fastmlp.sklearn import MLPClassifier  # noqa: E402

GRID = {"hidden_layer_sizes": [(16,), (32,)], "batch_size": [32, 64]}


@pytest.fixture(scope="module")
def limits_before_the_cluster():
    return thread_limits()


@pytest.fixture(scope="module")
def client(limits_before_the_cluster):
    # the nanny sets OMP_NUM_THREADS=1 and the like here before it starts each worker
    # (distributed.nanny.pre-spawn-environ): give later tests' subprocesses this
    # process's environment back
    environment = dict(os.environ)
    try:
        with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None) as cluster,
              distributed.Client(cluster) as client):
            yield client
    finally:
        os.environ.clear()
        os.environ.update(environment)


def test_grid_search_on_a_cluster_finds_what_it_finds_here(client):
    X, y = load_digits(return_X_y=True)
    X, y = X[:360], y[:360]
    estimator = MLPClassifier(backend="numba", random_state=0)
    here = GridSearchCV(estimator, GRID, cv=3).fit(X, y)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        there = GridSearchCV(estimator, GRID, cv=3, n_jobs=-1).fit(X, y)
    workers = {task["worker"] for task in stream.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    np.testing.assert_array_equal(there.cv_results_["mean_test_score"],
                                  here.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(there.cv_results_["split0_test_score"],
                                  here.cv_results_["split0_test_score"])
    assert there.best_params_ == here.best_params_
    assert there.best_score_ == here.best_score_
    assert np.ptp(here.cv_results_["mean_test_score"]) > 0  # the grid's points differ


def test_each_workers_kernels_use_the_one_thread_it_was_given(client):
    # in a task, as the search's fits run: numba's count is per thread
    for worker in client.scheduler_info()["workers"]:
        limits = client.submit(thread_limits, workers=[worker], pure=False).result()
        threads = client.submit(num_threads, workers=[worker], pure=False).result()
        assert limits["OMP_NUM_THREADS"] == 1
        assert threads == 1


def test_the_process_that_started_the_cluster_keeps_its_threads(client,
                                                               limits_before_the_cluster):
    assert os.environ["OMP_NUM_THREADS"] == "1"  # set here by the nanny
    assert thread_limits() == limits_before_the_cluster
