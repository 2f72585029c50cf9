"""A run of training steps: what a backend's ``run_steps`` receives and returns.

A backend plugs into training with one function, ``run_steps(params,
batches, optimizer, learning_rates, timer=NO_TIMER, *, activation="relu",
output="softmax") -> StepsDone`` (see
``fastmlp.backends``). This module holds what that contract names:
:class:`Batches` (the mini-batches of a run, handed over by ``fit``),
:class:`StepsDone` (what the run returns), :class:`Timer` (what it tells about
its time, which ``fastmlp profile`` counts) and :class:`ComposedSteps`, the one
loop over batches in Python, which a backend made of ``forward`` and
``backward`` declares as its ``run_steps``. The trainer (``fastmlp.train``)
and the backends both import it; a backend never imports the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .backends import weight_total
from .family import HITS, LOSSES, ROW_LOSSES

if TYPE_CHECKING:
    from .preprocessing import InputScaler


def training_inputs(x: np.ndarray, dtype) -> np.ndarray:
    """``x`` as a run of steps gathers its batches from: C-contiguous, ``uint8`` if it is,
    else in ``dtype`` (what ``InputScaler.transform`` casts it to first).

    Raw ``uint8`` images stay as they are, and each batch is scaled as it is
    gathered: no scaled float copy of the whole training set (188 MB for
    MNIST in float32).
    """
    return np.ascontiguousarray(x, np.uint8 if x.dtype == np.uint8 else dtype)


class Batches(NamedTuple):
    """The mini-batches of a run of steps: what ``fit`` hands a backend's ``run_steps``.

    Batch ``k`` is rows ``order[k * batch_size:(k + 1) * batch_size]`` of ``x``
    and ``y`` (consecutive rows when ``order`` is None); the network sees its
    inputs as ``scaler.transform(rows, dtype)``, or the rows as they are when
    ``scaler`` is None. ``order`` may pick any rows: a permutation of all of
    them for an epoch, or a part of one. ``sample_weight``, when given, weighs
    each row's loss (picked by ``order`` as ``x`` and ``y`` are): each
    batch's loss is its weighted mean (see ``fastmlp.backends``); None is
    unweighted training. The caller has checked them (``fit`` does, once),
    so a run of steps trusts them: ``y`` holds int64 labels of the network's
    classes (softmax output), or float targets ``(n_samples, n_outputs)`` in
    the network's dtype (any output; see ``fastmlp.family``), ``order``
    indices of rows, ``batch_size >= 1``, ``sample_weight`` finite
    non-negative float64; in ``fit``, ``x`` is :func:`training_inputs`.
    """

    x: np.ndarray                 # (n_samples, n_features)
    y: np.ndarray                 # (n_samples,) int64, or (n_samples, n_outputs) float
    order: np.ndarray | None      # (n_steps_samples,) int64 row indices
    batch_size: int
    scaler: InputScaler | None
    dtype: np.dtype               # what scaler.transform returns
    sample_weight: np.ndarray | None = None  # (n_samples,) float64, or None: unweighted


class StepsDone(NamedTuple):
    """What a run of steps returns.

    Attributes
    ----------
    loss_sum : float
        Sum over batches of the batch's mean loss (the output's loss of
        ``fastmlp.family.LOSSES``) times its size; with
        sample weights, of its weighted mean loss times its total weight
        (``sum_i w[i] loss[i]``).
    correct : int
        Samples whose forward-pass prediction (before the batch's update) was
        right (``fastmlp.family.HITS``: always 0 for the regression outputs
        ``identity`` and ``exp``).
    failed_step : int
        Index of the first batch whose loss was not finite, where training
        stopped before updating; -1 if every loss was finite.
    """

    loss_sum: float
    correct: int
    failed_step: int


class Timer:
    """What a run of steps tells about its time; this one ignores it all.

    The loop of :class:`ComposedSteps` calls ``start()`` as a step begins and
    ``stop(phase)`` as each of its phases ends (``'data'``, ``'forward'``,
    ``'backward'``, ``'update'``); ``fastmlp.profile`` passes a timer that
    counts. A fused run of steps cannot stop between phases: it fills
    ``parts``, when that is a dict, with the seconds of its own parts
    (numba's ``PARTS``).
    """

    parts: dict[str, float] | None = None

    def start(self) -> None:
        """A step begins."""

    def stop(self, phase: str) -> None:
        """``phase`` of the current step ends; the next one begins."""


NO_TIMER = Timer()


class ComposedSteps:
    """The run of steps of a backend made of its ``forward`` and ``backward``: the one loop.

    Per batch: gather its rows and scale them, ``forward`` and the loss,
    ``backward``, ``optimizer.step``. An optimizer whose update needs the
    batch's size (scikit-learn's rules, ``fastmlp.optim.SklearnAdam`` and
    ``SklearnSGD``, divide their L2 term by it) says so with a true
    ``wants_batch_total`` attribute, and its ``step`` is passed
    ``batch_total=``, the batch's row count or, with weights, the sum of its
    weights (:func:`fastmlp.backends.weight_total`). ``loop``, ``einsum`` and ``matmul`` declare
    their ``run_steps`` with it; ``fastmlp profile`` times it with a
    :class:`Timer` that counts, and the numba backend runs it when its fused
    epoch cannot run an optimizer.

    Parameters
    ----------
    forward : callable
        ``forward(params, x) -> (probs, cache)``, as in ``fastmlp.backends``;
        called with ``activation=`` and ``output=`` keywords when the run's
        are not ReLU and softmax (so a forward of two arguments serves the
        default network).
    backward : callable
        ``backward(params, cache, y) -> grads``, and ``backward(params, cache,
        y, sample_weight)`` for batches with weights; with ``activation=``
        when it is not ReLU.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> from fastmlp.backends import matmul
    >>> run_steps = ComposedSteps(matmul.forward, matmul.backward)
    >>> model = fastmlp.MLP((4, 8, 3), seed=0)
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    >>> batches = Batches(x, y, None, 5, model.scaler, model.dtype)
    >>> run_steps(model.params, batches, fastmlp.optim.SGD(0.1), [0.1, 0.1]).failed_step
    -1
    """

    def __init__(self, forward: Callable, backward: Callable):
        self.forward, self.backward = forward, backward

    def __call__(self, params, batches: Batches, optimizer, learning_rates,
                 timer: Timer = NO_TIMER, *, activation: str = "relu",
                 output: str = "softmax") -> StepsDone:
        """Train ``params`` in place on ``batches``; ``learning_rates[k]`` is step ``k``'s rate.

        ``activation`` follows every hidden layer and ``output`` the last
        (``fastmlp.family``), trained with the output's loss.
        """
        forward, backward = self.forward, self.backward
        forward_family = {} if (activation, output) == ("relu", "softmax") else {
            "activation": activation, "output": output}
        backward_family = {} if activation == "relu" else {"activation": activation}
        losses, row_losses, hits = LOSSES[output], ROW_LOSSES[output], HITS[output]
        x, y, order, batch_size, scaler, dtype, weights = batches
        loss_sum = 0.0
        correct = 0
        n = x.shape[0] if order is None else len(order)
        for step, begin in enumerate(range(0, n, batch_size)):
            timer.start()
            rows = slice(begin, begin + batch_size)
            if order is not None:
                rows = order[rows]
            xb, yb = x[rows], y[rows]
            wb = None if weights is None else weights[rows]
            if scaler is not None:
                xb = scaler.transform(xb, dtype)
            timer.stop("data")
            probs, cache = forward(params, xb, **forward_family)
            if wb is None:
                loss = losses(probs, yb)
                batch_loss = loss * len(yb)
            else:  # sum_i w_i loss_i: the weighted mean times the batch's total weight
                batch_loss = loss = float(np.dot(wb, row_losses(probs, yb)))
            timer.stop("forward")
            if not np.isfinite(loss):
                return StepsDone(loss_sum, correct, step)
            grads = (backward(params, cache, yb, **backward_family) if wb is None
                     else backward(params, cache, yb, wb, **backward_family))
            timer.stop("backward")
            if getattr(optimizer, "wants_batch_total", False):
                # scikit-learn's rules divide their L2 term by the batch's size or weight
                total = len(yb) if wb is None else weight_total(wb)
                optimizer.step(params, grads, learning_rates[step], batch_total=total)
            else:
                optimizer.step(params, grads, learning_rates[step])
            timer.stop("update")
            loss_sum += batch_loss
            correct += hits(probs, yb)
        return StepsDone(loss_sum, correct, -1)
