"""Speed of every backend on the full MNIST training set, for asv.

Three suites, each parametrized over ``BACKENDS``, all on the 784-128-128-10
network in float32 with weights from ``MLP(..., seed=0)``:

``Forward.time_forward``
    The backend's ``forward`` over all 60 000 training images in one call.
``Backward.time_backward``
    The backend's ``backward`` for one batch of ``BACKWARD_BATCH`` (10 000)
    images, from a ``forward`` cache computed in setup.
``Epoch.time_epoch``, ``Epoch.peakmem_epoch``
    One training epoch, ``model.fit(x, y, epochs=1, ...)`` with plain SGD,
    learning rate 0.01, constant schedule and shuffling seed 0, at each of
    ``BATCH_SIZES``, on a freshly initialised model for every sample: its time,
    and the peak memory of the process while it runs.
``Accuracy.track_test_accuracy``
    Test accuracy (%) after ``ACCURACY_RECIPE``, a fixed short run of the default
    optimizer and schedule, so that a commit that trains worse shows in ``asv
    compare`` as clearly as one that trains slower.

The ``loop`` backend is the per-sample Python reference. Its forward (about
1.2 s) and backward (about 0.7 s) are timed like the others, but an epoch takes
about 6 s per batch size, so ``Epoch.setup`` skips ``loop`` by raising
``NotImplementedError`` and asv reports it as ``n/a``.

asv runs these benchmarks from the working tree against older commits too, so
they use only API that has been stable for many commits (``MLP``, ``fit``,
``use_backend``, ``backends.load_backend`` and a backend's ``forward`` and
``backward``), and a backend that a commit does not have (``load_backend``
raises ``ImportError``) is skipped with ``NotImplementedError``.

The images come from ``fastmlp.datasets.load_mnist()``, which reads
``$FASTMLP_DATA``, a relative path taken from the directory of asv.conf.json;
asv 0.6 passes the environment of ``asv run`` on to the benchmark processes.
They are standardised once per process, outside every timed call, with the
training set's mean and standard deviation, as ``fastmlp train`` does; ``fit``
gets them already scaled (``MLP(..., standardize=False)``), so a timed epoch
does not include computing the mean and standard deviation of 47 million pixels.

asv calls ``setup`` again before every timed sample, so the data, the
parameters and the numba warm-up are cached per process (``functools.cache``):
numba compiles its kernels (about 12 s cold, 0.3 s from numba's cache) in the
first setup of a process, never inside a timed call.
"""

from __future__ import annotations

import functools
import os

import numpy as np

import fastmlp
from fastmlp.datasets import load_mnist

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ["loop", "einsum", "matmul", "numba"]
BATCH_SIZES = [128, 1000]
LAYER_SIZES = (784, 128, 128, 10)
DTYPE = np.float32
SEED = 0
BACKWARD_BATCH = 10_000
SGD = {"optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant", "seed": SEED}
ACCURACY_RECIPE = {"epochs": 2, "batch_size": 128, "optimizer": "adamw", "schedule": "onecycle",
                   "seed": SEED}
SLOW_REFERENCE = "loop"

# numba compiles in the first setup of a process; that, the data and the
# measurement must all fit in one benchmark's timeout.
TIMEOUT = 300


@functools.cache
def training_data() -> tuple[np.ndarray, np.ndarray]:
    """The 60 000 MNIST training images, standardised, and their labels.

    Returns
    -------
    x : ndarray of float32, shape (60000, 784)
        Pixels mapped to [0, 1], then shifted and scaled by the mean and
        standard deviation of all training pixels.
    y : ndarray of int64, shape (60000,)
    """
    (images, labels), _ = load_mnist(data_dir())
    return _standardised(images), labels.astype(np.int64)


@functools.cache
def test_data() -> tuple[np.ndarray, np.ndarray]:
    """The 10 000 MNIST test images, standardised with the training set's statistics."""
    (train_images, _), (images, labels) = load_mnist(data_dir())
    return _standardised(images, like=train_images), labels.astype(np.int64)


def _standardised(images, like=None):
    # pixels mapped to [0, 1], then shifted and scaled by the mean and standard
    # deviation of all pixels of `like` (default: the images themselves)
    reference = images if like is None else like
    unit = reference.reshape(len(reference), -1).astype(DTYPE) / DTYPE(255)
    mean, std = unit.mean(dtype=np.float64), unit.std(dtype=np.float64)
    x = images.reshape(len(images), -1).astype(DTYPE) / DTYPE(255)
    x -= mean
    x /= std
    return x


def data_dir() -> str | None:
    """``$FASTMLP_DATA``, a relative path taken from the directory of asv.conf.json.

    asv runs benchmarks in a directory of its own, so ``FASTMLP_DATA=../shared/data/mnist``
    given to ``asv run`` in the repository root would otherwise point nowhere.
    """
    path = os.environ.get("FASTMLP_DATA")
    if path and not os.path.isabs(path):
        root = os.environ.get("ASV_CONF_DIR") or os.path.dirname(os.path.dirname(HERE))
        path = os.path.join(root, path)
    return path


def load(name: str):
    """The backend module ``name``, or ``NotImplementedError`` (asv: skip) if absent."""
    try:
        return fastmlp.backends.load_backend(name)
    except ImportError as exc:
        raise NotImplementedError(f"backend {name!r} is not available here: {exc}") from None


@functools.cache
def initial_params() -> list:
    """The seed-0 He initialisation of the 784-128-128-10 network, float32."""
    return fastmlp.MLP(LAYER_SIZES, dtype=DTYPE, seed=SEED).params


@functools.cache
def warm_kernels(name: str) -> None:
    """Run ``forward`` and ``backward`` of backend ``name`` once on a few samples (JIT)."""
    backend = load(name)
    x, y = training_data()
    _, cache = backend.forward(initial_params(), x[:64])
    backend.backward(initial_params(), cache, y[:64])


@functools.cache
def warm_fit(name: str, batch_size: int) -> None:
    """Train a throwaway model on two batches with backend ``name`` (JIT, fused epoch)."""
    x, y = training_data()
    model = fastmlp.MLP(LAYER_SIZES, dtype=DTYPE, seed=SEED, standardize=False)
    with fastmlp.use_backend(name):
        model.fit(x[: 2 * batch_size], y[: 2 * batch_size], epochs=1, batch_size=batch_size,
                  **SGD)


@functools.cache
def forward_cache(name: str) -> tuple:
    """``forward`` cache of backend ``name`` for the first ``BACKWARD_BATCH`` images."""
    x, _ = training_data()
    return load(name).forward(initial_params(), x[:BACKWARD_BATCH])[1]


class _Kernel:
    """Settings and setup shared by the suites timing one backend function."""

    params = [BACKENDS]
    param_names = ["backend"]
    number = 1
    repeat = (2, 5, 10.0)
    timeout = TIMEOUT

    def setup(self, backend):
        self.backend = load(backend)
        warm_kernels(backend)
        self.weights = initial_params()


class Forward(_Kernel):
    """Forward pass over all 60 000 training images as one batch."""

    def setup(self, backend):
        super().setup(backend)
        self.x, _ = training_data()

    def time_forward(self, backend):
        self.backend.forward(self.weights, self.x)


class Backward(_Kernel):
    """Backward pass (gradients of the mean cross-entropy) for 10 000 images."""

    def setup(self, backend):
        super().setup(backend)
        self.cache = forward_cache(backend)
        self.y = training_data()[1][:BACKWARD_BATCH]

    def time_backward(self, backend):
        self.backend.backward(self.weights, self.cache, self.y)


class Epoch:
    """One epoch of plain SGD over the 60 000 training images (``loop`` skipped)."""

    params = [BACKENDS, BATCH_SIZES]
    param_names = ["backend", "batch_size"]
    number = 1
    repeat = (2, 5, 10.0)
    timeout = TIMEOUT

    def setup(self, backend, batch_size):
        if backend == SLOW_REFERENCE:
            raise NotImplementedError(
                f"{SLOW_REFERENCE!r} is the per-sample reference: ~6 s per epoch, not timed"
            )
        load(backend)
        warm_fit(backend, batch_size)
        self.x, self.y = training_data()
        self.model = fastmlp.MLP(LAYER_SIZES, dtype=DTYPE, seed=SEED, standardize=False)

    def time_epoch(self, backend, batch_size):
        with fastmlp.use_backend(backend):
            self.model.fit(self.x, self.y, epochs=1, batch_size=batch_size, **SGD)

    def peakmem_epoch(self, backend, batch_size):
        self.time_epoch(backend, batch_size)


class Accuracy:
    """Test accuracy after ``ACCURACY_RECIPE`` (``loop`` skipped: minutes per run)."""

    params = [BACKENDS]
    param_names = ["backend"]
    unit = "%"
    timeout = TIMEOUT

    def setup(self, backend):
        if backend == SLOW_REFERENCE:
            raise NotImplementedError(f"{SLOW_REFERENCE!r} would take minutes for this recipe")
        load(backend)

    def track_test_accuracy(self, backend):
        x, y = training_data()
        x_test, y_test = test_data()
        model = fastmlp.MLP(LAYER_SIZES, dtype=DTYPE, seed=SEED, standardize=False)
        with fastmlp.use_backend(backend):
            model.fit(x, y, **ACCURACY_RECIPE)
            return round(100 * model.score(x_test, y_test), 2)
