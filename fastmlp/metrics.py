"""Classification metrics in NumPy: accuracy, confusion matrix, per-class precision, recall, F1.

The definitions are scikit-learn's (``sklearn.metrics``), which the tests check
them against; a class that is never predicted gets precision 0, as with
scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClassReport", "classification_report", "confusion_matrix"]


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Count of samples of true class ``i`` predicted as class ``j``.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n_samples,)
        Class indices in ``[0, n_classes)``.
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
        Rows are true classes, columns predicted classes.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"{name} has labels outside [0, {n_classes})")
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


@dataclass
class ClassReport:
    """Per-class scores from a confusion matrix (see ``classification_report``).

    Attributes
    ----------
    confusion : ndarray of int, shape (n_classes, n_classes)
        Rows true classes, columns predicted classes.
    precision, recall, f1 : ndarray of float, shape (n_classes,)
        ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
        ``f1 = 2 precision recall / (precision + recall)``; 0 where the
        denominator is 0.
    support : ndarray of int, shape (n_classes,)
        Samples of each true class.
    """

    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    @property
    def accuracy(self) -> float:
        """Share of samples on the diagonal."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    def macro(self) -> tuple[float, float, float]:
        """Unweighted means of precision, recall and F1 over the classes."""
        return float(self.precision.mean()), float(self.recall.mean()), float(self.f1.mean())

    def weighted(self) -> tuple[float, float, float]:
        """Means of precision, recall and F1 weighted by each class's support."""
        total = self.support.sum()
        if not total:
            return 0.0, 0.0, 0.0
        weights = self.support / total
        return (float(self.precision @ weights), float(self.recall @ weights),
                float(self.f1 @ weights))


def _ratio(numerator, denominator):
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator),
                     where=denominator > 0)


def classification_report(y_true, y_pred, n_classes: int) -> ClassReport:
    """Accuracy, confusion matrix and per-class precision, recall, F1 and support.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n_samples,)
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Classes absent from both arrays still get a row (all zeros).

    Returns
    -------
    ClassReport

    Examples
    --------
    >>> report = classification_report([0, 1, 1, 2], [0, 2, 1, 2], 3)
    >>> report.accuracy, report.precision.tolist(), report.recall.tolist()
    (0.75, [1.0, 1.0, 0.5], [1.0, 0.5, 1.0])
    """
    confusion = confusion_matrix(y_true, y_pred, n_classes)
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return ClassReport(confusion, precision, recall, f1, support)
