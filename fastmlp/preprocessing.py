"""Input scaling, fitted on training data and stored with the model."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ._validation import check_sample_weight, refuse_sparse

# Values per piece when statistics are computed piece by piece: the float64 (or
# uint16) working copy of a piece stays in cache, and a piece of uint8 values
# has sums of x and x**2 below 2**32 (65536 * 255**2 < 2**32).
_PIECE = 1 << 16
# Integers up to this magnitude have exact float64 piece sums of x and x**2
# (at most 2**16 * 2**32 = 2**48 < 2**53, whatever the order of summation).
_EXACT_LIMIT = 2.0**16
# Values whose mean is more than this many standard deviations from 0 are shifted
# by it (see _moments); below it, the shift gains less than an ulp.
_FAR = 64


class InputScaler:
    """Standardise raw inputs with one mean and one standard deviation.

    A fitted scaler is a fixed function of the input *values*, whatever dtype
    or container carries them: ``transform`` returns ``scale * x + offset``
    with ``(scale, offset) = affine()``, so ``uint8`` images, an ``int64`` or
    ``float64`` array and a Python list of the same pixel values give
    bit-identical results. No dtype is special-cased (``uint8`` is not divided
    by 255): ``fit`` learns the mean and the (population) standard deviation of
    all training values as given, one scalar each, as in the classic MNIST
    recipe ``(x - 0.1307) / 0.3081`` (in units of 0-255 pixels, ``(x - 33.32) /
    78.57``). With ``standardize=False`` the scaler is the identity and only
    casts to the model's dtype.

    The statistics of integers of magnitude up to 65536 (in any dtype, floats
    holding whole numbers included) are computed from exact sums: the mean is
    correctly rounded and the standard deviation is the square root of the
    correctly rounded variance, so they do not depend on the dtype either.
    Other values are accumulated in float64 piece by piece (Chan et al.'s
    pairwise update), without a float64 copy of the whole input, and shifted
    by their mean when that is far from 0 (more than 64 standard deviations),
    so that it costs no digits of the standard deviation.

    Parameters
    ----------
    standardize : bool
        Learn a mean and standard deviation in ``fit`` and apply them.

    Attributes
    ----------
    mean, std : float
        The training values' mean and standard deviation (0 and 1 before
        ``fit``; ``std`` is 1 when the training values are all equal).
    fitted : bool
        Whether ``fit`` has run.

    Examples
    --------
    >>> import numpy as np
    >>> scaler = InputScaler().fit(np.array([[0, 255], [0, 255]], dtype=np.uint8))
    >>> scaler.mean, scaler.std
    (127.5, 127.5)
    >>> scaler.transform([[0, 255]], np.float32)
    array([[-1.,  1.]], dtype=float32)
    >>> scaler.transform(np.array([[0.0, 255.0]]), np.float32)
    array([[-1.,  1.]], dtype=float32)
    """

    def __init__(self, standardize: bool = True):
        self.standardize = standardize
        self.mean = 0.0
        self.std = 1.0
        self.fitted = False

    def fit(self, x, sample_weight=None) -> InputScaler:
        """Learn the mean and standard deviation of all values of ``x``.

        Parameters
        ----------
        x : array_like of real numbers
            Raw training inputs, any shape and dtype.
        sample_weight : array_like of float, shape (len(x),), optional
            Finite, non-negative weight of each sample (each ``x[i]``), not all
            0: the weighted mean and standard deviation, every value of
            ``x[i]`` weighing ``sample_weight[i]``. Integer weights give the
            statistics of the samples repeated that many times: the same
            numbers exactly where those are computed from exact sums (see
            above), to rounding otherwise.

        Returns
        -------
        InputScaler
            ``self``.

        Raises
        ------
        TypeError
            If ``x`` does not hold real numbers, or is a SciPy sparse matrix.
        ValueError
            If ``x`` is empty, or its statistics are not finite (NaN or inf in
            ``x``, or values whose spread overflows float64).
        """
        refuse_sparse(x)
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.size == 0:
            raise ValueError("cannot fit the input scaler on an empty array")
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(x) if x.ndim else 1)
            if not sample_weight.any():
                raise ValueError("sample_weight is zero for every sample; at least one "
                                 "weight must be positive")
        if self.standardize:
            mean, std = _moments(x) if sample_weight is None else _weighted_moments(
                x, sample_weight)
            if not (math.isfinite(mean) and math.isfinite(std)):
                raise ValueError(
                    f"the mean and standard deviation of x are {mean} and {std}; "
                    "x must be finite and its spread must fit in float64"
                )
            self.mean = mean
            self.std = std if std > 0 else 1.0
        self.fitted = True
        return self

    def affine(self) -> tuple[float, float]:
        """``(scale, offset)`` such that the scaled input is ``scale * x + offset``.

        Returns
        -------
        scale, offset : float
            ``(1 / std, -mean / std)``, or ``(1.0, 0.0)`` without standardisation.
        """
        if not self.standardize:
            return 1.0, 0.0
        return 1.0 / self.std, -self.mean / self.std

    def transform(self, x, dtype) -> np.ndarray:
        """Return ``scale * x + offset`` as a new array of ``dtype`` (never a view of ``x``).

        ``x`` is cast to ``dtype`` first, which is exact for every integer up
        to 2**24 in float32, so any carrier of the same values gives the same
        result.

        Parameters
        ----------
        x : array_like of real numbers
        dtype : float32 or float64

        Returns
        -------
        ndarray
            Shaped like ``x``.
        """
        dtype = np.dtype(dtype)
        scale, offset = self.affine()
        out = np.multiply(np.asarray(x), dtype.type(scale), dtype=dtype)
        if offset:
            out += dtype.type(offset)
        return out


def _pieces(x: np.ndarray) -> Iterator[np.ndarray]:
    """The values of non-empty ``x`` in C order, as 1-D arrays of at most ``_PIECE`` values.

    Pieces end at the same places whatever the memory layout of ``x``, and
    only a piece is ever copied (for a non-contiguous ``x``).
    """
    if x.ndim < 2:
        x = x.reshape(-1, 1)
    # rows of x are sliced before they are flattened: flattening a whole
    # non-contiguous x (Fortran-ordered images, say) would copy all of it
    rows_per_piece = max(1, _PIECE // math.prod(x.shape[1:]))
    for begin in range(0, len(x), rows_per_piece):
        values = x[begin:begin + rows_per_piece].ravel()
        for start in range(0, values.size, _PIECE):
            yield values[start:start + _PIECE]


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation of all values of non-empty ``x``."""
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    if x.dtype == np.uint8:
        return _exact_moments(x.size, *_byte_sums(x))
    whole = x.dtype.kind in "iu"
    # int8, int16, uint16: every value of the dtype is a small integer
    limits = np.iinfo(x.dtype) if whole else None
    small_dtype = whole and limits.min >= -_EXACT_LIMIT and limits.max <= _EXACT_LIMIT
    # A piece is tested for small integers as it is where that is exact and reads
    # fewer bytes (integers, float32), else as float64 values.
    raw = whole or x.dtype == np.float32
    rounding = None if whole else np.empty(_PIECE, x.dtype if raw else np.float64)
    # One float64 work array, made once, which stays in cache: a piece's values (unless
    # x holds float64), then in place their squares or deviations. Squares and sums,
    # not np.dot: a BLAS call per piece spins up BLAS threads, which crawl on a busy
    # machine.
    work = np.empty(_PIECE)
    convert = x.dtype != np.float64
    n = total = total_squares = 0  # exact sums while every piece holds small integers
    mean = m2 = 0.0  # running mean less shift, sum of squared deviations, once one does not
    exact = True
    # Chan's update subtracts piece means, whose rounding loses the digits a mean far
    # from 0 takes (the std of 1e6 + N(0, 3**2) kept 13 of 16 digits), so once a piece
    # is not exact, values are shifted by the mean so far if it is more than _FAR
    # standard deviations from 0: the differences are then of the size of the spread.
    shift = None
    with np.errstate(invalid="ignore", over="ignore"):  # NaN, inf, overflow: fit reports them
        for piece in _pieces(x):
            size = piece.size
            values = piece
            if convert:
                values = work[:size]
                np.copyto(values, piece)
            if exact:
                if small_dtype or _small_integers(piece if raw else values, rounding):
                    total += int(np.add.reduce(values))
                    total_squares += int(np.add.reduce(np.square(values, out=work[:size])))
                    n += size
                    continue
                exact = False
                if n:
                    far = total * total * (_FAR**2 + 1) > _FAR**2 * n * total_squares
                    shift = total / n if far else 0.0
                    numerator, denominator = shift.as_integer_ratio()
                    mean = (total * denominator - n * numerator) / (n * denominator)
                    m2 = (n * total_squares - total * total) / n
            if shift:
                values = np.subtract(values, shift, out=work[:size])
            # Chan, Golub and LeVeque's update of (n, mean, m2) with the piece's own statistics
            piece_mean = float(np.add.reduce(values)) / size
            deviations = np.subtract(values, piece_mean, out=work[:size])
            first = shift is None
            if first:  # the piece's mean less piece_mean, to rounding
                residual = float(np.add.reduce(deviations)) / size
            piece_m2 = float(np.add.reduce(np.square(deviations, out=deviations)))
            if first:
                far = piece_mean * piece_mean * size > _FAR**2 * piece_m2
                shift = piece_mean if far else 0.0
                if shift:
                    piece_mean = residual
            merged = n + size
            delta = piece_mean - mean
            mean += delta * size / merged
            m2 += piece_m2 + delta * delta * (n * size / merged)
            n = merged
    if exact:
        return _exact_moments(n, total, total_squares)
    return shift + mean, math.sqrt(m2 / n)


def _weighted_moments(x: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation of the values of ``x``, every value of
    ``x[i]`` weighing ``weights[i]`` (non-negative, not all 0)."""
    rows = x if x.ndim else x.reshape(1)
    if rows.dtype == np.bool_:
        rows = rows.view(np.uint8)
    width = math.prod(rows.shape[1:])
    sums, squares, exact = _row_sums(rows, 0.0)
    whole = np.array_equal(weights, np.rint(weights)) and weights.max() < 2.0**53
    if exact and whole:
        # integer weights of rows of small integers: exact sums in Python integers,
        # the very sums _moments takes of the rows repeated
        counts = weights.astype(np.int64).astype(object)
        total = int(np.dot(counts, sums.astype(np.int64).astype(object)))
        total_squares = int(np.dot(counts, squares.astype(np.int64).astype(object)))
        return _exact_moments(int(counts.sum()) * width, total, total_squares)
    # NaN, inf, overflow: fit reports them. Products and sums, not np.dot: a BLAS dot of
    # this length wakes OpenBLAS's threads, which then spin through the first epoch
    # (it ran 50-70 ms slower on MNIST)
    with np.errstate(invalid="ignore", over="ignore"):
        n = float(weights.sum()) * width
        mean = float((weights * sums).sum()) / n
        _, deviations, _ = _row_sums(rows, mean)
        return mean, math.sqrt(float((weights * deviations).sum()) / n)


def _row_sums(rows: np.ndarray, center: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Each row's sum of ``values - center`` and of their squares, in float64, some rows
    at a time; and whether both are exact (``center`` 0 and every value an integer of
    magnitude at most ``_EXACT_LIMIT``: every partial sum is then an integer below 2**53).

    A row is ``rows[i]`` flattened (``rows`` has at least one dimension); rows are
    sliced before they are flattened, so a non-contiguous ``rows`` is copied a piece
    at a time.
    """
    n, width = len(rows), math.prod(rows.shape[1:])
    sums, squares = np.empty(n), np.empty(n)
    exact = center == 0 and width <= 2**20
    whole = rows.dtype.kind in "iu"
    scratch = np.empty(max(_PIECE, width))
    rows_per_piece = max(1, _PIECE // width)
    if rows.dtype == np.uint8 and center == 0 and width <= 2**16:
        # integer sums, as _byte_sums takes them: 4x faster than through float64
        squares_piece = np.empty((rows_per_piece, width), np.uint16)
        for begin in range(0, n, rows_per_piece):
            piece = rows[begin:begin + rows_per_piece].reshape(-1, width)
            piece_squares = squares_piece[:len(piece)]
            np.multiply(piece, piece, out=piece_squares, dtype=np.uint16)
            sums[begin:begin + len(piece)] = piece.sum(axis=1, dtype=np.uint32)
            squares[begin:begin + len(piece)] = piece_squares.sum(axis=1, dtype=np.uint32)
        return sums, squares, True
    with np.errstate(invalid="ignore", over="ignore"):
        for begin in range(0, n, rows_per_piece):
            piece = rows[begin:begin + rows_per_piece].reshape(-1, width).astype(np.float64)
            if center:
                piece -= center
            if exact:
                exact = _small_integers(piece.ravel(), None if whole else scratch)
            sums[begin:begin + len(piece)] = piece.sum(axis=1)
            squares[begin:begin + len(piece)] = np.square(piece, out=piece).sum(axis=1)
    return sums, squares, exact


def _small_integers(values: np.ndarray, rounding: np.ndarray | None) -> bool:
    """Whether real ``values`` are integers of magnitude at most ``_EXACT_LIMIT``.

    ``rounding`` is None for values of an integer dtype, else a work array of
    their float dtype holding at least as many values (rounding is exact in it).
    """
    if not (values.min() >= -_EXACT_LIMIT and values.max() <= _EXACT_LIMIT):  # False for NaN
        return False
    return rounding is None or np.array_equal(values, np.rint(values, out=rounding[:values.size]))


def _byte_sums(x: np.ndarray) -> tuple[int, int]:
    """Exact sums of the values of uint8 ``x`` and of their squares."""
    # Integer arithmetic on pieces: three times faster than np.bincount, which
    # converts every byte to intp, and exact (a piece's sums stay below 2**32).
    squares = np.empty(_PIECE, np.uint16)
    total = total_squares = 0
    for piece in _pieces(x):
        piece_squares = squares[:piece.size]
        np.multiply(piece, piece, out=piece_squares, dtype=np.uint16)
        total += int(piece.sum(dtype=np.uint32))
        total_squares += int(piece_squares.sum(dtype=np.uint32))
    return total, total_squares


def _exact_moments(n: int, total: int, total_squares: int) -> tuple[float, float]:
    """Mean and standard deviation from exact integer sums, each rounded once (then sqrt)."""
    # Python's int / int is correctly rounded, and the numerator is exact.
    variance = (n * total_squares - total * total) / (n * n)
    return total / n, math.sqrt(variance)


from .images import to_mnist as to_mnist  # noqa: E402  (re-exported: pictures to MNIST digits)
