"""The numba backend: explicit-SIMD products with every element-wise step fused.

Each layer is one matrix product, ``_kernels.gemm_into``: a loop over tiles of
the micro-kernel that ``_simd`` generates as LLVM vector IR (no BLAS),
followed by a compiled sweep over each cache tile of its output that does all
the element-wise work of the layer::

    hidden layer   a = f(z + b)                 (ReLU: max(z + b, 0))
    output layer   p = g(z + b), the output's loss, its hit,
                   delta = (p - Y) / n, or (p - Y) w / sum(w)
                   (softmax with labels: loss -log p[y], Y = onehot(y))
    backward       delta[l-1] = (delta[l] @ W[l]) * f'(z[l-1])   (ReLU: a[l] > 0)

The activation ``f`` and the output ``g`` are entries of one table of
element-wise functions (``_kernels.ACTIVATION_CODES``, ``OUTPUT_CODES``) that
the epilogues switch on, each written in IEEE operations (``_elementary``), so
every member of ``fastmlp.family`` keeps the promise below.

``run_steps`` (what ``fit`` runs) and ``train_epoch`` run every step of an
epoch (batch gather, forward, loss, backward, optimizer update) in one
compiled loop on each of its worker threads (``num_threads()`` of them: the
rule is in its docstring), which split every batch's rows and every layer's
units between them and meet at a barrier. Each element of
every product is one FMA chain in a fixed order wherever it lies, so results
are the same bits whichever thread calls, however many call at once, however
many threads there are and whatever the vector width.

The modules: ``_blocking`` holds every tuning number (the tile, the block
sizes from the machine's caches, the thresholds), ``_simd`` generates the
micro-kernels and atomics, ``_kernels``
holds every compiled function, ``_api`` the forward and backward passes,
``_fused`` the fused epoch, ``_threads`` the worker threads and thread pool,
``_compile_helper`` the second process that compiles beside a first epoch.
"""

from ._api import PARALLEL_WORK, backward, forward, predict_one, settings, softmax
from ._fused import PARTS, compile_ahead, run_steps, train_epoch
from ._threads import num_threads, thread_limits
from ._warm import start as prepare_in_background

__all__ = ["forward", "backward", "softmax", "predict_one", "run_steps", "train_epoch",
           "prepare_in_background", "compile_ahead", "PARALLEL_WORK", "PARTS", "settings",
           "num_threads", "thread_limits"]
