"""Every backend on full MNIST batches: ``pytest --benchmark-only``.

Groups put all backends on the same work, in float32 with the 784-128-128-10
network:

- forward: all 60 000 training images in one call;
- backward: one batch of 10 000 images (the ``loop`` reference walks samples in
  Python, so 60 000 would take it ~4 s a round for no new information);
- epoch: one epoch of ``fit`` with plain SGD at batch 128 and 1000 over the
  60 000 images, without ``loop``;
- epoch of the first 6 000 images: the same with ``loop`` included, timed once
  (one round) for ``loop`` and three times for the others; full epochs five times.

The fast backends take the best of several rounds after a warm-up that
compiles numba's kernels. See bench/conftest.py for the smoke mode of plain
``pytest``.
"""

import numpy as np
import pytest

import fastmlp
from fastmlp.backends import load_backend
from fastmlp.profile import flops_per_sample

LAYER_SIZES = (784, 128, 128, 10)
FLOP = flops_per_sample(LAYER_SIZES)
BACKENDS = fastmlp.available_backends()
FAST_BACKENDS = [name for name in BACKENDS if name != "loop"]
SUBSET = 6_000


@pytest.fixture(scope="module")
def train_set(mnist):
    (x, y), _ = mnist
    model = fastmlp.MLP(LAYER_SIZES, dtype=np.float32, seed=0)
    X = model.scaler.fit(x).transform(x, np.float32)
    return x, y, X, model


def _rounds(backend):
    return 1 if backend == "loop" else 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward(benchmark, measure, full, train_set, backend):
    _, _, X, model = train_set
    X = X if full else X[:256]
    benchmark.group = f"forward: {len(X):,} images in one call"
    module = load_backend(backend)
    module.forward(model.params, X[:8])  # compile
    probs, _ = measure(lambda: module.forward(model.params, X), samples=len(X),
                       flop=len(X) * FLOP["forward"], rounds=2 * _rounds(backend))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward(benchmark, measure, full, train_set, backend):
    _, y, X, model = train_set
    n = 10_000 if full else 256
    benchmark.group = f"backward: one batch of {n:,} images"
    module = load_backend(backend)
    _, cache = module.forward(model.params, X[:n])
    module.backward(model.params, [a[:8] for a in cache], y[:8])  # compile
    grads = measure(lambda: module.backward(model.params, cache, y[:n]), samples=n,
                    flop=n * FLOP["backward"], rounds=2 * _rounds(backend))
    assert [dW.shape for dW, _ in grads] == [W.shape for W, _ in model.params]


def _epoch(backend, x, y, batch_size):
    """A function training one epoch of ``fit`` with plain SGD, after a warm-up."""
    model = fastmlp.MLP(LAYER_SIZES, dtype=np.float32, seed=0)
    model.scaler.fit(x)
    settings = dict(epochs=1, batch_size=batch_size, optimizer="sgd", learning_rate=0.01,
                    schedule="constant")

    def epoch():
        with fastmlp.use_backend(backend):
            return model.fit(x, y, **settings)

    with fastmlp.use_backend(backend):
        model.fit(x[:2 * batch_size], y[:2 * batch_size], **settings)  # compile, allocate
    return epoch


@pytest.mark.parametrize("batch_size", [128, 1000])
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_epoch(benchmark, measure, full, train_set, backend, batch_size):
    x, y, _, _ = train_set
    x, y = (x, y) if full else (x[:512], y[:512])
    benchmark.group = f"epoch: batch {batch_size}, {len(x):,} images"
    history = measure(_epoch(backend, x, y, batch_size), samples=len(x),
                      flop=len(x) * FLOP["total"], rounds=5)
    assert np.isfinite(history.loss[-1])


@pytest.mark.parametrize("batch_size", [128, 1000])
@pytest.mark.parametrize("backend", BACKENDS)
def test_epoch_subset(benchmark, measure, full, train_set, backend, batch_size):
    x, y, _, _ = train_set
    n = SUBSET if full else 256
    benchmark.group = f"epoch with loop: batch {batch_size}, first {n:,} images"
    history = measure(_epoch(backend, x[:n], y[:n], batch_size), samples=n,
                      flop=n * FLOP["total"], rounds=_rounds(backend))
    assert np.isfinite(history.loss[-1])
