"""The numba backend's own ``exp`` and ``log`` (``_elementary``): within one ulp of the
correctly rounded value over their whole ranges, exact at the special values, and the
ones the kernels use (so their bits do not come from the C library)."""

import inspect

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402

from fastmlp.backends.numba import _elementary, _kernels  # noqa: E402


@njit
def exp_of(v):
    out = v.copy()
    _elementary.inplace_exp(out)
    return out


@njit
def log_of(v):
    out = np.empty(v.shape[0])
    for i in range(v.shape[0]):
        out[i] = _elementary.log(v[i])
    return out


def ulps(got, x, function, dtype):
    """|got - f(x)| in units of the last place of f(x) rounded to dtype, f in long double."""
    want = function(x.astype(np.longdouble))
    spacing = np.spacing(np.abs(want.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - want) / spacing


pytestmark = pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps,
                                reason="needs an extended long double as the reference")


@pytest.mark.parametrize("dtype, low, high", [(np.float32, -87.3, 88.7),
                                              (np.float64, -708.3, 709.7)])
def test_exp_is_within_one_ulp_over_its_normal_range(dtype, low, high):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(low, high, 400_001), rng.uniform(-1, 1, 200_000),
                        rng.uniform(-30, 0, 200_000)]).astype(dtype)  # softmax's inputs
    got = exp_of(x)
    assert got.dtype == dtype
    assert ulps(got, x, np.exp, dtype).max() < 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_at_the_edges_and_special_values(dtype):
    info = np.finfo(dtype)
    tiny = float(np.log(np.longdouble(info.smallest_subnormal)))
    x = np.linspace(tiny - 2, float(np.log(np.longdouble(info.tiny))), 10_001).astype(dtype)
    got = exp_of(x)
    want = np.exp(x.astype(np.longdouble)).astype(dtype)  # subnormal: within one of its steps
    assert np.abs(got - want).max() <= info.smallest_subnormal
    specials = np.array([np.nan, np.inf, -np.inf, 0, -0.0, 1e30, -1e30, 1], dtype)
    got = exp_of(specials)
    np.testing.assert_array_equal(got[1:7], np.array([np.inf, 0, 1, 1, np.inf, 0], dtype))
    assert np.isnan(got[0])
    assert got[7] == dtype(np.e)  # e rounds correctly
    overflow = np.nextafter(np.log(info.max), dtype(np.inf), dtype=dtype)
    assert exp_of(np.array([np.log(info.max), overflow], dtype)).tolist()[1] == np.inf


def test_log_is_within_one_ulp_over_its_range():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.exp(rng.uniform(-744, 709, 400_000)), rng.uniform(0.5, 2, 200_000),
                        np.linspace(1 - 1e-6, 1 + 1e-6, 100_001), rng.uniform(0, 1e-300, 1000),
                        np.float32(np.exp(rng.uniform(-100, 0, 100_000))).astype(np.float64)])
    x = x[x != 1]
    assert ulps(log_of(x), x, np.log, np.float64).max() < 1


def test_log_at_special_values():
    x = np.array([1, 0, -0.0, np.inf, -1, -np.inf, np.nan, 5e-324, np.e])
    got = log_of(x)
    np.testing.assert_array_equal(got[:4], [0, -np.inf, -np.inf, np.inf])
    assert np.isnan(got[4:7]).all()
    assert got[7] == np.log(5e-324) and got[8] == 1.0


def test_the_kernels_use_them_and_no_c_library_exp_or_log():
    source = inspect.getsource(_kernels)
    assert "_elementary.inplace_exp" in source and "_elementary.log" in source
    for name in ("np.exp", "np.log", "math.exp", "math.log"):
        assert name not in source


def test_softmax_of_the_kernels_matches_numpy():
    rng = np.random.default_rng(2)
    for dtype, rtol in ((np.float32, 1e-6), (np.float64, 1e-15)):
        z = (rng.standard_normal((50, 10)) * 30).astype(dtype)
        out = np.empty_like(z)
        _kernels.softmax(z, out)
        e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=rtol * 10,
                                   atol=np.finfo(dtype).tiny)


def test_adams_bias_correction_power_has_the_same_bits_in_python_and_in_the_kernels():
    from fastmlp.optim import integer_power

    @njit
    def kernel_power(base, n):
        return _kernels._integer_power(base, n)

    rng = np.random.default_rng(3)
    for base in [0.9, 0.999, 0.5, 1.0, 0.0, *rng.uniform(0.8, 1, 20)]:
        for n in [0, 1, 2, 3, 7, 100, 469, 4690, 12345, 2**20 + 3]:
            got = integer_power(base, n)
            assert got == kernel_power(base, n)
            # each squaring doubles the relative error: about n ulps at most
            assert got == pytest.approx(float(base) ** n, rel=(n + 1) * 2.3e-16, abs=1e-300)


@njit
def apply_of(v, function):
    out = v.copy()
    if function == 0:
        _elementary.inplace_expm1(out)
    elif function == 1:
        _elementary.inplace_tanh(out)
    else:
        _elementary.inplace_logistic(out)
    return out


def _logistic(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code, function", [(0, np.expm1), (1, np.tanh), (2, _logistic)])
def test_expm1_tanh_and_logistic_are_within_three_ulps(dtype, code, function):
    # no cancellation near 0 (expm1 and tanh keep their relative accuracy there)
    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-40, 40, 200_001), rng.uniform(-1, 1, 100_000),
                        np.geomspace(1e-30, 1, 2_000), -np.geomspace(1e-30, 1, 2_000)])
    x = x.astype(dtype)
    got = apply_of(x, code)
    assert got.dtype == dtype
    with np.errstate(over="ignore"):
        error = ulps(got, x, function, dtype)
    assert error[np.isfinite(error)].max() < 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expm1_tanh_and_logistic_at_special_values(dtype):
    top = float(np.log(np.finfo(dtype).max))
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4, top * 0.999], dtype)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(apply_of(x, 0)[:7], [0, 0, np.inf, -1, np.nan, np.inf, -1])
        assert ulps(apply_of(x, 0)[7:], x[7:], np.expm1, dtype).max() < 3  # near overflow
    tanh = apply_of(x, 1)
    np.testing.assert_array_equal(tanh[:7], [0, -0.0, 1, -1, np.nan, 1, -1])
    assert np.signbit(tanh[1]) and not np.signbit(tanh[0])
    np.testing.assert_array_equal(apply_of(x, 2)[:7], [0.5, 0.5, 1, 0, np.nan, 1, 0])
