"""Accuracy, confusion matrix and per-class scores, checked by hand and against scikit-learn."""

import numpy as np
import pytest

from fastmlp.metrics import classification_report, confusion_matrix


def test_a_small_case_worked_by_hand():
    # class 0: both right; class 1: one of three right, two called 2; class 2: right;
    # class 3: neither present nor predicted, so every score is 0 (zero_division=0)
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 0, 1, 2, 2, 2]
    report = classification_report(y_true, y_pred, 4)
    np.testing.assert_array_equal(report.confusion, [[2, 0, 0, 0], [0, 1, 2, 0],
                                                     [0, 0, 1, 0], [0, 0, 0, 0]])
    assert report.accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(report.precision, [1, 1, 1 / 3, 0])
    np.testing.assert_allclose(report.recall, [1, 1 / 3, 1, 0])
    np.testing.assert_allclose(report.f1, [1, 0.5, 0.5, 0])
    np.testing.assert_array_equal(report.support, [2, 3, 1, 0])
    assert report.macro() == pytest.approx(((1 + 1 + 1 / 3) / 4, (1 + 1 / 3 + 1) / 4, 2 / 4))
    assert report.weighted() == pytest.approx(
        ((2 + 3 + 1 / 3) / 6, (2 + 1 + 1) / 6, (2 + 1.5 + 0.5) / 6))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n_classes = 7
    y_true = rng.integers(0, n_classes, 500)
    # mostly right, some confusions, and class 6 never predicted
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, n_classes, 500))
    y_pred[y_pred == 6] = 5
    labels = list(range(n_classes))
    report = classification_report(y_true, y_pred, n_classes)
    np.testing.assert_array_equal(report.confusion,
                                  metrics.confusion_matrix(y_true, y_pred, labels=labels))
    assert report.accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred), rel=1e-12)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    np.testing.assert_allclose(report.precision, precision, rtol=1e-12)
    np.testing.assert_allclose(report.recall, recall, rtol=1e-12)
    np.testing.assert_allclose(report.f1, f1, rtol=1e-12)
    np.testing.assert_array_equal(report.support, support)
    for average, ours in (("macro", report.macro()), ("weighted", report.weighted())):
        theirs = metrics.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0)[:3]
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_labels_out_of_range_or_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match=r"y_pred has labels outside \[0, 3\)"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="y_true has 3 labels but y_pred has 2"):
        confusion_matrix([0, 1, 2], [0, 1], 3)
