"""The training loop: shuffled mini-batches, an optimizer, a schedule, a history.

The loop over epochs is :func:`fit`'s; the loop over the batches of an epoch is
``fastmlp.steps.ComposedSteps``, and there is no other in Python. A backend
plugs in with one function, its ``run_steps`` (see ``fastmlp.backends``), which
runs a run of steps, a ``fastmlp.steps.Batches``, and returns a
``StepsDone``: ``loop``, ``einsum`` and ``matmul`` run that loop over their
``forward`` and ``backward``; ``numba`` runs its fused epoch. The types of
that contract live in ``fastmlp.steps``, which the backends import; they are
also importable from here, where they were first defined.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from tqdm import tqdm

from . import backends
from . import checkpoint as _checkpoint
from ._atomic import unwritable
from ._flat import base_vector, flat_params
from ._validation import (
    check_features,
    check_non_negative_int,
    check_positive_int,
    check_sample_weight,
    check_targets,
)
from ._words import count as _count
from .exceptions import StopTraining, TrainingDivergedError
from .family import HITS, LOSSES
from .optim import annealed, anneals, get_schedule, make_optimizer
from .steps import (  # noqa: F401 - re-exported: fastmlp.train.Batches etc. keep working
    NO_TIMER,
    Batches,
    ComposedSteps,
    StepsDone,
    Timer,
    training_inputs,
)

if TYPE_CHECKING:
    from .model import MLP
    from .preprocessing import InputScaler

logger = logging.getLogger(__name__)


@dataclass
class History:
    """Per-epoch training record; every list has one entry per epoch.

    ``loss`` and ``val_loss`` are the model's output's loss (cross-entropy
    for softmax; see ``fastmlp.family.LOSSES``). ``val_loss`` and
    ``val_accuracy`` hold ``None`` where there was no validation data;
    ``train_accuracy`` and ``val_accuracy`` hold ``None`` for a regression
    (identity or exp output), which has no accuracy. ``samples_per_second``
    and ``seconds`` time the training pass alone, not the evaluation of the
    validation data. ``best_epoch`` (1-based) is early stopping's best
    epoch, None without early stopping;
    ``annealed_from`` the first epoch (1-based) of the anneal of the learning
    rate that early stopping began when the run stalled, None if it did not
    (see ``fit``'s ``anneal_epochs``); ``stop_reason`` says why training
    ended: ``'ran all 15 epochs'``, ``'early stopping: ...'`` or ``'callback
    stopped training after epoch ...'`` (see ``fit``'s ``callback``).
    ``resumed_after`` is the epochs the run had done when this ``fit``
    resumed it from a checkpoint (0 when it did not): the lists hold every
    epoch of the run.
    """

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    samples_per_second: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    best_epoch: int | None = None
    annealed_from: int | None = None
    stop_reason: str = ""
    resumed_after: int = 0

    def __len__(self) -> int:
        return len(self.loss)


MONITORS = {"val_loss": "validation loss", "val_accuracy": "validation accuracy"}
"""What early stopping can watch: validation loss (lower is better) or accuracy (higher)."""


class EarlyStopping:
    """Stop training when a validation quantity stops improving, as Keras's ``EarlyStopping``.

    An epoch improves on the best so far when its ``monitor`` value is lower
    than the best by more than ``min_delta`` (``'val_accuracy'``: higher).
    After ``patience`` epochs in a row without an improvement the run has
    stalled: with ``anneal_epochs`` 0 training stops there (Keras's rule);
    otherwise the learning rate anneals from the next epoch on, over
    ``anneal_epochs`` epochs, and training stops when they are done, whatever
    the monitor does meanwhile (``fit`` brings the schedule down: see
    :func:`fastmlp.optim.annealed`). With ``restore_best``, ``fit`` ends with
    the parameters of the best epoch of the whole run, whether training
    stopped early or ran every epoch.

    Parameters
    ----------
    monitor : {'val_loss', 'val_accuracy'}
    patience : int
        Epochs without improvement before training stops, >= 1.
    min_delta : float
        The smallest change that counts as an improvement, >= 0.
    restore_best : bool
        Keep a copy of the best epoch's parameters, to end with them.
    anneal_epochs : int
        Epochs of annealing between the stall and the stop, >= 0; 0 stops at
        the stall.

    Attributes
    ----------
    annealed_from : int or None
        The first epoch (1-based) of the anneal, once the run has stalled.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True, anneal_epochs: int = 0):
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(map(repr, MONITORS))}, "
                             f"got {monitor!r}")
        check_positive_int(patience, "patience")
        if not (isinstance(min_delta, (int, float, np.floating)) and np.isfinite(min_delta)
                and min_delta >= 0):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor, self.patience = monitor, patience
        self.min_delta, self.restore_best = float(min_delta), restore_best
        self.anneal_epochs = check_non_negative_int(anneal_epochs, "anneal_epochs")
        self.annealed_from: int | None = None
        self.sign = 1.0 if monitor == "val_loss" else -1.0  # lower is better after the sign
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_params: np.ndarray | None = None

    def update(self, epoch: int, history: History, params: np.ndarray) -> bool:
        """Take epoch ``epoch``'s value from ``history``; True if training should stop.

        ``params`` is the flat parameter vector, copied when the epoch is the best.
        When the run stalls and ``anneal_epochs`` is not 0, ``annealed_from``
        is set to the next epoch, and training stops after the anneal's last.
        """
        value = (history.val_loss if self.monitor == "val_loss" else history.val_accuracy)[-1]
        if self.best is None or self.sign * value < self.sign * self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best:
                self.best_params = params.copy()
        else:
            self.wait += 1
        if self.annealed_from is not None:
            return epoch >= self.annealed_from + self.anneal_epochs - 1
        if self.wait < self.patience:
            return False
        if self.anneal_epochs:
            self.annealed_from = epoch + 1
            return False
        return True

    @property
    def anneal(self) -> tuple[int, int] | None:
        """``(first epoch, epochs)`` of the anneal once the run has stalled, else None."""
        return None if self.annealed_from is None else (self.annealed_from, self.anneal_epochs)

    def reason(self) -> str:
        """Why training stopped, in words."""
        by = f"by more than {self.min_delta:g} " if self.min_delta else ""
        return f"{MONITORS[self.monitor]} did not improve {by}for {_count(self.patience, 'epoch')}"

    def state(self) -> dict:
        """What a checkpoint keeps of it: ``best``, ``best_epoch``, ``wait``, ``best_params``,
        ``annealed_from``."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_params": self.best_params, "annealed_from": self.annealed_from}

    def load(self, state: dict) -> None:
        """Continue from ``state()`` of a checkpoint."""
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_params = state["best_params"]
        # absent from the checkpoints of fastmlp before the anneal, which had none
        self.annealed_from = state.get("annealed_from")

    def describe(self, validation: str) -> str:
        """The settings, as a checkpoint's configuration records them."""
        # without an anneal, as fastmlp described its runs before it had one, so that
        # their checkpoints still resume
        anneal = f", anneal_epochs {self.anneal_epochs}" if self.anneal_epochs else ""
        return (f"{self.monitor} of {validation}, patience {self.patience}, min_delta "
                f"{self.min_delta!r}, restore_best {self.restore_best}{anneal}")


def validation_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The rows to hold out for validation: ``fraction`` of each class, drawn by ``rng``.

    Stratified: each class gives ``round(fraction * its count)`` rows, so the
    held-out classes keep the training data's proportions. Targets of a
    matrix ``(n_samples, n_outputs)`` are one group. Returned sorted.

    >>> y = np.repeat([0, 1], [80, 20])
    >>> np.bincount(y[validation_split(y, 0.1, np.random.default_rng(0))])
    array([8, 2])
    """
    if not (isinstance(fraction, (float, int, np.floating)) and 0 < fraction < 1):
        raise ValueError(f"validation_fraction must be between 0 and 1, got {fraction!r}")
    groups = ([np.arange(len(y))] if y.ndim > 1
              else (np.flatnonzero(y == label) for label in np.unique(y)))
    rows = [rng.permutation(members)[:int(np.floor(fraction * len(members) + 0.5))]
            for members in groups]
    rows = np.sort(np.concatenate(rows))
    if not 0 < len(rows) < len(y):
        raise ValueError(
            f"validation_fraction={fraction} of {len(y):,} samples holds out {len(rows):,} of "
            "them; early stopping needs some to validate on and some to train on"
        )
    return rows


def fit(model, x, y, *, epochs: int = 15, batch_size: int = 128, optimizer="adamw",
        learning_rate: float | None = None, weight_decay: float | None = None,
        schedule: str = "onecycle",
        validation_data=None, seed: int | None = 0,
        early_stopping: bool = False, validation_fraction: float = 0.1,
        monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
        restore_best: bool = True, anneal_epochs: int = 5,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        log_csv: str | os.PathLike | None = None,
        callback: Callable[[int, History], None] | None = None,
        verbose: int | str = 0, validation_name: str = "val",
        sample_weight=None, class_weight=None, check_finite: bool = True) -> History:
    """Train ``model`` in place with mini-batch gradient descent.

    Parameters
    ----------
    model : MLP
    x : array_like, shape (n_samples, n_features)
        Raw training inputs; ``model.scaler`` is fitted on them the first time
        the model is trained and applied to every batch.
    y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        Class indices for a softmax output (or a matrix of one-hot or
        probability rows); for the other outputs a float target matrix, or
        1-D targets for one output: 0/1 labels for logistic, values for
        identity, counts or rates ``>= 0`` for exp. The model is trained with
        its output's loss (``fastmlp.family.LOSSES``).
    epochs : int
        Passes over the training data (with early stopping, at most).
    batch_size : int
        Samples per gradient step; the last batch of an epoch may be smaller.
    optimizer : str or optimizer object
        A name from ``fastmlp.optim.OPTIMIZERS`` or an object with
        ``step(params, grads, learning_rate)``.
    learning_rate : float, optional
        Base (peak) learning rate; defaults to the named optimizer's default
        (``fastmlp.optim.OPTIMIZERS``) or the optimizer object's own.
    weight_decay : float, optional
        Weight decay of a named optimizer (for an object, set it on the object).
    schedule : str
        ``'constant'``, ``'cosine'`` or ``'onecycle'``, planned over all
        steps of ``epochs`` epochs; with early stopping, followed until the
        run stalls, and then annealed (see ``anneal_epochs``).
    validation_data : tuple (x_val, y_val), optional
        Scored after every epoch (loss and accuracy), and what early stopping
        watches.
    seed : int or None
        Seed of the per-epoch shuffling and of the validation split.
    early_stopping : bool
        When the validation ``monitor`` has not improved for ``patience``
        epochs, anneal the learning rate over ``anneal_epochs`` epochs and
        stop (see :class:`EarlyStopping`). Without ``validation_data``, a
        stratified ``validation_fraction`` of the training data is held out
        for it, drawn from ``seed``.
    validation_fraction : float
        The share of the training data held out when early stopping needs it.
    monitor : {'val_loss', 'val_accuracy'}
        What early stopping watches.
    patience : int
        Epochs without improvement before early stopping ends training.
    min_delta : float
        The smallest change of ``monitor`` that counts as an improvement.
    restore_best : bool
        With early stopping, end with the parameters of the best epoch.
    anneal_epochs : int
        With early stopping, once ``patience`` epochs have passed without an
        improvement (the run has stalled), train this many epochs more while
        the learning rate anneals, along a half cosine, from where the
        schedule has it to the schedule's final value (one-cycle's end), and
        then stop (:func:`fastmlp.optim.annealed`): a schedule planned for a
        longer run than the stall allows ends low, as it would have at
        ``epochs``, instead of at its peak. Improvements during the anneal do
        not prolong it; never past ``epochs``. 0 stops at the stall (Keras's
        rule), as a ``'constant'`` schedule, which does not come down, always
        does.
    checkpoint : path, optional
        A directory (created if its parent exists) where a checkpoint of the
        run is written, atomically, after every epoch: see
        ``fastmlp.checkpoint``. It must not hold one already, unless ``resume``.
    resume : bool
        Continue the run whose checkpoint is in ``checkpoint``: the result is
        bit for bit that of the uninterrupted run, on the same backend (BLAS
        backends: at the same thread count). Every other argument must be as
        in the interrupted run; the message of a refusal names what differs.
    log_csv : path, optional
        A CSV file written as training goes, as Keras's ``CSVLogger`` writes
        one: a header row, ``epoch`` and the per-epoch columns of
        :class:`History` (:data:`HISTORY_COLUMNS`, ``val_`` named by
        ``validation_name``: ``test_loss`` for ``fastmlp train``), then one row per epoch,
        written and flushed as the epoch ends (after its checkpoint); floats
        in full precision, an empty cell for None. A file already there is
        replaced. When ``resume`` continues a run, the file is first written
        again from the checkpoint's history, epochs ``1 .. N`` as the
        interrupted run wrote them, then continued: so it holds every epoch
        of the run once, with one header, even if the interrupted run wrote
        no log, or wrote a row the checkpoint does not have (the resumed run
        trains that epoch again).
    callback : callable, optional
        Called as ``callback(epoch, history)`` after each epoch (1-based),
        once the epoch's checkpoint and log row are written and its line
        printed. To end
        training there, as early stopping does, it raises
        :class:`~fastmlp.StopTraining` (``raise StopTraining("why")``):
        ``fit`` then returns normally, ``history.stop_reason`` is
        ``'callback stopped training after epoch 3: why'``, the checkpoint is
        marked finished (resuming it trains nothing more) and, with early
        stopping and ``restore_best``, the best epoch's parameters are
        restored as usual. On the last epoch it changes nothing. Any other
        exception (``KeyboardInterrupt``) leaves fit, and the epoch's
        checkpoint to resume from.
    verbose : {0, 1, 2, 'auto'}
        What to print: 0 nothing; 1 one line per epoch (loss, training and
        validation accuracy, throughput, seconds) to standard output; 2 the
        same lines and, while an epoch runs, a progress bar over its steps with
        the running loss and training accuracy on standard error, cleared
        before the epoch's line is printed; ``'auto'`` 2 when standard error
        is a terminal, else 1. The lines are results, the bar is progress: so
        ``python train.py > log.txt`` in a terminal shows the bar and keeps the
        lines. The bar does not change the result: the epoch runs as the same
        batches in consecutive calls, each given a slice of the epoch's
        shuffled order, updating the bar between them (a tenth of the epoch,
        then parts of about half a second); it costs those calls alone, and
        copies no data.
    validation_name : str
        What the per-epoch lines call the validation data (``'val acc'``);
        ``fastmlp train`` passes ``'test'``.
    sample_weight : array_like of float, shape (n_samples,), optional
        Finite, non-negative weight of each sample, not all 0. Each batch's
        loss is then the weighted mean ``sum_i w[i] loss[i] / sum_i w[i]``
        over the batch (scikit-learn's ``MLPClassifier``), and its gradient
        that of this mean; a batch whose weights are all 0 takes a step with a
        zero gradient (momentum, weight decay and Adam's moments still move
        it). ``model.scaler``, when this fit fits it, learns the weighted mean
        and standard deviation. An integer weight counts a sample that many
        times: a full-batch step equals one on the rows repeated.
    class_weight : dict or 'balanced', optional
        Weight of each class, multiplying ``sample_weight``: a dict maps class
        indices (``0 .. n_classes - 1``) to weights, a missing class weighs 1;
        ``'balanced'`` gives class ``k`` the weight ``n_samples / (n_classes
        * count_k)``, scikit-learn's ``compute_class_weight`` (the counts
        summing ``sample_weight`` when given, and ``n_classes`` counting the
        classes of positive total weight), so every class weighs the same in
        all. See :func:`training_weights`.
    check_finite : bool
        Check that ``x`` and ``validation_data`` hold no NaN or inf (a
        ``ValueError`` names which). False skips this pass over the data for a
        caller that has checked already, as ``fastmlp.sklearn`` has with
        scikit-learn's ``validate_data``; a NaN or inf then makes the scaler's
        ``fit`` fail, or training diverge.

    Returns
    -------
    History
        With weights, ``loss`` is each epoch's weighted mean loss (the sum
        over batches of each batch's weighted mean times its total weight,
        over the total weight); ``train_accuracy`` is always the unweighted
        fraction of samples predicted right.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((256, 4)), rng.integers(0, 3, 256)
    >>> model = fastmlp.MLP((4, 8, 3), seed=0)
    >>> history = model.fit(x, y, epochs=2, verbose=1)  # doctest: +ELLIPSIS
    epoch  1/2  loss ...  train acc ...%  ... samples/s  ... s
    epoch  2/2  loss ...  train acc ...%  ... samples/s  ... s

    Raises
    ------
    TrainingDivergedError
        If the loss of a batch becomes NaN or infinite; the message names the
        epoch and step.
    CheckpointError
        If ``checkpoint`` holds a checkpoint and not ``resume``, holds none
        and ``resume``, or holds one of another run.
    OSError
        If ``checkpoint`` or ``log_csv`` cannot be written; checked before
        training.
    ValueError
        If ``sample_weight`` or ``class_weight`` is not as described; the
        message names the problem.
    """
    x, y, weights = _checked_training_data(model, x, y, sample_weight, class_weight,
                                           check_finite)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    lines, bar = _VERBOSITY[_check_verbose(verbose)]
    scale_lr = get_schedule(schedule)
    optimizer = training_optimizer(optimizer, learning_rate, weight_decay)
    base_lr = optimizer.learning_rate if learning_rate is None else learning_rate
    validation = _checked_validation_data(model, validation_data, check_finite)
    stopping = None
    if early_stopping:
        check_non_negative_int(anneal_epochs, "anneal_epochs")
        if monitor == "val_accuracy" and model.output not in ("softmax", "logistic"):
            raise ValueError(f"monitor='val_accuracy' needs a classifier; a model with "
                             f"{model.output!r} output has no accuracy: monitor 'val_loss'")
        stopping = EarlyStopping(monitor, patience, min_delta, restore_best,
                                 anneal_epochs if anneals(scale_lr) else 0)
    _check_checkpoint(checkpoint, resume, optimizer)
    if log_csv is not None:
        check_log_csv(log_csv)

    run = _Run(model, optimizer, np.random.default_rng(seed), stopping, checkpoint)
    saved = None
    if checkpoint is not None:
        run.config = _run_config(model, x, y, weights, validation_data, validation_fraction,
                                 stopping, epochs=epochs, batch_size=batch_size,
                                 optimizer=optimizer, learning_rate=base_lr, schedule=schedule,
                                 seed=seed)
        saved = run.read_checkpoint() if resume else None
    run.data = _hold_out_validation(x, y, weights, validation, stopping, validation_fraction,
                                    run.rng, saved)
    first_epoch = run.begin() if saved is None else run.resume(saved, epochs, lines)
    if not model.scaler.fitted:
        model.scaler.fit(run.data.x, sample_weight=run.data.weights)
    run_steps = backends.get_backend().run_steps
    if model._family:
        run_steps = functools.partial(run_steps, **model._family)
    run.data = run.data.scaled(model.scaler, model.dtype)
    batches = Batches(run.data.x, run.data.y, None, batch_size, model.scaler, model.dtype,
                      run.data.weights)
    learning_rates = _learning_rates(base_lr, scale_lr, epochs, -(-len(run.data.y) // batch_size))
    with _csv_log(log_csv, run.history, validation_name) as log_epoch:
        for epoch in range(first_epoch, epochs + 1):
            rates = learning_rates(epoch, None if stopping is None else stopping.anneal)
            start = time.perf_counter()
            done = _train_epoch(run_steps, model.params, run.shuffled(batches), optimizer,
                                rates, epoch, epochs, bar)
            run.record(done, time.perf_counter() - start)
            stop = stopping is not None and stopping.update(epoch, run.history, run.vector)
            run.save(epoch, finished=stop or epoch == epochs)
            log_epoch(epoch)
            if lines:
                print(_epoch_line(run.history, epochs, validation_name, stopping is not None),
                      flush=True)
            if callback is not None:
                reason = _call_back(callback, epoch, run.history)
                if reason is not None and not (stop or epoch == epochs):
                    run.history.stop_reason = reason
                    run.save(epoch, finished=True)
                    stop = True
            if stop:
                break
    run.end(epochs, lines)
    return run.history



class _Data(NamedTuple):
    """What a run trains on (checked) and validates on, if anything."""

    x: np.ndarray                       # (n_samples, n_features), as given
    y: np.ndarray                       # (n_samples,) int64
    weights: np.ndarray | None          # (n_samples,) float64, or None: unweighted
    x_val: np.ndarray | None            # (n_val, n_features): validation_data's or held out
    y_val: np.ndarray | None            # (n_val,)
    validation_rows: np.ndarray | None  # the rows of fit's x held out for early stopping

    def scaled(self, scaler: InputScaler, dtype) -> _Data:
        """The data as training reads it: ``x`` as batches are gathered from
        (:func:`~fastmlp.steps.training_inputs`), the validation inputs scaled."""
        return self._replace(
            x=training_inputs(self.x, dtype), y=np.ascontiguousarray(self.y),
            x_val=None if self.x_val is None else scaler.transform(self.x_val, dtype))


def _checked_training_data(model, x, y, sample_weight, class_weight, check_finite):
    """``x``, ``y`` and each sample's weight (None: unweighted), checked for ``model``."""
    x = check_features(x, model.n_features, check_finite=check_finite)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_features), got shape {x.shape}")
    y = check_targets(y, x.shape[0], model.n_classes, model.output, model.dtype)
    if y.ndim == 2 and class_weight is not None:
        raise ValueError("class_weight needs class labels (a softmax output with 1-D y); "
                         "weigh target rows with sample_weight")
    return x, y, training_weights(y, model.n_classes, sample_weight, class_weight)


def _checked_validation_data(model, validation_data, check_finite):
    """``(x_val, y_val)`` checked for ``model``, or None."""
    if validation_data is None:
        return None
    x_val, y_val = validation_data
    x_val = check_features(x_val, model.n_features, "x_val", check_finite=check_finite)
    return x_val, check_targets(y_val, np.atleast_2d(x_val).shape[0], model.n_classes,
                                model.output, model.dtype, "y_val")


def training_optimizer(optimizer, learning_rate: float | None = None,
                       weight_decay: float | None = None):
    """The optimizer ``fit`` trains with: a name made into one, an object as it is.

    Parameters
    ----------
    optimizer : str or optimizer object
        A name from ``fastmlp.optim.OPTIMIZERS``, made with
        ``fastmlp.optim.make_optimizer(optimizer, learning_rate, weight_decay)``
        (its defaults where these are None), or an object with ``step(params,
        grads, learning_rate)``, returned unchanged: it keeps its own weight
        decay, and ``fit`` steps it at ``learning_rate`` when one is given.
    learning_rate, weight_decay : float, optional

    Raises
    ------
    ValueError
        For an unknown name or a bad value (the message names it), or a
        ``weight_decay`` given with an optimizer object.

    Examples
    --------
    >>> from fastmlp.optim import Adam
    >>> training_optimizer("sgd", 0.1).learning_rate
    0.1
    >>> adam = Adam()
    >>> training_optimizer(adam) is adam
    True
    """
    if isinstance(optimizer, str):
        return make_optimizer(optimizer, learning_rate, weight_decay)
    if weight_decay is not None:
        raise ValueError(
            "weight_decay applies to a named optimizer; set it on the optimizer object"
        )
    return optimizer


def _check_checkpoint(checkpoint, resume: bool, optimizer) -> None:
    """Raise unless a run can keep (``resume``: take up) its checkpoints in ``checkpoint``."""
    if checkpoint is not None:
        if not callable(getattr(optimizer, "state_dict", None)):
            raise TypeError("checkpoints need an optimizer with state_dict() and "
                            "load_state_dict(), as those of fastmlp.optim have")
        _checkpoint.check_directory(checkpoint, resume=resume)
    elif resume:
        raise ValueError("resume=True needs the checkpoint directory: checkpoint=...")


def _hold_out_validation(x, y, weights, validation, stopping, fraction, rng, saved) -> _Data:
    """The run's training and validation data: ``validation`` if given, else, for early
    stopping, a stratified ``fraction`` of ``(x, y)`` held out (the rows of the checkpoint
    ``saved`` when resuming, else drawn by ``rng``), else none."""
    x_val, y_val = (None, None) if validation is None else validation
    rows = None
    if stopping is not None and validation is None:
        rows = saved.validation_rows if saved is not None else validation_split(y, fraction, rng)
    if rows is not None:
        kept = np.ones(len(y), bool)
        kept[rows] = False
        x_val, y_val = x[rows], y[rows]
        x, y = x[kept], y[kept]
        if weights is not None:
            weights = weights[kept]
    return _Data(x, y, weights, x_val, y_val, rows)


def _learning_rates(base_lr: float, scale_lr, epochs: int, steps_per_epoch: int):
    """``rates(epoch, anneal=None)``: the learning rate of each step of ``epoch``
    (1-based), by the schedule ``scale_lr`` over every step of ``epochs`` epochs, annealed
    from the first epoch of ``anneal`` over its epochs (``EarlyStopping.anneal``)."""
    total_steps = epochs * steps_per_epoch

    def rates(epoch: int, anneal: tuple[int, int] | None = None) -> np.ndarray:
        scale = scale_lr
        if anneal is not None:
            first_epoch, anneal_epochs = anneal
            scale = annealed(scale_lr, (first_epoch - 1) * steps_per_epoch,
                             anneal_epochs * steps_per_epoch)
        first = (epoch - 1) * steps_per_epoch
        return np.array([base_lr * scale(step, total_steps)
                         for step in range(first, first + steps_per_epoch)])
    return rates


def _train_epoch(run_steps, params, batches: Batches, optimizer, learning_rates, epoch: int,
                 epochs: int, bar: bool) -> StepsDone:
    """Epoch ``epoch``'s steps through the backend's ``run_steps``; with ``bar``, in parts
    under a progress bar (the same bits).

    Raises
    ------
    TrainingDivergedError
        If a batch's loss is not finite; the message names the epoch and step.
    """
    # Overflow on the way to a diverging loss is reported here, once.
    with np.errstate(over="ignore", invalid="ignore"):
        if bar:
            with _progress_bar(len(learning_rates), f"epoch {epoch:>2}/{epochs}") as progress:
                done = _run_in_parts(run_steps, params, batches, optimizer, learning_rates,
                                     progress)
        else:
            done = run_steps(params, batches, optimizer, learning_rates)
    if done.failed_step >= 0:
        raise TrainingDivergedError(
            f"training diverged: loss became non-finite (nan or inf) at epoch {epoch}, "
            f"step {done.failed_step + 1} of {len(learning_rates)}; try a lower learning rate"
        )
    return done


HISTORY_COLUMNS = tuple(f.name for f in fields(History) if f.default_factory is list)
"""The per-epoch lists of :class:`History`, in order: the columns of ``fit``'s ``log_csv``
after ``epoch``."""


def check_log_csv(path) -> None:
    """Raise ``OSError``, naming ``path``, unless ``fit(log_csv=path)`` could write it now.

    Its directory must exist and take a new file, and ``path`` must not be a
    directory or a file that cannot be written (it would be replaced).

    >>> check_log_csv("/nonexistent/log.csv")
    Traceback (most recent call last):
    ...
    OSError: cannot write the training log to /nonexistent/log.csv: no directory /nonexistent
    """
    path = os.fspath(path)
    problem = unwritable(path)
    if problem is None and os.path.exists(path) and not os.access(path, os.W_OK):
        problem = f"{path} is not writable"
    if problem:
        raise OSError(f"cannot write the training log to {path}: {problem}")


@contextlib.contextmanager
def _csv_log(path, history: History, validation_name: str = "val"):
    """``fit``'s ``log_csv`` open for the epochs: yields ``log_epoch(epoch)``, which writes
    and flushes the row of ``history``'s epoch ``epoch`` (1-based).

    The file starts with the header and the rows of the epochs ``history``
    holds already (a resumed run's, from its checkpoint). With ``path`` None,
    ``log_epoch`` does nothing.
    """
    if path is None:
        yield lambda epoch: None
        return
    columns = [getattr(history, name) for name in HISTORY_COLUMNS]
    # the validation columns named as fit's lines name them ("test" for fastmlp train's)
    header = [name.replace("val_", f"{validation_name}_", 1) for name in HISTORY_COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as file:
        rows = csv.writer(file)

        def log_epoch(epoch: int) -> None:
            rows.writerow([epoch, *("" if column[epoch - 1] is None
                                    else repr(float(column[epoch - 1])) for column in columns)])
            file.flush()

        rows.writerow(["epoch", *header])
        for epoch in range(1, len(history) + 1):
            log_epoch(epoch)
        file.flush()
        yield log_epoch


def _call_back(callback, epoch: int, history: History) -> str | None:
    """Call ``callback(epoch, history)``; if it raises ``StopTraining``, why it stopped, in
    words (the exception's message), else None."""
    try:
        callback(epoch, history)
    except StopTraining as stop:
        return f"callback stopped training after epoch {epoch}" + (f": {stop}" if str(stop)
                                                                    else "")
    return None


@dataclass
class _Run:
    """A training run's state: what its epochs move on, and what a checkpoint keeps of it.

    ``fit`` checks its arguments, then runs these steps: ``begin`` (or
    ``resume``), and per epoch ``shuffled``, ``record`` and ``save``; ``end``.
    """

    model: MLP
    optimizer: object
    rng: np.random.Generator              # the shuffling generator
    stopping: EarlyStopping | None
    checkpoint: str | os.PathLike | None  # the directory of its checkpoints
    config: dict[str, str] | None = None  # the run as its checkpoint describes it
    data: _Data | None = None
    history: History = field(default_factory=History)
    vector: np.ndarray = field(init=False)  # every parameter: model.params are views of it

    def __post_init__(self):
        # a copy only if the parameters were not views of one vector already, so a
        # fused epoch updates them in place
        self.model.params = flat_params(self.model.params)
        self.vector = base_vector([a for pair in self.model.params for a in pair])

    def read_checkpoint(self) -> _checkpoint.Saved:
        """The checkpoint to resume, of this run (``config``): see ``fastmlp.checkpoint.read``."""
        return _checkpoint.read(self.checkpoint, self.config,
                                [a.shape for pair in self.model.params for a in pair],
                                self.model.dtype)

    def begin(self) -> int:
        """Start a new run (making its checkpoint directory); the first epoch, 1."""
        if self.checkpoint is not None:
            _checkpoint.prepare(self.checkpoint)
        return 1

    def resume(self, saved: _checkpoint.Saved, epochs: int, lines: bool) -> int:
        """Continue from the checkpoint ``saved`` (saying so, with ``lines``); the epoch to
        run next, ``epochs + 1`` if the run had finished."""
        self.vector[...] = saved.params
        for name, value in saved.scaler.items():
            setattr(self.model.scaler, name, value)
        self.optimizer.load_state_dict(saved.optimizer, self.model.params)
        self.rng.bit_generator.state = saved.rng
        self.history = History(**{**saved.history, "resumed_after": saved.epoch})
        if self.stopping is not None:
            self.stopping.load(saved.stopping)
        # a notice, not a result: the fastmlp logger's (fastmlp train shows it on stderr)
        logger.info("resuming the run checkpointed in %s after epoch %d/%d",
                    os.fspath(self.checkpoint), saved.epoch, epochs)
        return epochs + 1 if saved.finished else saved.epoch + 1

    def shuffled(self, batches: Batches) -> Batches:
        """``batches`` in the next epoch's order, drawn from the shuffling generator."""
        # Batches are gathered from the inputs by this permutation inside the epoch, not
        # by a permuted copy: that 188 MB copy per MNIST epoch cost ~7 % of a numba epoch.
        return batches._replace(order=self.rng.permutation(len(batches.y)))

    def record(self, done: StepsDone, seconds: float) -> None:
        """Append an epoch to the history: its loss, accuracy and time, and the validation
        data's loss and accuracy after it (and, for the first epoch of early stopping's
        anneal, that it was)."""
        history, data = self.history, self.data
        n = len(data.y)
        history.loss.append(done.loss_sum / (n if data.weights is None
                                             else float(data.weights.sum())))
        classifier = self.model.output in ("softmax", "logistic")
        history.train_accuracy.append(done.correct / n if classifier else None)
        if self.stopping is not None and self.stopping.annealed_from == len(history):
            history.annealed_from = len(history)
        history.seconds.append(seconds)
        history.samples_per_second.append(n / seconds)
        if data.x_val is None:
            history.val_accuracy.append(None)
            history.val_loss.append(None)
        else:
            output = self.model.output
            val_out = np.atleast_2d(self.model._proba(data.x_val))
            history.val_accuracy.append(HITS[output](val_out, data.y_val) / len(val_out)
                                        if classifier else None)
            history.val_loss.append(LOSSES[output](val_out, data.y_val))

    def save(self, epoch: int, *, finished: bool) -> None:
        """Write the checkpoint of the run after ``epoch``, if it keeps one."""
        if self.checkpoint is not None:
            _checkpoint.write(self.checkpoint, config=self.config, epoch=epoch,
                              finished=finished, model=self.model, optimizer=self.optimizer,
                              rng=self.rng, history=asdict(self.history),
                              stopping=None if self.stopping is None else self.stopping.state(),
                              validation_rows=self.data.validation_rows)

    def end(self, epochs: int, lines: bool) -> None:
        """Say why training ended (printing it when ``lines`` and it ended early); with early
        stopping, keep the best epoch's parameters if asked."""
        history, stopping = self.history, self.stopping
        if not history.stop_reason:  # a callback's, set (and checkpointed) as it stopped
            history.stop_reason = "ran its one epoch" if epochs == 1 else f"ran all {epochs} epochs"
            if history.annealed_from is not None:
                first, last = history.annealed_from, len(history)
                span = f"epoch {last}" if last == first else f"epochs {first} to {last}"
                history.stop_reason = (f"early stopping: {stopping.reason()}, so the learning "
                                       f"rate annealed over {span}")
            elif stopping is not None and len(history) < epochs:
                history.stop_reason = "early stopping: " + stopping.reason()
        if stopping is None:
            if lines and len(history) < epochs:
                print(history.stop_reason, flush=True)
            return
        history.best_epoch = stopping.best_epoch
        if stopping.restore_best and stopping.best_params is not None:
            self.vector[...] = stopping.best_params
        if lines:
            restored = ", weights restored" if stopping.restore_best else ""
            print(f"{history.stop_reason}; best epoch {stopping.best_epoch} "
                  f"({stopping.monitor} {stopping.best:.4f}){restored}", flush=True)


def _run_config(model, x, y, weights, validation_data, validation_fraction, stopping, *,
                epochs, batch_size, optimizer, learning_rate, schedule, seed) -> dict[str, str]:
    """What a checkpoint records of a run, to refuse resuming another: each entry in words."""
    if validation_data is not None:
        validation = _checkpoint.describe_data(*map(np.asarray, validation_data))
    elif stopping is not None:
        validation = f"a stratified {validation_fraction!r} of the training data"
    else:
        validation = "none"
    state = optimizer.state_dict()
    hyper = ", ".join(f"{name} {value!r}" for name, value in state["hyper"].items()
                      if name != "learning_rate")
    network = {} if not model._family else {
        "network": f"{model.activation} hidden layers, {model.output} output"}
    return {
        **network,
        "layer sizes": "-".join(map(str, model.layer_sizes)),
        "dtype": model.dtype.name,
        "training data": _checkpoint.describe_data(x, y),
        "sample weights": "none" if weights is None else
                          f"digest {_checkpoint.data_digest(weights)}",
        "validation data": validation,
        "epochs": str(epochs),
        "batch size": str(batch_size),
        "optimizer": f"{state['class']} ({hyper})",
        "learning rate": repr(float(learning_rate)),
        "schedule": schedule,
        "seed": repr(seed),
        "early stopping": "off" if stopping is None else stopping.describe(validation),
    }


def _epoch_line(history: History, epochs: int, validation_name: str = "val",
                validation_loss: bool = False) -> str:
    """The line ``fit(verbose=1)`` prints for the last epoch of ``history``."""
    line = f"epoch {len(history):>2}/{epochs}  loss {history.loss[-1]:.4f}  "
    if history.train_accuracy[-1] is not None:
        line += f"train acc {100 * history.train_accuracy[-1]:.2f}%  "
    if validation_loss and history.val_loss[-1] is not None:
        line += f"{validation_name} loss {history.val_loss[-1]:.4f}  "
    if history.val_accuracy[-1] is not None:
        line += f"{validation_name} acc {100 * history.val_accuracy[-1]:.2f}%  "
    return line + f"{history.samples_per_second[-1]:,.0f} samples/s  {history.seconds[-1]:.2f} s"


# verbose -> (print a line per epoch, show a progress bar)
_VERBOSITY = {0: (False, False), 1: (True, False), 2: (True, True)}

# A bar runs an epoch in parts: the first a tenth of its steps, each later one as
# many steps as took PROGRESS_SECONDS in the part before. Often enough to watch the
# bar move, seldom enough that the calls add nothing measurable: each call starts the
# fused epoch's workers and lays out its weights again (about 1.8 ms on 784-128-128-10;
# ten parts made a 0.17 s epoch 11 % slower).
PROGRESS_UPDATES_PER_EPOCH = 10
PROGRESS_SECONDS = 0.5


def _check_verbose(verbose) -> int:
    if isinstance(verbose, str) and verbose == "auto":
        isatty = getattr(sys.stderr, "isatty", None)  # where the bar would go
        return 2 if isatty is not None and isatty() else 1
    if isinstance(verbose, str) or verbose not in _VERBOSITY:
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _progress_bar(steps: int, description: str) -> tqdm:
    # Redrawn at every update: there are few of them (PROGRESS_SECONDS apart).
    return tqdm(total=steps, desc=description, unit="step", leave=False, file=sys.stderr,
                dynamic_ncols=True, mininterval=0, miniters=1)


def _run_in_parts(run_steps, params, batches, optimizer, learning_rates, progress):
    """The steps of ``batches``, run as consecutive parts of whole batches.

    ``progress`` (a tqdm bar) advances and shows the running loss and accuracy
    after each part. Each part is a slice of the epoch's shuffled order, so
    the batches and the parameters come out bit for bit as from one call. The
    first part is a tenth of the steps, each later one the steps that the one
    before ran in ``PROGRESS_SECONDS``.
    """
    steps = len(learning_rates)
    part_steps = -(-steps // PROGRESS_UPDATES_PER_EPOCH)
    loss_sum, correct, seen, weight_seen = 0.0, 0, 0, 0.0
    size, weights = batches.batch_size, batches.sample_weight
    first = 0
    while first < steps:
        part = batches._replace(order=batches.order[first * size:(first + part_steps) * size])
        start = time.perf_counter()
        done = run_steps(params, part, optimizer, learning_rates[first:first + part_steps])
        pace = min(part_steps, steps - first) / max(time.perf_counter() - start, 1e-9)
        loss_sum += done.loss_sum
        correct += done.correct
        if done.failed_step >= 0:
            return StepsDone(loss_sum, correct, first + done.failed_step)
        seen += len(part.order)
        weight_seen += len(part.order) if weights is None else float(weights[part.order].sum())
        progress.set_postfix_str(f"loss {loss_sum / (weight_seen or 1.0):.4f}, "
                                 f"acc {100 * correct / seen:.2f}%", refresh=False)
        progress.update(min(part_steps, steps - first))
        first += part_steps
        part_steps = max(1, int(pace * PROGRESS_SECONDS))
    return StepsDone(loss_sum, correct, -1)


def training_weights(y, n_classes: int, sample_weight=None, class_weight=None):
    """The weight of each training sample: ``sample_weight`` times its class's weight.

    Parameters
    ----------
    y : ndarray of int64, shape (n_samples,)
        Class indices, checked (``check_labels``).
    n_classes : int
    sample_weight : array_like of float, shape (n_samples,), optional
        Finite and non-negative.
    class_weight : None, 'balanced' or dict
        A dict maps class indices to finite, non-negative weights (a missing
        class weighs 1). ``'balanced'`` is ``total / (n_classes * count_k)``
        for class ``k``, where ``count_k`` sums the sample weights of class
        ``k`` (counts its samples without them), ``total`` is the sum of the
        counts and ``n_classes`` counts the classes with ``count_k > 0``: so
        scikit-learn's ``compute_class_weight('balanced', ...)`` wherever
        that is finite (it gives ``inf`` to a class present whose weights
        are all 0; this leaves that class's weight 1, its samples weighing 0).

    Returns
    -------
    ndarray of float64, shape (n_samples,), or None
        None when neither is given (unweighted training), else a new array.

    Raises
    ------
    ValueError
        For weights of the wrong shape, NaN, inf or negative, a
        ``class_weight`` that is neither a dict nor ``'balanced'``, a dict
        naming a class the model does not have, or weights that are 0 for
        every sample; the message says which.

    Examples
    --------
    >>> import numpy as np
    >>> training_weights(np.array([0, 0, 0, 1]), 2, class_weight="balanced")
    array([0.66666667, 0.66666667, 0.66666667, 2.        ])
    >>> training_weights(np.array([0, 1]), 2, [1.0, 3.0], class_weight={1: 0.5})
    array([1. , 1.5])
    """
    if sample_weight is None and class_weight is None:
        return None
    weights = None
    if sample_weight is not None:
        weights = check_sample_weight(sample_weight, y.shape[0])
        if not weights.any():
            raise ValueError("sample_weight is zero for every sample; at least one weight "
                             "must be positive")
    if class_weight is None:
        return weights
    per_class = _class_weights(class_weight, y, n_classes, weights)
    weights = per_class[y] if weights is None else weights * per_class[y]
    if not weights.any():
        raise ValueError("the weights (sample_weight times class_weight) are zero for every "
                         "sample; at least one must be positive")
    return weights


def _class_weights(class_weight, y, n_classes, sample_weight) -> np.ndarray:
    """The weight of each class, shape ``(n_classes,)``; see :func:`training_weights`."""
    if isinstance(class_weight, str) and class_weight == "balanced":
        counts = np.bincount(y, weights=sample_weight, minlength=n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.ones(n_classes)
        per_class[present] = counts.sum() / (np.count_nonzero(present) * counts[present])
        return per_class
    if not isinstance(class_weight, Mapping):
        raise ValueError("class_weight must be None, 'balanced' or a dict mapping class "
                         f"indices to weights, got {class_weight!r}")
    per_class = np.ones(n_classes)
    for label, weight in class_weight.items():
        if (isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer))
                or not 0 <= label < n_classes):
            raise ValueError(f"class_weight has class {label!r}, which is not a class of "
                             f"the model: classes are 0 .. {n_classes - 1}")
        if not (isinstance(weight, (int, float, np.integer, np.floating))
                and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"class_weight[{label!r}] is {weight!r}; class weights must be "
                             "finite numbers >= 0")
        per_class[label] = weight
    return per_class


def train_epoch(backend, params, x, y, batch_size, optimizer, learning_rates, order=None, *,
                sample_weight=None):
    """One pass over ``(x, y)`` in mini-batches with any backend's ``forward`` and ``backward``.

    :class:`ComposedSteps` of ``backend`` on inputs used as they are (already
    scaled): forward, loss, backward and ``optimizer.step`` per batch. Batch
    ``k`` is rows ``order[k * batch_size:(k + 1) * batch_size]`` of ``x`` and
    ``y``, or consecutive rows when ``order`` is None. ``order`` may pick any
    rows: a permutation of all of them for an epoch, or a part of one.
    ``sample_weight`` (float64, one weight per row of ``x``, trusted) weighs
    each batch's loss as in :func:`fit`.

    Returns
    -------
    StepsDone
        ``(loss_sum, correct, failed_step)``: the sum over batches of the
        batch's (weighted) mean loss times its size (total weight); the samples whose forward-pass
        prediction (before the batch's update) was right; the index of the
        first batch whose loss was not finite, where training stopped before
        updating, or -1 if every loss was finite.
    """
    batches = Batches(x, y, order, batch_size, None, None, sample_weight)
    return ComposedSteps(backend.forward, backend.backward)(params, batches, optimizer,
                                                            learning_rates)
