"""Pictures of a trained model: training curves and an evaluation's confusion matrix and mistakes.

Drawn with matplotlib's Agg canvas (no display needed), which is the optional
``plot`` extra: ``pip install "fastmlp[plot]"``. Files are written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write, unwritable

__all__ = ["check_plot_path", "plot_evaluation", "plot_history", "save_figure"]

_EXTRA = 'plotting needs matplotlib: pip install "fastmlp[plot]"'


def _agg():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_EXTRA) from None
    return Figure, FigureCanvasAgg


def check_plot_path(path: str | os.PathLike) -> str:
    """The image format a plot will be written in, checked before any long work.

    The format comes from the file name's suffix (``png`` when it has none).

    Raises
    ------
    ImportError
        When matplotlib is not installed; the message names the ``plot`` extra.
    ValueError
        When the format is unknown or the file could not be written (see
        ``fastmlp._atomic.unwritable``); the message names ``path`` as given.
    """
    _, FigureCanvasAgg = _agg()
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(f"cannot write the plot to {os.fspath(path)}: unknown image format "
                         f"{suffix!r}; use one of {', '.join(sorted(formats))}")
    problem = unwritable(path)
    if problem:
        raise ValueError(f"cannot write the plot to {os.fspath(path)}: {problem}")
    return suffix


def save_figure(fig, path, image_format):
    """Write matplotlib figure ``fig`` to ``path`` in ``image_format``, atomically."""
    _, FigureCanvasAgg = _agg()
    FigureCanvasAgg(fig)
    with atomic_write(path) as file:
        fig.savefig(file, format=image_format, dpi=110)


def plot_history(history, path: str | os.PathLike, *, validation_label: str = "test") -> None:
    """Draw the training curves of a ``History`` into the image file ``path``.

    Left: the mean training loss per epoch (log scale), and the validation
    loss where the history has it. Right: training and validation accuracy
    per epoch, in percent; epochs without validation data have no validation
    point. Early stopping's best epoch is marked on both.

    Parameters
    ----------
    history : fastmlp.History
    path : str or path-like
        Image file; the format comes from its suffix (``.png``, ``.svg``, ``.pdf``, ...).
    validation_label : str
        What the legend calls the validation data (``fastmlp train`` scores
        the test set after every epoch, unless early stopping holds out a
        validation split).
    """
    image_format = check_plot_path(path)
    if not len(history):
        raise ValueError("nothing to plot: the history has no epochs")
    Figure, _ = _agg()
    epochs = np.arange(1, len(history) + 1)
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, accuracy_axes = fig.subplots(1, 2)
    loss_axes.plot(epochs, history.loss, "o-", color="C3", label="train")
    _plot_validation(loss_axes, epochs, history.val_loss, 1, validation_label, "C4")
    loss_axes.set_yscale("log")
    loss_axes.set_title("loss (mean cross-entropy)")
    loss_axes.legend(loc="upper right")
    accuracy_axes.plot(epochs, 100 * np.asarray(history.train_accuracy), "o-", label="train")
    _plot_validation(accuracy_axes, epochs, history.val_accuracy, 100, validation_label, "C1")
    accuracy_axes.set_title("accuracy (%)")
    accuracy_axes.legend(loc="lower right")
    for axes in (loss_axes, accuracy_axes):
        if history.best_epoch is not None:
            axes.axvline(history.best_epoch, color="0.5", linestyle="--", linewidth=1)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    save_figure(fig, path, image_format)


def _plot_validation(axes, epochs, values, scale, label, color) -> None:
    """The validation points of ``values`` (None where an epoch had none), times ``scale``."""
    points = [(epoch, value) for epoch, value in zip(epochs, values) if value is not None]
    if points:
        axes.plot([e for e, _ in points], [scale * v for _, v in points], "s-", color=color,
                  label=label)


def plot_evaluation(evaluation, x, path: str | os.PathLike, *, mistakes: int = 24) -> None:
    """Draw an evaluation's confusion matrix and its most confident mistakes into ``path``.

    Left: the confusion matrix, counts written in each cell, colour on a log
    scale so that the few confusions show next to the large diagonal. Right:
    the ``mistakes`` wrong predictions the model was surest of, each image
    titled with its true and predicted class, the predicted class's
    probability and its row in ``x``.

    Parameters
    ----------
    evaluation : fastmlp.evaluate.Evaluation
    x : ndarray, shape (n_samples, n_features)
        The evaluated inputs; drawn as square images when ``n_features`` is a
        square number (784 = 28 x 28), otherwise the mistakes panel is left out.
    path : str or path-like
        Image file; the format comes from its suffix.
    mistakes : int
        Most images to show.
    """
    image_format = check_plot_path(path)
    Figure, _ = _agg()
    from matplotlib.colors import LogNorm

    confusion = evaluation.report.confusion
    names = evaluation.class_names
    n_features = np.asarray(x).shape[-1]
    side = math.isqrt(n_features)
    shown = evaluation.confident_mistakes(mistakes) if side * side == n_features else []
    fig = Figure(figsize=(15 if len(shown) else 7, 7.5), layout="constrained")
    if len(shown):
        left, right = fig.subfigures(1, 2, width_ratios=(1, 1.25))
    else:
        left, right = fig, None

    axes = left.subplots()
    image = axes.imshow(np.ma.masked_equal(confusion, 0), cmap="Blues",
                        norm=LogNorm(vmin=0.5, vmax=max(1, confusion.max())))
    axes.set_facecolor("white")
    threshold = math.sqrt(max(1, confusion.max()))
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            axes.text(j, i, f"{count}", ha="center", va="center", fontsize=7,
                      color="white" if count > threshold else "black")
    ticks = np.arange(len(names))
    slanted = max(map(len, names)) > 2
    axes.set_xticks(ticks, names, rotation=45 if slanted else 0,
                    ha="right" if slanted else "center")
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"confusion matrix: accuracy {100 * evaluation.accuracy:.2f}% "
                   f"of {confusion.sum():,}")
    left.colorbar(image, ax=axes, shrink=0.8, label="count (log scale)")

    if right is not None:
        columns = min(6, len(shown))
        rows = -(-len(shown) // columns)
        grid = np.atleast_1d(right.subplots(rows, columns)).ravel()
        for axes, index in zip(grid, shown):
            axes.imshow(np.asarray(x[index]).reshape(side, side), cmap="gray_r")
            true, pred = evaluation.y_true[index], evaluation.y_pred[index]
            axes.set_title(f"true {names[true]}\nsaid {names[pred]} "
                           f"{100 * evaluation.confidence[index]:.2f}%\n#{index}", fontsize=8)
        for axes in grid:
            axes.set_axis_off()
        right.suptitle(f"the {len(shown)} most confident mistakes", fontsize=11)
    save_figure(fig, path, image_format)
