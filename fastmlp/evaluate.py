"""Score a trained model on a test set: ``fastmlp evaluate``.

``evaluation_data`` finds the test set and its class names; ``evaluate`` runs
the model over it and returns an ``Evaluation`` whose ``str()`` is the report
the command prints and whose ``to_dict()`` is its ``--json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import datasets
from .metrics import ClassReport, classification_report

__all__ = ["MNIST_CLASSES", "Evaluation", "EvaluationData", "class_probabilities", "evaluate",
           "evaluation_data", "model_classes"]

MNIST_CLASSES = tuple(str(digit) for digit in range(10))


@dataclass
class EvaluationData:
    """A labelled test set.

    Attributes
    ----------
    x : ndarray, shape (n_samples, n_features)
        Raw inputs, as the model takes them (MNIST: ``uint8`` pixels).
    y : ndarray of int, shape (n_samples,)
    class_names : tuple of str
        Name of class ``i`` at index ``i``.
    source : str
        Where the data came from, for the report.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    source: str


def evaluation_data(*, dataset: str | None = None, data_dir: str | os.PathLike | None = None,
                    data: str | os.PathLike | None = None) -> EvaluationData:
    """The test set to evaluate on, with its class names.

    Parameters
    ----------
    dataset : str, optional
        A known data set (``fastmlp.datasets.DATASETS``; default ``'mnist'``),
        read from ``data_dir`` if given (checksums verified), else as
        ``fastmlp.datasets.load_dataset`` finds it; its ``t10k`` split is used.
    data_dir : str or path-like, optional
        Without ``dataset``: a directory of any data set in MNIST's IDX layout
        (no checksums), classes named by their labels.
    data : str or path-like, optional
        An ``.npz`` file holding ``x_test`` and ``y_test`` (or ``x`` and ``y``),
        images of any shape ``(n_samples, ...)`` flattened to rows, and
        optionally ``class_names``. Excludes ``data_dir``.

    Returns
    -------
    EvaluationData

    Raises
    ------
    DataError, ValueError
        If the files are missing or malformed.
    """
    if data is not None and (data_dir is not None or dataset is not None):
        raise ValueError("give either a data set or a data file, not both")
    if data is not None:
        return _from_npz(data)
    if dataset is None and data_dir is not None:
        _, (x, y) = datasets.load_idx_dataset(data_dir)
        names = tuple(str(label) for label in range(int(y.max()) + 1))
        return EvaluationData(x.reshape(len(x), -1), y, names,
                              f"the test set of the IDX data set in {data_dir}")
    info = datasets.dataset_info(dataset or "mnist")
    _, (x, y) = datasets.load_dataset(info.name, data_dir)
    where = data_dir or os.environ.get(info.environment_variable) or "the cache"
    return EvaluationData(x.reshape(len(x), -1), y, info.class_names,
                          f"the {info.title} test set ({where})")


def _from_npz(path) -> EvaluationData:
    from .exceptions import DataError

    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read data file {path}: {exc}") from None
    for x_key, y_key in (("x_test", "y_test"), ("x", "y")):
        if x_key in arrays and y_key in arrays:
            break
    else:
        raise DataError(f"{path} holds {', '.join(sorted(arrays)) or 'no arrays'}; "
                        "expected x_test and y_test (or x and y)")
    x, y = arrays[x_key], arrays[y_key]
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: {x_key} of shape {x.shape} and {y_key} of shape {y.shape} "
                        "do not make (n_samples, ...) inputs with n_samples labels")
    if "class_names" in arrays:
        names = tuple(str(name) for name in arrays["class_names"])
    else:
        names = tuple(str(label) for label in range(int(y.max()) + 1 if y.size else 0))
    return EvaluationData(x.reshape(len(x), -1), y, names, str(path))


@dataclass
class Evaluation:
    """The result of ``evaluate``.

    Attributes
    ----------
    report : ClassReport
        Confusion matrix and per-class precision, recall, F1 and support.
    class_names : tuple of str
    y_true, y_pred : ndarray of int, shape (n_samples,)
    confidence : ndarray of float, shape (n_samples,)
        Probability the model gave its predicted class.
    source : str
    """

    report: ClassReport
    class_names: tuple[str, ...]
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray
    source: str = ""

    @property
    def accuracy(self) -> float:
        return self.report.accuracy

    def confident_mistakes(self, count: int) -> np.ndarray:
        """Indices of up to ``count`` wrong predictions, the most confident first."""
        wrong = np.flatnonzero(self.y_pred != self.y_true)
        order = np.argsort(-self.confidence[wrong], kind="stable")
        return wrong[order[:count]]

    def to_dict(self) -> dict:
        """The numbers as plain Python types, for ``json.dumps``."""
        report = self.report

        def averages(values):
            return dict(zip(("precision", "recall", "f1"), values))

        return {
            "data": self.source,
            "samples": int(report.support.sum()),
            "accuracy": self.accuracy,
            "classes": [
                {"class": i, "name": name, "precision": float(report.precision[i]),
                 "recall": float(report.recall[i]), "f1": float(report.f1[i]),
                 "support": int(report.support[i])}
                for i, name in enumerate(self.class_names)
            ],
            "macro_avg": averages(report.macro()),
            "weighted_avg": averages(report.weighted()),
            "confusion_matrix": report.confusion.tolist(),
        }

    def __str__(self) -> str:
        report, names = self.report, self.class_names
        total = int(report.support.sum())
        right = int(np.trace(report.confusion))
        lines = [f"accuracy {100 * self.accuracy:.2f}% ({right:,} of {total:,} right)", ""]
        width = max(12, *(len(name) for name in names))
        lines.append(f"{'class':<{width}}  precision  recall  f1-score  support")
        rows = [(name, report.precision[i], report.recall[i], report.f1[i], report.support[i])
                for i, name in enumerate(names)]
        rows += [("macro avg", *report.macro(), total), ("weighted avg", *report.weighted(), total)]
        lines += [f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f:8.4f}  {int(n):>7,}"
                  for name, p, r, f, n in rows]
        lines += ["", "confusion matrix (rows: true class, columns: predicted class)"]
        short = all(len(name) <= 5 for name in names)
        headers = list(names) if short else [str(i) for i in range(len(names))]
        labels = list(names) if short else [f"{i} {name}" for i, name in enumerate(names)]
        cell = max(5, len(f"{report.confusion.max():,}") + 1, *(len(h) + 1 for h in headers))
        label_width = max(len(label) for label in labels)
        lines.append(" " * label_width + "".join(f"{h:>{cell}}" for h in headers))
        for label, counts in zip(labels, report.confusion):
            lines.append(f"{label:<{label_width}}" + "".join(f"{c:>{cell},}" for c in counts))
        return "\n".join(lines)


def model_classes(model) -> int:
    """The classes ``model`` tells apart: its softmax units, or 2 for one logistic unit (a
    binary classifier).

    Raises
    ------
    ValueError
        For a model that is not a classifier of one label: several logistic
        units (multilabel) or a regression (identity or exp output).
    """
    output = getattr(model, "output", "softmax")
    if output == "softmax":
        return model.n_classes
    if output == "logistic" and model.n_classes == 1:
        return 2
    what = (f"{model.n_classes} logistic outputs (multilabel)" if output == "logistic"
            else f"an {output} output (a regression)")
    raise ValueError(f"the model has {what}; classes are scored for a softmax output or one "
                     "logistic unit")


def class_probabilities(model, x) -> np.ndarray:
    """The probability of each of ``model_classes(model)`` classes for each row of ``x``:
    ``predict_proba``, or ``[1 - p, p]`` for one logistic unit's ``p``.

    Returns
    -------
    ndarray, shape (n_samples, n_classes)
    """
    model_classes(model)
    probabilities = np.atleast_2d(model.predict_proba(x))
    if getattr(model, "output", "softmax") == "logistic":
        return np.concatenate([1 - probabilities, probabilities], axis=1)
    return probabilities


def evaluate(model, data: EvaluationData) -> Evaluation:
    """Run ``model`` over ``data`` and score its predictions.

    Parameters
    ----------
    model : MLP
    data : EvaluationData
        From ``evaluation_data``; its class names must match the model's
        number of classes (2 for a model of one logistic unit, a binary
        classifier: class 1 where its probability is above 1/2).

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        If the classes do not match, or the model is not a classifier of
        one label (``model_classes``).
    """
    n_classes = model_classes(model)
    if len(data.class_names) != n_classes:
        raise ValueError(f"the model has {n_classes} classes but {data.source} has "
                         f"{len(data.class_names)} ({', '.join(data.class_names)})")
    probabilities = class_probabilities(model, data.x)
    # (for one logistic unit, argmax of [1 - p, p] is p > 1/2, as MLP.predict decides:
    # 1 - p is exact for p >= 1/2)
    y_pred = probabilities.argmax(axis=1)
    y_true = np.asarray(data.y, dtype=np.int64)
    report = classification_report(y_true, y_pred, n_classes)
    confidence = probabilities[np.arange(len(y_pred)), y_pred]
    return Evaluation(report, data.class_names, y_true, y_pred, confidence, data.source)
