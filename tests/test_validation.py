"""Input checks: the finiteness test's fast path finds every NaN and inf the full test does."""

import re
import tracemalloc

import numpy as np
import pytest

from fastmlp._validation import _FINITE_PIECE, check_features

WIDTH = 784
ROWS = 3 * _FINITE_PIECE // WIDTH + 5  # several pieces of rows, the last one short
LAST_ROW_OF_A_PIECE = _FINITE_PIECE // WIDTH - 1


def message(bad, name="x"):
    return re.escape(f"{name} contains {bad}; inputs must be finite")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("where", [(0, 0), (-1, -1), (LAST_ROW_OF_A_PIECE, -1),
                                   (LAST_ROW_OF_A_PIECE + 1, 0)],
                         ids=["first", "last", "end-of-a-piece", "start-of-the-next"])
@pytest.mark.parametrize("bad, value", [("NaN", np.nan), ("inf", np.inf), ("inf", -np.inf)])
def test_every_nan_and_inf_is_found(dtype, where, bad, value):
    x = np.random.default_rng(0).random((ROWS, WIDTH)).astype(dtype)
    x[where] = value
    with pytest.raises(ValueError, match=message(bad)):
        check_features(x, WIDTH)
    with pytest.raises(ValueError, match=message(bad, "x_val")):
        check_features(np.asfortranarray(x), WIDTH, "x_val")
    with pytest.raises(ValueError, match=message(bad)):
        check_features(x[where[0]], WIDTH)  # one sample


def test_nan_is_named_before_inf_wherever_they_are():
    x = np.zeros((ROWS, WIDTH), np.float32)
    x[1, 1] = np.inf
    x[-1, -1] = np.nan  # pieces later
    with pytest.raises(ValueError, match=message("NaN")):
        check_features(x, WIDTH)


def test_opposite_infinities_are_inf_though_their_sum_is_nan():
    x = np.zeros((ROWS, WIDTH), np.float32)
    x[0, 0], x[-1, -1] = np.inf, -np.inf
    with pytest.raises(ValueError, match=message("inf")):
        check_features(x, WIDTH)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_finite_values_whose_sum_overflows_pass(dtype):
    x = np.full((ROWS, WIDTH), np.finfo(dtype).max / 2, dtype)
    with np.errstate(over="ignore"):
        assert not np.isfinite(x.sum())
    assert check_features(x, WIDTH) is x
    x[-1, -1] = np.nan  # and among them a NaN is still found
    with pytest.raises(ValueError, match=message("NaN")):
        check_features(x, WIDTH)


def test_finite_inputs_cost_no_array_of_booleans():
    x = np.random.default_rng(1).random((ROWS, WIDTH)).astype(np.float32)
    tracemalloc.start()
    try:
        check_features(x, WIDTH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**12 < x.size // 10  # no booleans of x (x.size bytes), nor of a piece


def test_check_finite_false_skips_only_the_finiteness_test():
    x = np.full((3, 4), np.nan)
    assert check_features(x, 4, check_finite=False) is x
    with pytest.raises(ValueError, match="x has 4 features per sample but the model expects 5"):
        check_features(x, 5, check_finite=False)
