"""Optimizers and learning-rate schedules.

An optimizer updates parameters in place from their gradients::

    optimizer.step(params, grads, learning_rate)

where ``params`` and ``grads`` are lists of ``(W, b)`` pairs. Its state
(momentum buffers, moment estimates) is created on the first step, shaped like
the parameters. The formulas follow ``torch.optim`` so results are comparable.

A backend that runs a whole epoch in compiled code cannot call ``step``; it
asks the optimizer to describe its update instead::

    update = optimizer.fused_update(params)   # a FusedUpdate, or None
    ...                                       # the backend runs the epoch
    optimizer.advance(steps)                  # step counters move on

A schedule maps training progress to a factor of the base learning rate::

    learning_rate = base_learning_rate * SCHEDULES[name](step, total_steps)

and ``annealed(schedule, start_step, anneal_steps)`` is one that anneals from
``start_step`` on, as early stopping has it once the run has stalled.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ._flat import flat_copy, flat_zeros_like


def _flat(pairs):
    return [array for pair in pairs for array in pair]


# The update rules a compiled epoch applies, each with the hyper-parameters its
# formula reads: attributes of the optimizer by these names, in this order (the
# order of the numba kernel's slots). A new hyper-parameter is one name here and
# the formula in two places: the optimizer's ``step`` and the kernel's update
# (``fastmlp/backends/numba/_kernels.py``: ``_sgd_update``, ``_adam_update``,
# ``_sklearn_sgd_update``, ``_sklearn_adam_update``).
FUSED_RULES = {
    "sgd": ("momentum", "nesterov", "weight_decay"),
    "adam": ("beta1", "beta2", "eps", "weight_decay", "decoupled_weight_decay"),
    # scikit-learn's rules (SklearnSGD, SklearnAdam): alpha's L2 term is divided by each
    # batch's size or weight sum, which the kernel passes the update with the weights
    "sklearn_sgd": ("momentum", "nesterov", "alpha"),
    "sklearn_adam": ("beta1", "beta2", "eps", "alpha"),
}


def _fused_hyper(optimizer, rule: str) -> dict[str, float]:
    return {name: getattr(optimizer, name) for name in FUSED_RULES[rule]}


def _state_dict(optimizer, rule: str, steps: int, arrays: dict) -> dict:
    """What ``state_dict`` returns: the class, hyper-parameters, steps and copied state."""
    return {
        "class": type(optimizer).__name__,
        "hyper": {"learning_rate": optimizer.learning_rate, **_fused_hyper(optimizer, rule)},
        "steps": steps,
        "arrays": {name: None if state is None else [a.copy() for a in state]
                   for name, state in arrays.items()},
    }


def _loaded_arrays(optimizer, state: dict, names: tuple[str, ...], params) -> list:
    """The state arrays of ``state`` (a ``state_dict``), checked against ``params``, flat."""
    if state.get("class") != type(optimizer).__name__:
        raise ValueError(
            f"the state is of a {state.get('class')}, not of this {type(optimizer).__name__}"
        )
    shapes = [(a.shape, a.dtype) for a in _flat(params)]
    loaded = []
    for name in names:
        arrays = state["arrays"].get(name)
        if arrays is not None:
            if [(a.shape, a.dtype) for a in arrays] != shapes:
                raise ValueError(f"the state's {name} does not match the parameters' "
                                 "shapes and dtype")
            arrays = flat_copy(arrays)
        loaded.append(arrays)
    return loaded


class FusedUpdate(NamedTuple):
    """An optimizer's update, described for a backend that applies it in compiled code.

    Attributes
    ----------
    rule : str
        The update formula: ``'sgd'`` (``SGD``'s) or ``'adam'`` (``Adam``'s).
    hyper : dict of str to float
        Every hyper-parameter of the formula except the learning rate, by the
        name of the optimizer's own attribute. A backend that meets a name it
        does not implement must not run the update.
    state : tuple of lists of ndarray
        The state arrays the update reads and writes, one list per kind
        (``SGD``: the velocities, if any; ``Adam``: ``m`` and ``v``), each in
        the flat order of the parameters. The backend writes them back.
    t : int
        Steps taken so far (Adam's bias correction counts from it).
    """

    rule: str
    hyper: dict[str, float]
    state: tuple[list[np.ndarray], ...]
    t: int


def _overrides_step(optimizer, base) -> bool:
    # A subclass with its own step() but the inherited fused_update() would be
    # described by a formula it no longer follows.
    cls = type(optimizer)
    return cls.step is not base.step and cls.fused_update is base.fused_update


class SGD:
    """Stochastic gradient descent with optional momentum and weight decay.

    Parameters
    ----------
    learning_rate : float
        Base step size.
    momentum : float
        Momentum factor ``mu``; 0 disables the velocity buffer.
    nesterov : bool
        Use Nesterov momentum (requires ``momentum > 0``).
    weight_decay : float
        L2 penalty added to the gradient: ``g + weight_decay * p``.

    Notes
    -----
    Per parameter ``p`` with gradient ``g``, as in ``torch.optim.SGD``::

        g = g + weight_decay * p
        v = mu * v + g
        g = g + mu * v   if nesterov else   v
        p = p - lr * g

    with ``v`` flushed to 0 where it falls below the smallest normal float
    (see ``inplace_flush_subnormal``).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        _check_hyper(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum requires momentum > 0")
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity = None

    def init_state(self, params) -> None:
        """Create the velocity buffers (one per parameter array, flat order) if needed."""
        if self.momentum and self.velocity is None:
            self.velocity = flat_zeros_like(_flat(params))

    def step(self, params, grads, learning_rate=None):
        """Update ``params`` in place from ``grads``; allocates nothing after the first step."""
        lr = self.learning_rate if learning_rate is None else learning_rate
        self.init_state(params)
        params, grads = _flat(params), _flat(grads)
        scratch = _scratch(self, params, 2)
        mu = self.momentum
        for i, (p, g, (s, spare)) in enumerate(zip(params, grads, scratch)):
            step_size = lr
            if self.weight_decay:
                np.multiply(p, self.weight_decay, out=s)
                s += g
                g = s
            if mu:
                v = self.velocity[i]
                v *= mu
                v += g
                inplace_flush_subnormal(v, spare)  # s may hold g
                if self.nesterov:  # p -= lr * g + lr * mu * v
                    np.multiply(g, lr, out=s)
                    p -= s
                    g, step_size = v, lr * mu
                else:
                    g = v
            np.multiply(g, step_size, out=s)
            p -= s

    def fused_update(self, params) -> FusedUpdate | None:
        """Describe the update for a compiled epoch (creating the state), or None.

        None when a subclass overrides ``step`` without describing its own update.
        """
        if _overrides_step(self, SGD):
            return None
        self.init_state(params)
        return FusedUpdate("sgd", _fused_hyper(self, "sgd"),
                           (self.velocity,) if self.momentum else (), 0)

    def advance(self, steps: int) -> None:
        """Record ``steps`` updates made by a compiled epoch (SGD counts none)."""

    def state_dict(self) -> dict:
        """The optimizer's class, hyper-parameters and state (copies), as ``torch.optim`` has it.

        ``{'class', 'hyper', 'steps', 'arrays': {'velocity': list or None}}``;
        ``load_state_dict`` puts it back, so a resumed run continues bit for bit.
        """
        return _state_dict(self, "sgd", 0, {"velocity": self.velocity})

    def load_state_dict(self, state: dict, params) -> None:
        """Take the state of ``state_dict`` (copied) for ``params``; hyper-parameters stay.

        Raises
        ------
        ValueError
            If the state is of another class or does not fit ``params``.
        """
        (self.velocity,) = _loaded_arrays(self, state, ("velocity",), params)


class Adam:
    """Adam, or AdamW with ``decoupled_weight_decay=True``.

    Parameters
    ----------
    learning_rate : float
        Base step size.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates.
    eps : float
        Added to the denominator for stability.
    weight_decay : float
        Adam: L2 penalty added to the gradient. AdamW: parameters shrink by
        ``lr * weight_decay`` each step, separately from the gradient step.
    decoupled_weight_decay : bool
        True gives AdamW (Loshchilov & Hutter).

    Notes
    -----
    The formulas of ``torch.optim.Adam`` and ``AdamW``, with ``m`` and ``v``
    flushed to 0 where they fall below the smallest normal float (see
    ``inplace_flush_subnormal``).
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False):
        _check_hyper(learning_rate=learning_rate, weight_decay=weight_decay, eps=eps)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self.t = 0
        self.m = self.v = None

    def init_state(self, params) -> None:
        """Create the moment buffers (one per parameter array, flat order) if needed."""
        if self.m is None:
            self.m = flat_zeros_like(_flat(params))
            self.v = flat_zeros_like(_flat(params))

    def step(self, params, grads, learning_rate=None):
        """Update ``params`` in place from ``grads``."""
        lr = self.learning_rate if learning_rate is None else learning_rate
        self.init_state(params)
        params, grads = _flat(params), _flat(grads)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1 - integer_power(b1, self.t))
        bias2 = math.sqrt(1 - integer_power(b2, self.t))
        scratch = _scratch(self, params, 2)
        for p, g, m, v, (s, t) in zip(params, grads, self.m, self.v, scratch):
            if self.weight_decay:
                if self.decoupled_weight_decay:
                    p *= 1 - lr * self.weight_decay
                else:
                    np.multiply(p, self.weight_decay, out=t)
                    t += g
                    g = t
            m *= b1
            np.multiply(g, 1 - b1, out=s)
            m += s
            inplace_flush_subnormal(m, s)
            v *= b2
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            inplace_flush_subnormal(v, s)
            # p -= lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections folded in
            np.sqrt(v, out=s)
            s *= 1 / bias2
            s += self.eps
            np.divide(m, s, out=s)
            s *= step_size
            p -= s

    def fused_update(self, params) -> FusedUpdate | None:
        """Describe the update for a compiled epoch (creating the state), or None.

        None when a subclass overrides ``step`` without describing its own update.
        """
        if _overrides_step(self, Adam):
            return None
        self.init_state(params)
        return FusedUpdate("adam", _fused_hyper(self, "adam"), (self.m, self.v), self.t)

    def advance(self, steps: int) -> None:
        """Record ``steps`` updates made by a compiled epoch: the bias correction moves on."""
        self.t += steps

    def state_dict(self) -> dict:
        """The optimizer's class, hyper-parameters and state (copies), as ``torch.optim`` has it.

        ``{'class', 'hyper', 'steps': t, 'arrays': {'m': list or None, 'v': ...}}``;
        ``load_state_dict`` puts it back, so a resumed run continues bit for bit.
        """
        return _state_dict(self, "adam", self.t, {"m": self.m, "v": self.v})

    def load_state_dict(self, state: dict, params) -> None:
        """Take the state of ``state_dict`` (copied) for ``params``; hyper-parameters stay.

        Raises
        ------
        ValueError
            If the state is of another class or does not fit ``params``.
        """
        self.m, self.v = _loaded_arrays(self, state, ("m", "v"), params)
        self.t = int(state["steps"])


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as in ``torch.optim.AdamW``)."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(learning_rate, beta1, beta2, eps, weight_decay,
                         decoupled_weight_decay=True)


class SklearnSGD:
    """scikit-learn's ``SGDOptimizer``: momentum or Nesterov momentum as it writes them, with
    its L2 term and its learning-rate schedules.

    What ``fastmlp.sklearn``'s ``solver='sgd'`` trains with, and an optimizer
    like the others for ``fastmlp.fit``, whose steps (``fastmlp.steps``) pass
    each batch's size.

    Parameters
    ----------
    learning_rate : float
        scikit-learn's ``learning_rate_init``: the rate until a schedule changes it.
    momentum : float
        ``mu`` in [0, 1].
    nesterov : bool
        scikit-learn's ``nesterovs_momentum``.
    alpha : float
        scikit-learn's L2 penalty ``alpha / 2 * sum(W**2)`` per batch, divided
        by the batch's size (or the sum of its sample weights); biases are not
        penalised.
    schedule : {'constant', 'invscaling', 'adaptive'}
        scikit-learn's ``learning_rate``: see :meth:`iteration_ends` and
        :meth:`trigger_stopping`.
    power_t : float
        The exponent of ``'invscaling'``.

    Attributes
    ----------
    learning_rate : float
        The current rate, which the schedule changes between epochs.
    velocity : list of ndarray or None
        One per parameter array, flat order, made on the first step.
    penalty_sum : float
        ``sum over steps of alpha / 2 * sum(W**2)``, each with the weights
        before the step: the L2 part of the loss, which the caller resets.

    Notes
    -----
    Per weight matrix ``W`` with the batch's mean gradient ``g`` (the mean
    over the batch's ``n`` samples, or weighted), and per bias without the
    L2 term, as in scikit-learn's ``_backprop`` and ``_get_updates``::

        g = g + alpha * W / n
        v = mu * v - lr * g
        W = W + (mu * v - lr * g   if nesterov else   v)

    ``v`` is flushed to 0 where it falls below the smallest normal float
    (see :func:`inplace_flush_subnormal`), which no sum of normal numbers
    notices.
    """

    wants_batch_total = True

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=True, alpha=0.0,
                 schedule="constant", power_t=0.5):
        _check_hyper(learning_rate=learning_rate, momentum=momentum, alpha=alpha,
                     power_t=power_t)
        if schedule not in ("constant", "invscaling", "adaptive"):
            raise ValueError(f"unknown schedule {schedule!r}; choose from 'constant', "
                             "'invscaling', 'adaptive'")
        self.learning_rate_init = learning_rate
        self.learning_rate = float(learning_rate)
        self.momentum = momentum
        self.nesterov = nesterov
        self.alpha = alpha
        self.schedule = schedule
        self.power_t = power_t
        self.velocity = None
        self.penalty_sum = 0.0

    def step(self, params, grads, learning_rate=None, batch_total=1.0):
        """Update ``params`` in place from the mean gradients ``grads`` of a batch.

        ``batch_total`` is the batch's size, or the sum of its sample weights:
        what scikit-learn divides the L2 term by.
        """
        lr = self.learning_rate if learning_rate is None else learning_rate
        if self.velocity is None:
            self.velocity = flat_zeros_like(_flat(params))
        self.penalty_sum += _l2_penalty(params, self.alpha)
        flat, flat_grads = _flat(params), _flat(grads)
        scratch = _scratch(self, flat, 2)
        mu = self.momentum
        for i, (p, g, v, (s, spare)) in enumerate(zip(flat, flat_grads, self.velocity, scratch)):
            g = _with_l2(p, g, self.alpha, batch_total, i, spare)
            np.multiply(g, lr, out=s)        # lr * g
            v *= mu
            v -= s                           # v = mu v - lr g
            inplace_flush_subnormal(v, spare)
            if self.nesterov:
                np.multiply(v, mu, out=spare)
                spare -= s
                p += spare
            else:
                p += v

    def iteration_ends(self, time_step: int) -> None:
        """An epoch ended after ``time_step`` samples in all: ``'invscaling'`` sets
        ``learning_rate = learning_rate_init / (time_step + 1) ** power_t``."""
        if self.schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, message: str, verbose) -> bool:
        """Whether training stops now that it has stalled (``message`` says how).

        ``'adaptive'`` divides the learning rate by 5 and goes on, until the
        rate is at most 1e-6; the other schedules stop. ``verbose`` prints
        what happens, in scikit-learn's words.
        """
        if self.schedule != "adaptive":
            if verbose:
                print(message + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(message + f" Setting learning rate to {self.learning_rate:f}")
        return False

    def fused_update(self, params) -> FusedUpdate | None:
        """Describe the update for a compiled epoch (creating the state), or None.

        None when a subclass overrides ``step`` without describing its own
        update. The compiled epoch adds the step's L2 penalty to
        ``penalty_sum``, as ``step`` does.
        """
        if _overrides_step(self, SklearnSGD):
            return None
        if self.velocity is None:
            self.velocity = flat_zeros_like(_flat(params))
        return FusedUpdate("sklearn_sgd", _fused_hyper(self, "sklearn_sgd"), (self.velocity,),
                           0)

    def advance(self, steps: int) -> None:
        """Nothing to record (the schedule moves per epoch, in :meth:`iteration_ends`)."""


class SklearnAdam:
    """scikit-learn's ``AdamOptimizer``, with its L2 term: the update of its ``solver='adam'``.

    Parameters
    ----------
    learning_rate : float
        scikit-learn's ``learning_rate_init``.
    beta1, beta2 : float
        scikit-learn's ``beta_1``, ``beta_2``, in [0, 1).
    eps : float
        scikit-learn's ``epsilon``.
    alpha : float
        The L2 penalty, as in :class:`SklearnSGD`.

    Attributes
    ----------
    t : int
        Steps taken.
    m, v : list of ndarray or None
        The moment estimates, one per parameter array, flat order.
    penalty_sum : float
        As in :class:`SklearnSGD`.

    Notes
    -----
    Per weight matrix ``W`` (biases without the L2 term), as scikit-learn's
    ``AdamOptimizer._get_updates``: ``epsilon`` is added to ``sqrt(v)``, and
    the bias corrections fold into the step size, unlike ``torch.optim.Adam``
    (:class:`Adam`), which adds ``eps`` to ``sqrt(v / (1 - beta2**t))``::

        g = g + alpha * W / n
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        W = W - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)

    ``m`` and ``v`` are flushed to 0 below the smallest normal float, as in
    :class:`Adam`.
    """

    wants_batch_total = True

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, alpha=0.0):
        _check_hyper(learning_rate=learning_rate, eps=eps, alpha=alpha)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.learning_rate_init = self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.alpha = alpha
        self.t = 0
        self.m = self.v = None
        self.penalty_sum = 0.0

    def step(self, params, grads, learning_rate=None, batch_total=1.0):
        """Update ``params`` in place from the mean gradients ``grads`` of a batch of
        ``batch_total`` samples (or total sample weight)."""
        lr = self.learning_rate if learning_rate is None else learning_rate
        if self.m is None:
            self.m = flat_zeros_like(_flat(params))
            self.v = flat_zeros_like(_flat(params))
        self.penalty_sum += _l2_penalty(params, self.alpha)
        flat, flat_grads = _flat(params), _flat(grads)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = (lr * math.sqrt(1 - integer_power(b2, self.t))
                     / (1 - integer_power(b1, self.t)))
        scratch = _scratch(self, flat, 2)
        for i, (p, g, m, v, (s, spare)) in enumerate(zip(flat, flat_grads, self.m, self.v,
                                                           scratch)):
            g = _with_l2(p, g, self.alpha, batch_total, i, spare)
            m *= b1
            np.multiply(g, 1 - b1, out=s)
            m += s
            v *= b2
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            inplace_flush_subnormal(m, s)
            inplace_flush_subnormal(v, s)
            np.sqrt(v, out=s)
            s += self.eps
            np.multiply(m, -step_size, out=spare)
            spare /= s
            p += spare

    def iteration_ends(self, time_step: int) -> None:
        """Nothing: scikit-learn's Adam keeps its learning rate."""

    def trigger_stopping(self, message: str, verbose) -> bool:
        """True: training stops once it stalls (``verbose`` prints ``message``)."""
        if verbose:
            print(message + " Stopping.")
        return True

    def fused_update(self, params) -> FusedUpdate | None:
        """Describe the update for a compiled epoch (creating the state), or None.

        None when a subclass overrides ``step`` without describing its own
        update. The compiled epoch adds the steps' L2 penalty to
        ``penalty_sum``, as ``step`` does.
        """
        if _overrides_step(self, SklearnAdam):
            return None
        if self.m is None:
            self.m = flat_zeros_like(_flat(params))
            self.v = flat_zeros_like(_flat(params))
        return FusedUpdate("sklearn_adam", _fused_hyper(self, "sklearn_adam"), (self.m, self.v),
                           self.t)

    def advance(self, steps: int) -> None:
        """Record ``steps`` updates made by a compiled epoch: the bias correction moves on."""
        self.t += steps


def _l2_penalty(params, alpha) -> float:
    """``alpha / 2 * sum(W**2)`` over the weight matrices (not the biases)."""
    if not alpha:
        return 0.0
    return 0.5 * alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W, _ in params)


def _with_l2(p, g, alpha, batch_total, i, out):
    """``g + alpha * p / batch_total`` for a weight matrix (even ``i`` in the flat
    order), into ``out``; ``g`` itself for a bias or without ``alpha``."""
    if not alpha or i % 2:
        return g
    np.multiply(p, alpha / batch_total, out=out)
    out += g
    return out


def inplace_flush_subnormal(a, scratch):
    """Set the values of ``a`` below the smallest normal float (in magnitude) to zero.

    The optimizers do this to their momentum and moment buffers after each
    update: a buffer whose gradient stays 0 (a pixel that is nearly always
    blank) decays geometrically into the subnormal range, where every
    arithmetic operation on it takes a slow microcode path (AdamW's update
    ran 3x slower after two MNIST epochs). NaN and the sign of zero are kept.
    ``scratch`` is a work array like ``a``.
    """
    np.abs(a, out=scratch)
    np.greater_equal(scratch, np.finfo(a.dtype).tiny, out=scratch)
    a *= scratch


def _scratch(optimizer, params, count):
    """``count`` work arrays per parameter, kept on the optimizer so steps do not allocate."""
    scratch = getattr(optimizer, "_scratch_arrays", None)
    if scratch is None or len(scratch) != len(params) or any(
            s[0].shape != p.shape or s[0].dtype != p.dtype for s, p in zip(scratch, params)):
        scratch = [tuple(np.empty_like(p) for _ in range(count)) for p in params]
        optimizer._scratch_arrays = scratch
    return scratch


def integer_power(base: float, n: int) -> float:
    """``base ** n`` for an integer ``n >= 0`` by repeated squaring, in float64.

    Only IEEE multiplications, so the same bits everywhere (``**`` calls the C
    library's ``pow``, whose last bit depends on its version); the numba
    backend's fused Adam computes its bias corrections with the same steps.

    >>> integer_power(0.5, 10) == 2.0 ** -10, integer_power(0.999, 0)
    (True, 1.0)
    """
    result, square = 1.0, float(base)
    while n > 0:
        if n & 1:
            result *= square
        square *= square
        n >>= 1
    return result


def _check_hyper(**values):
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def constant(step: int, total_steps: int) -> float:
    """Factor 1 throughout."""
    return 1.0


def cosine(step: int, total_steps: int) -> float:
    """Cosine decay from 1 to 0 over training (Loshchilov & Hutter, without restarts)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))


def onecycle(step: int, total_steps: int, pct_start=0.3, div_factor=25.0,
             final_div_factor=1e4) -> float:
    """One-cycle policy (Smith & Topin), as ``torch.optim.lr_scheduler.OneCycleLR``.

    Cosine warm-up from ``1 / div_factor`` to 1 over the first ``pct_start`` of
    training, then cosine annealing to ``1 / (div_factor * final_div_factor)``.
    """
    initial = 1.0 / div_factor
    final = initial / final_div_factor
    warm = max(pct_start * total_steps, 1.0)
    if step < warm:
        start, end, t = initial, 1.0, step / warm
    else:
        start, end, t = 1.0, final, min((step - warm) / max(total_steps - warm, 1.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def annealed(schedule, start_step: int, anneal_steps: int):
    """``schedule`` until ``start_step``, then annealed to its final value over ``anneal_steps``.

    What early stopping runs once the validation metric has stalled: the
    factor follows ``schedule`` (a function of ``(step, total_steps)``, as
    in :data:`SCHEDULES`) up to step ``start_step``; from there it falls
    along a half cosine from ``schedule(start_step, total_steps)`` to the
    schedule's final value, ``schedule(total_steps, total_steps)``, which
    it reaches after ``anneal_steps`` steps, or at ``total_steps`` if that
    comes first, and keeps. One-cycle's annealing phase, started where the
    run stalled instead of where it was planned.

    Parameters
    ----------
    schedule : callable
        ``schedule(step, total_steps) -> float``, the factor of the base rate.
    start_step : int
        The first step of the anneal (>= 0).
    anneal_steps : int
        Its length in steps (>= 1).

    Returns
    -------
    callable
        ``factor(step, total_steps) -> float``, a schedule like ``schedule``.

    Examples
    --------
    A cosine decay over 100 steps, annealed from step 50 (where it is at
    0.5) to its final 0 over 10 steps:

    >>> factor = annealed(cosine, 50, 10)
    >>> [round(factor(step, 100), 3) for step in (0, 49, 50, 55, 59, 60, 99)]
    [1.0, 0.516, 0.5, 0.25, 0.012, 0.0, 0.0]
    """

    def factor(step: int, total_steps: int) -> float:
        if step < start_step:
            return schedule(step, total_steps)
        start, end = schedule(start_step, total_steps), schedule(total_steps, total_steps)
        length = max(min(anneal_steps, total_steps - start_step), 1)
        t = min((step - start_step) / length, 1.0)
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def anneals(schedule) -> bool:
    """Whether ``schedule`` ends below where it starts: what :func:`annealed` can bring down.

    >>> anneals(onecycle), anneals(cosine), anneals(constant)
    (True, True, False)
    """
    return schedule(100, 100) < schedule(0, 100)


SCHEDULES = {"constant": constant, "cosine": cosine, "onecycle": onecycle}

OPTIMIZERS = {
    "sgd": (SGD, dict(learning_rate=0.1)),
    "momentum": (functools.partial(SGD, momentum=0.9), dict(learning_rate=0.05)),
    "nesterov": (functools.partial(SGD, momentum=0.9, nesterov=True), dict(learning_rate=0.1)),
    "adam": (Adam, dict(learning_rate=1e-3)),
    "adamw": (AdamW, dict(learning_rate=3e-3, weight_decay=0.05)),
}
"""Optimizers by name (CLI ``--optimizer``): the class and the defaults that train this
network well with a one-cycle schedule at batch 128."""


def get_schedule(name: str):
    """The schedule function registered as ``name``; ``ValueError`` names the choices."""
    try:
        return SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}") from None


def make_optimizer(name: str, learning_rate: float | None = None,
                   weight_decay: float | None = None):
    """The optimizer registered as ``name``, with its defaults where an argument is None.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the choices) or a bad value.
    """
    try:
        factory, defaults = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}"
        ) from None
    kwargs = dict(defaults)
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    return factory(**kwargs)
