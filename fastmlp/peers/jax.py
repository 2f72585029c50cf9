"""JAX as a peer of ``fastmlp bench``: ``jax.jit`` of a whole epoch, its steps a ``lax.scan``."""

from __future__ import annotations

import math
import os
import time

import numpy as np

from .._timing import per_call, timed
from . import LEARNING_RATE, scaled


class Peer:
    """The network as a JAX user writes a fast training loop.

    The parameters are a list of ``(W, b)`` with ``W`` shaped ``(n_in, n_out)``
    and drawn as ``torch.nn.Linear`` draws them. One epoch is one compiled
    function: it shuffles the samples (``jax.random.permutation``), runs the
    full batches as a ``lax.scan`` of SGD steps (``jax.grad`` of the mean
    softmax cross-entropy) and the last, smaller batch as one more step. It is
    compiled in the untimed first epoch, so no timed epoch includes compilation.

    XLA's CPU client sizes its thread pool by the CPUs the process may run on
    (what JAX's developers advise for limiting it: jax-ml/jax#1539); the
    ``XLA_FLAGS`` often quoted, ``--xla_cpu_multi_thread_eigen=false
    intra_op_parallelism_threads=1``, left a 2048x2048 product on both cores of
    a 2-core machine with jaxlib 0.10. So ``threads`` becomes the process's CPU
    affinity, the first ``threads`` CPUs it may use, before jax is imported.
    Computation stays on the CPU even where JAX could reach an accelerator.
    """

    threads_set_by = "CPU affinity, by which XLA sizes its thread pool"

    def __init__(self, layer_sizes, dtype, threads: int):
        if hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            if threads < len(cpus):
                os.sched_setaffinity(0, cpus[:threads])
            self.threads = len(os.sched_getaffinity(0))
        else:  # no affinity to set: XLA takes every core
            self.threads = os.cpu_count() or 1
        import jax
        import jaxlib

        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_enable_x64", np.dtype(dtype) == np.float64)
        self.jax, self.jnp = jax, jax.numpy
        self.version = f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"
        self.dtype = np.dtype(dtype)
        key = jax.random.key(0)
        self.params = []
        for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
            key, w_key, b_key = jax.random.split(key, 3)
            bound = 1 / math.sqrt(n_in)
            self.params.append(
                (jax.random.uniform(w_key, (n_in, n_out), self.dtype, -bound, bound),
                 jax.random.uniform(b_key, (n_out,), self.dtype, -bound, bound)))
        self.key = jax.random.key(1)

    def get_params(self) -> list:
        """The parameters as fastmlp lays them out: ``(W, b)`` a layer, ``W`` ``(n_out, n_in)``."""
        return [(np.array(W).T.copy(), np.array(b)) for W, b in self.params]

    def set_params(self, params) -> None:
        """Start from ``params``, in the layout of :meth:`get_params`."""
        self.params = [(self.jnp.asarray(np.asarray(W, self.dtype).T),
                        self.jnp.asarray(np.asarray(b, self.dtype))) for W, b in params]

    def _logits(self, params, x):
        for W, b in params[:-1]:
            x = self.jax.nn.relu(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def trainer(self, x, y, batch_size):
        """A function that trains one epoch and returns its seconds (after one that compiles)."""
        jax, jnp = self.jax, self.jnp
        X = jnp.asarray(scaled(x, self.dtype))
        Y = jnp.asarray(y.astype(np.int32))
        steps, rest = divmod(len(X), batch_size)

        def loss(params, xb, yb):
            log_p = jax.nn.log_softmax(self._logits(params, xb))
            return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

        def step(params, batch):
            grads = jax.grad(loss)(params, *batch)
            return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads), None

        @jax.jit
        def epoch(params, X, Y, key):
            order = jax.random.permutation(key, len(X))
            X, Y = X[order], Y[order]
            full = steps * batch_size
            batches = (X[:full].reshape(steps, batch_size, -1), Y[:full].reshape(steps, -1))
            params, _ = jax.lax.scan(step, params, batches)
            if rest:
                params, _ = step(params, (X[full:], Y[full:]))
            return params

        def timed_epoch():
            self.key, key = jax.random.split(self.key)
            start = time.perf_counter()
            self.params = jax.block_until_ready(epoch(self.params, X, Y, key))
            return time.perf_counter() - start

        timed_epoch()
        return timed_epoch

    def forward(self, x, repeats=3):
        """Seconds of the probabilities of all of ``x`` as one batch, the best of ``repeats``."""
        jax = self.jax
        X = self.jnp.asarray(scaled(x, self.dtype))
        probabilities = jax.jit(lambda params, X: jax.nn.softmax(self._logits(params, X)))
        probabilities(self.params, X).block_until_ready()  # compiles for this shape
        return min(timed(lambda: probabilities(self.params, X).block_until_ready())
                   for _ in range(repeats))

    def predict_one(self, x, calls=2000):
        """Seconds per call of the class of one already scaled sample."""
        jnp = self.jnp
        sample = jnp.asarray(scaled(x[0], self.dtype))
        predict = self.jax.jit(lambda params, x: jnp.argmax(self._logits(params, x)))
        return per_call(lambda: int(predict(self.params, sample)), calls)  # compiles first
