"""The numba backend: compiled, register-blocked products with every element-wise step fused.

Each layer is one matrix product written in ``_kernels.gemm_nt`` (no BLAS),
followed by a single compiled sweep over its output that does all the
element-wise work of the layer::

    hidden layer   a = max(z + b, 0)
    output layer   p = softmax(z + b), loss -log p[y], argmax p,
                   delta = (p - onehot(y)) / n
    backward       delta[l-1] = (delta[l] @ W[l]) * (a[l] > 0)

``train_epoch`` runs every step of an epoch (batch gather, forward, loss,
backward, optimizer update) in one compiled call. Large batches split their
rows across numba's threads; each element of every product is summed in the
same order wherever it lies, so results are the same bits whichever thread
calls, however many call at once and however many numba threads there are.

The modules: ``_kernels`` holds every compiled function, ``_api`` the
forward and backward passes, ``_fused`` the fused epoch, ``_threads`` the
guard that lets several Python threads call parallel kernels safely.
"""

from ._api import PARALLEL_WORK, backward, forward, predict_one, settings, softmax
from ._fused import RAW_INPUTS, train_epoch

__all__ = ["forward", "backward", "softmax", "predict_one", "train_epoch", "RAW_INPUTS",
           "PARALLEL_WORK", "settings"]
