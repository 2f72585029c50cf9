"""Backend registry and selection.

A backend is a module exposing the same four functions:

``forward(params, x, activation="relu", output="softmax") -> (out, cache)``
    ``params`` is a list of ``(W, b)`` pairs, ``W`` of shape ``(n_out, n_in)``
    and ``b`` of shape ``(n_out,)`` as in ``torch.nn.Linear``. ``x`` has shape
    ``(n_samples, n_in)`` or ``(n_in,)``. ``activation`` follows every layer
    but the last and ``output`` follows the last: names of
    ``fastmlp.family.ACTIVATIONS`` (``identity``, ``logistic``, ``tanh``,
    ``relu``, ``leaky_relu``) and ``fastmlp.family.OUTPUTS`` (``softmax``,
    ``logistic``, ``identity``, ``exp``); the defaults keep the bits of the
    ReLU + softmax network. ``out`` has shape ``(n_samples, n_out)`` (or
    ``(n_out,)``); ``cache`` is the list of every layer's input activations
    followed by ``out``, which is what ``backward`` needs.
``softmax(z) -> probs``
    Row-wise, numerically stable softmax of 1-D or 2-D ``z``.
``backward(params, cache, y, sample_weight=None, activation="relu") -> grads``
    Gradients of the mean loss of the output (``fastmlp.family.LOSSES``:
    cross-entropy for softmax, binary cross-entropy for logistic, squared
    error for identity, Poisson for exp), as a list of ``(dW, db)`` pairs
    shaped like ``params``. ``y`` is 1-D integer labels (softmax only: ``Y``
    is their one-hot matrix) or a float target matrix ``Y`` of shape
    ``(n_samples, n_out)`` (any output). Every output with its loss gives the
    output delta ``(out - Y) / n``; the hidden deltas are multiplied by the
    activation's derivative computed from the layer's output in ``cache``
    (``fastmlp.family.DERIVATIVES``). No L2 term: a penalty belongs to the
    optimizer's rule. With ``sample_weight``
    (float64, shape ``(n_samples,)``, finite and non-negative) the loss is the
    weighted mean ``sum_i w[i] loss[i] / sum_i w[i]``, as in scikit-learn's
    ``MLPClassifier``: the output delta of sample ``i`` is ``(out[i] -
    Y[i]) * w[i] / sum(w)``. A batch whose weights sum to 0 has a zero
    gradient (scikit-learn would divide 0 by 0); see :func:`weight_total`.
    ``None`` is the unweighted computation, bit for bit; weights all 1 give
    the same bits too.

``run_steps(params, batches, optimizer, learning_rates, timer, *, activation, output)``
    Returns a ``StepsDone``; ``timer=NO_TIMER``, ``activation="relu"`` and
    ``output="softmax"`` by default. What ``fit`` runs: the training steps of ``batches`` (a
    ``fastmlp.steps.Batches``: which rows of the raw inputs make each batch,
    and how they are scaled; ``batches.y`` int labels ``(n,)`` or float
    targets ``(n, n_out)``) through the network of ``activation`` and
    ``output``, trained with the output's loss, updating ``params`` in place with
    ``optimizer``, ``learning_rates[k]`` for step ``k``; each batch's loss is
    weighted by ``batches.sample_weight`` when it is given. The one way a backend
    plugs into training. ``loop`` and ``einsum`` declare
    ``run_steps = fastmlp.steps.ComposedSteps(forward, backward)``, the one
    loop over their own functions; ``matmul`` runs that loop over a forward
    and backward into buffers allocated once per run; ``numba`` runs its
    fused epoch, or, when that cannot run the optimizer, warns naming why and
    runs the one loop. ``timer`` (a ``fastmlp.steps.Timer``) is how ``fastmlp
    profile`` times the steps.

A backend may also offer a fast path for prediction:

``predict_one(params, x, scale, offset, activation="relu", output="softmax") -> out``
    The outputs for one raw sample ``x`` of shape ``(n_in,)``, scaled as
    ``scale * x + offset`` inside the kernel, without batch machinery.

``matmul`` and ``numba`` keep ``train_epoch(params, x, y, batch_size,
optimizer, learning_rates, order=None)``, their ``run_steps`` on inputs
already scaled, with the contract of ``fastmlp.train.train_epoch``.

Backends are stateless: the model owns the parameters, so switching backend
mid-training just works.

Backends are imported on first use, so ``import fastmlp`` does not pay for
numba's start-up.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import numpy as np

_named_backends: dict[str, str] = {
    "loop": "fastmlp.backends.loop",
    "einsum": "fastmlp.backends.einsum",
    "matmul": "fastmlp.backends.matmul",
    "numba": "fastmlp.backends.numba",
}

# numba: the fastest at training and prediction in batches, and, since its first
# compile became shorter than the time it saves, the quickest first run too
# (docs/user_guide/backends.md has the figures).
DEFAULT_BACKEND = "numba"

# OMP_NUM_THREADS as the process had it when fastmlp was imported: one bound on the
# numba backend's threads (fastmlp.backends.numba.num_threads). Read once, as OpenMP
# and BLAS read it when they load, because a dask LocalCluster sets it to 1 in the
# process that starts its workers as well, whose own kernels keep their threads.
OMP_NUM_THREADS_AT_IMPORT: str | None = os.environ.get("OMP_NUM_THREADS")

_loaded: dict[str, ModuleType] = {}

_default_name: str | None = None  # process-wide, set by set_backend
_context_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastmlp_backend", default=None
)


def weight_total(sample_weight) -> float:
    """What a weighted batch's gradient sums are divided by: the sum of its weights, or 1
    when that is 0.

    Weights are non-negative, so a sum of 0 means every weight is 0 and every
    sample's delta is already 0: the batch's gradient is zero, not 0 / 0.

    Examples
    --------
    >>> weight_total([0.5, 2.0]), weight_total([0.0, 0.0])
    (2.5, 1.0)
    """
    return float(np.sum(sample_weight)) or 1.0


def available_backends() -> list[str]:
    """Names of the backends that can be used in this environment.

    Returns
    -------
    list of str
        Registered backends whose dependencies import, in registry order.
    """
    names = []
    for name in _named_backends:
        try:
            load_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name not in _named_backends:
        valid = ", ".join(repr(n) for n in _named_backends)
        raise ValueError(f"unknown backend {name!r}; valid backends are {valid}")
    return name


def load_backend(name: str) -> ModuleType:
    """Return the backend module registered as ``name``, importing it if needed.

    Raises
    ------
    ValueError
        If ``name`` is not a registered backend.
    ImportError
        If the backend's dependencies are not installed.
    """
    module = _loaded.get(name)
    if module is None:
        module = _loaded[name] = importlib.import_module(_named_backends[_check_name(name)])
    return module


def _default() -> str:
    if _default_name is not None:
        return _default_name
    name = os.environ.get("FASTMLP_BACKEND", "").strip()
    if not name:
        return DEFAULT_BACKEND
    try:
        return _check_name(name)
    except ValueError as exc:
        raise ValueError(f"FASTMLP_BACKEND: {exc}") from None


def get_backend_name() -> str:
    """Name of the backend in effect: ``use_backend``, else ``set_backend``,
    else the ``FASTMLP_BACKEND`` environment variable, else ``'numba'``."""
    return _context_name.get() or _default()


def get_backend() -> ModuleType:
    """The backend module in effect (see ``get_backend_name``)."""
    return load_backend(get_backend_name())


def set_backend(name: str) -> None:
    """Set the process-wide default backend.

    Parameters
    ----------
    name : str
        One of ``available_backends()``.

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid names.
    """
    global _default_name
    load_backend(name)
    _default_name = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[ModuleType]:
    """Use backend ``name`` inside a ``with`` block, in this context only.

    Examples
    --------
    >>> import fastmlp
    >>> with fastmlp.use_backend("einsum"):
    ...     fastmlp.get_backend_name()
    'einsum'
    """
    module = load_backend(name)
    token = _context_name.set(name)
    try:
        yield module
    finally:
        _context_name.reset(token)
