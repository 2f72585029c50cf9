"""The input scaler: one fixed function of the input values, whatever dtype carries them."""

import math
import tracemalloc

import numpy as np
import pytest

from fastmlp.preprocessing import _PIECE, InputScaler


def pixels(shape=(50, 12), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def exact_moments(values):
    """Mean and standard deviation of integer ``values``, from their exact sums."""
    values = [int(v) for v in np.ravel(values)]
    n, total, squares = len(values), sum(values), sum(v * v for v in values)
    return total / n, math.sqrt((n * squares - total * total) / (n * n))


def carriers(x):
    """The values of uint8 ``x`` in every dtype, container and layout a user might hand over."""
    return {
        "uint8": x,
        "int64": x.astype(np.int64),
        "int16": x.astype(np.int16),
        "uint16": x.astype(np.uint16),
        "float32": x.astype(np.float32),
        "float64": x.astype(np.float64),
        "list": x.tolist(),
        "fortran": np.asfortranarray(x),
        "strided": np.repeat(x, 2, axis=-1)[..., ::2],
        "read-only": np.frombuffer(x.tobytes(), np.uint8).reshape(x.shape),
    }


def test_fit_learns_the_mean_and_std_of_the_values_as_given():
    x = pixels()
    scaler = InputScaler().fit(x)
    assert (scaler.mean, scaler.std) == exact_moments(x)  # no division by 255
    assert scaler.mean == pytest.approx(x.mean(), rel=1e-15)
    assert scaler.std == pytest.approx(x.std(), rel=1e-14)
    assert scaler.fitted and scaler.affine() == (1 / scaler.std, -scaler.mean / scaler.std)


@pytest.mark.parametrize("shape", [(3 * _PIECE + 5,), (3, _PIECE + 7), (700, 200), (5, 4, 3)],
                         ids=["long-1-D", "rows-wider-than-a-piece", "many-rows", "3-D"])
def test_statistics_are_exact_and_the_same_for_every_carrier(shape):
    x = pixels(shape, seed=1)
    want = exact_moments(x)
    for name, values in carriers(x).items():
        scaler = InputScaler().fit(values)
        assert (scaler.mean, scaler.std) == want, name


def test_booleans_and_negative_integers():
    flags = np.random.default_rng(2).random((40, 9)) < 0.3
    assert (InputScaler().fit(flags).mean, InputScaler().fit(flags).std) == exact_moments(flags)
    signed = np.random.default_rng(3).integers(-300, 300, (40, 9))
    want = exact_moments(signed)
    for values in (signed, signed.astype(np.int16), signed.astype(np.float64)):
        scaler = InputScaler().fit(values)
        assert (scaler.mean, scaler.std) == want


@pytest.mark.parametrize("values", [
    np.random.default_rng(4).standard_normal((300, 500)) * 3 + 1e6,  # naive E[x²] - E[x]² fails
    np.random.default_rng(5).random(3 * _PIECE) * 1e-3,
    np.concatenate([np.arange(2 * _PIECE, dtype=float), [0.5]]),  # whole numbers, then not
    np.concatenate([np.arange(_PIECE, dtype=float), [1e9, 3.0]]),  # too large to sum exactly
], ids=["large-mean", "small-spread", "integers-then-a-fraction", "integers-then-a-huge-one"])
def test_statistics_of_other_values_match_numpy(values):
    scaler = InputScaler().fit(values)
    assert scaler.mean == pytest.approx(np.mean(values), rel=1e-13)
    assert scaler.std == pytest.approx(np.std(values), rel=1e-10)


def exact_float_moments(values):
    """Mean and standard deviation of float ``values`` from exact rational sums: the mean
    correctly rounded, the standard deviation within an ulp (the root of the correctly
    rounded variance)."""
    distinct, counts = np.unique(np.ravel(values).astype(np.float64), return_counts=True)
    ratios = [v.as_integer_ratio() for v in distinct.tolist()]
    scale = max(denominator for _, denominator in ratios)  # a power of 2
    numerators = [numerator * (scale // denominator) for numerator, denominator in ratios]
    counts = counts.tolist()
    n = sum(counts)
    total = sum(k * c for k, c in zip(numerators, counts))
    squares = sum(k * k * c for k, c in zip(numerators, counts))
    return total / (n * scale), math.sqrt((n * squares - total * total) / (n * scale) ** 2)


@pytest.mark.parametrize("values", [
    (np.random.default_rng(6).integers(0, 256, (300, 784)) / 255).astype(np.float32),
    np.random.default_rng(6).standard_normal(3 * _PIECE),
    np.random.default_rng(6).random(3 * _PIECE) * 1e-3,
    # a mean far from 0: Chan's update unshifted kept 13 of 16 digits of the std
    np.random.default_rng(6).standard_normal((300, 500)) * 3 + 1e6,
    (np.random.default_rng(6).standard_normal((300, 500)) * 3 + 1e4).astype(np.float32),
    np.linspace(0, 1, 4 * _PIECE) ** 2 + 1e3,
    # exact sums, then a fraction: the shift comes from the exact pieces (once 2216 ulps off)
    np.concatenate([60_000 + np.random.default_rng(6).integers(0, 10, 2 * _PIECE),
                    60_000.5 + np.random.default_rng(6).random(_PIECE + 5)]),
], ids=["pixels/255-float32", "normal", "small-spread", "far-mean", "far-mean-float32",
        "far-mean-drifting", "far-integers-then-fractions"])
def test_statistics_of_float_values_are_within_two_ulps_of_the_exact_ones(values):
    mean, std = exact_float_moments(values)
    scaler = InputScaler().fit(values)
    assert abs(scaler.mean - mean) <= 2 * np.spacing(abs(mean) + std)
    assert abs(scaler.std - std) <= 2 * np.spacing(std)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int16])
def test_fit_makes_no_float64_copy_of_its_input(dtype):
    x = np.random.default_rng(7).integers(0, 256, (4000, 784)).astype(dtype)
    if dtype != np.int16:  # int16: exact sums; the others not: Chan's update after a piece
        x[200, 0] = 0.5 if x.dtype.kind == "f" else 70_000
    tracemalloc.start()
    try:
        InputScaler().fit(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**21 < x.size * 8 / 10  # a few pieces' work arrays (2 MB) at most


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_fit_copies_no_more_than_a_piece_of_non_contiguous_images(dtype):
    # (n, 28, 28) images in Fortran order: each piece of rows is flattened alone
    x = np.asfortranarray(pixels((12000, 28, 28), seed=8).astype(dtype))
    x[7, 3, 4] = 0.5 if x.dtype.kind == "f" else x[7, 3, 4]
    weights = np.arange(len(x)) % 3 + 0.5
    for sample_weight in (None, weights):
        want = InputScaler().fit(np.ascontiguousarray(x), sample_weight)
        tracemalloc.start()
        try:
            got = InputScaler().fit(x, sample_weight)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (got.mean, got.std) == (want.mean, want.std)
        assert peak < 3 * 2**20 < x.nbytes / 2  # a few pieces (the input: 9 or 38 MB)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_is_scale_times_x_plus_offset_for_every_carrier(dtype):
    x = pixels()
    scaler = InputScaler().fit(x)
    scale, offset = scaler.affine()
    want = dtype(scale) * x.astype(dtype) + dtype(offset)
    for name, values in carriers(x).items():
        got = scaler.transform(values, dtype)
        assert got.dtype == dtype and got.shape == x.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    rows = scaler.transform(x[3], dtype)  # one sample: the same values as its row in a batch
    np.testing.assert_array_equal(rows, want[3])


def test_uint8_images_are_standardised_as_in_the_classic_recipe():
    # The old rule mapped uint8 to [0, 1] first; standardising cancels that factor.
    x = pixels((200, 30))
    unit = x / 255.0
    scaled = InputScaler().fit(x).transform(x, np.float64)
    np.testing.assert_allclose(scaled, (unit - unit.mean()) / unit.std(), rtol=1e-12, atol=1e-12)
    assert scaled.mean() == pytest.approx(0, abs=1e-12) and scaled.std() == pytest.approx(1)


def test_without_standardisation_the_scaler_only_casts():
    x = pixels()
    scaler = InputScaler(standardize=False).fit(x)
    assert scaler.affine() == (1.0, 0.0) and (scaler.mean, scaler.std) == (0.0, 1.0)
    for name, values in carriers(x).items():
        got = scaler.transform(values, np.float32)
        assert got.dtype == np.float32, name
        np.testing.assert_array_equal(got, x.astype(np.float32), err_msg=name)  # 0-255 stays
    float32 = x.astype(np.float32)
    assert not np.shares_memory(scaler.transform(float32, np.float32), float32)


def test_constant_inputs_are_only_shifted():
    scaler = InputScaler().fit(np.full((4, 3), 7, np.uint8))
    assert (scaler.mean, scaler.std) == (7.0, 1.0)
    np.testing.assert_array_equal(scaler.transform([[7, 8, 6]], np.float64), [[0.0, 1.0, -1.0]])


def test_transform_leaves_its_input_alone():
    x = pixels()
    before = x.copy()
    InputScaler().fit(x).transform(x, np.float32)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("values, error, message", [
    (np.zeros((0, 4), np.uint8), ValueError, "cannot fit the input scaler on an empty array"),
    ([], ValueError, "empty array"),
    (np.array([["a", "b"]]), TypeError, "x must hold real numbers, got dtype <U1"),
    (np.array([1 + 2j]), TypeError, "x must hold real numbers, got dtype complex128"),
    (np.array([1.0, np.nan]), ValueError, "mean and standard deviation of x are nan and nan"),
    (np.array([1.0, np.inf]), ValueError, "x must be finite"),
    (np.array([1e300, -1e300]), ValueError, "its spread must fit in float64"),
])
def test_fit_refuses_what_it_cannot_standardise(values, error, message):
    scaler = InputScaler()
    with pytest.raises(error, match=message):
        scaler.fit(values)
    assert not scaler.fitted and (scaler.mean, scaler.std) == (0.0, 1.0)
