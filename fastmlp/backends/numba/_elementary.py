"""``exp``, ``log``, ``tanh`` and the logistic of our own, so that a kernel's bits do not
depend on the C library.

numba lowers ``np.exp`` and ``np.log`` to the C library's functions (or to a
vector maths library, where one is installed), and those differ in the last
bit between libraries, their versions and the CPU variants they pick at run
time. These are written in IEEE operations only (``+ - * /``, ``fma``,
conversions and bit casts), each exactly rounded by definition, so they give
the same bits on every machine:

``inplace_exp(v)``
    ``v[j] = exp(v[j])`` for a float32 or float64 array. With ``n = rint(x /
    ln 2)`` and ``r = x - n ln 2`` (``ln 2`` in two parts, each product taken
    by ``fma``), ``|r| <= ln 2 / 2`` and ``exp(x) = 2**n exp(r)``, where
    ``exp(r)`` is its Taylor polynomial to ``r**7`` (float32) or ``r**13``
    (float64) in Horner form, one ``fma`` per term: the truncation error is
    below a hundredth of an ulp. ``2**n`` is applied as two exact powers of
    two, so results in the subnormal range round once, as multiplication
    rounds. Beyond the range: ``inf`` and ``0``; NaN stays NaN.
``log(x)``
    ``log(x)`` of a float64, by fdlibm's ``e_log.c`` (Sun Microsystems, 1993;
    error below 1 ulp): ``x = 2**k (1 + f)`` with ``1 + f`` in ``[sqrt(2)/2,
    sqrt(2))``, ``s = f / (2 + f)``, and ``log(1 + f) = f - s (f - R(s**2))``
    with ``R`` a minimax polynomial of degree 7.

``inplace_tanh(v)``, ``inplace_logistic(v)``
    The activations, from the same steps as ``exp`` (see ``_tanh_for`` and
    ``_logistic_for``): within 3 ulp, with no cancellation near 0 (tanh) or
    far below it (logistic).

The tests check them against NumPy's (long double) values over their ranges.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._cache import cached_njit

_JIT = {"nogil": True, "error_model": "numpy", "inline": "always"}
# log, called at several sites of one kernel (the losses), is compiled once and called
# (LLVM may still inline it): numba-inlined, each site's copy was typed and lowered
# again, _output_loss_rows's three of them 0.45 s of its 1.1 s compile (2-core Zen 4).
# The same operations either way, the same bits.
_CALLED = {"nogil": True, "error_model": "numpy"}


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``), for three floats of one type."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        kind = args[0].type
        function = builder.module.declare_intrinsic("llvm.fma", [kind],
                                                    ir.FunctionType(kind, [kind] * 3))
        return builder.call(function, args)

    return a(a, b, c), codegen


_AS_INT = {types.float32: types.int32, types.float64: types.int64}
_AS_FLOAT = {value: key for key, value in _AS_INT.items()}


def _reinterpret(table):
    """An intrinsic giving a value's bits as another type: ``table`` maps each accepted
    type to the one of its width that it becomes (a bit cast, no conversion)."""

    @intrinsic
    def reinterpret(typingctx, value):
        if value not in table:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(signature.return_type))

        return table[value](value), codegen

    return reinterpret


as_int = _reinterpret(_AS_INT)  # the bits of a float32 (float64) as an int32 (int64)
as_float = _reinterpret(_AS_FLOAT)  # an int32's (int64's) bits as a float32 (float64)


@intrinsic
def rint(typingctx, x):
    """``x`` rounded to the nearest integer, ties to even (``llvm.rint``: exact)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        kind = args[0].type
        function = builder.module.declare_intrinsic("llvm.rint", [kind],
                                                    ir.FunctionType(kind, [kind]))
        return builder.call(function, args)

    return x(x), codegen


LOG2E = 1.4426950408889634
# ln 2 = LN2_HI + LN2_LO to 2**-110
LN2_HI, LN2_LO = 0.6931471805599453, 2.3190468138462996e-17
# 1 / k! for k = 0 .. 13
INVERSE_FACTORIALS = np.array([1 / math.factorial(k) for k in range(14)])


@cached_njit(**_JIT)
def _power_of_two(n, itemsize):
    # 2**n for n in the normal exponent range of the 4- or 8-byte float
    if itemsize == 4:
        return as_float(np.int32((n + 127) << 23))
    return as_float(np.int64((n + 1023) << 52))


def _exp_steps(y, nan):
    """``(n, r)`` of exp's reduction of one float32 or float64 ``y`` (``_exp_steps_for``)."""
    raise NotImplementedError("compiled code only")


@overload(_exp_steps)
def _exp_steps_for(y, nan):
    # n = rint(y / ln 2) (0 where y is NaN: no int conversion of NaN) and r = y - n ln 2,
    # ln 2 in two parts, each product taken by fma: |r| <= ln 2 / 2 and exp(y) = 2**n
    # exp(r). The first steps of exp, tanh and the logistic, in y's dtype.
    if y not in (types.float32, types.float64):
        return None
    cast = np.float32 if y == types.float32 else np.float64

    def steps(y, nan):
        log2e, hi = cast(LOG2E), cast(LN2_HI)
        lo = cast((LN2_HI - float(hi)) + LN2_LO)
        n = rint(y * log2e)
        n = cast(0) if nan else n
        return n, fma(-n, lo, fma(-n, hi, y))

    return steps


def _exp_of_dtype(v):
    """The loop of ``inplace_exp`` for ``v``'s dtype (``_exp_loop_for``)."""
    raise NotImplementedError("compiled code only")


@overload(_exp_of_dtype)
def _exp_loop_for(v):
    # The loop for v's dtype, its constants chosen as numba types the call: a test of
    # v.itemsize in compiled code compiled both dtypes' loops (softmax_rows and its exp
    # took 0.55 s to compile, 0.3 s this way). |x| beyond the limit gives inf or 0
    # (bias + mantissa bits + 3, times ln 2).
    degree, itemsize, bound = (7, 4, 153 * LN2_HI) if v.dtype == types.float32 else (
        13, 8, 1078 * LN2_HI)

    def exp_loop(v):
        # No branch in its body (NaN and the range are selects), so LLVM vectorises
        # it; each lane takes the same IEEE operations as a scalar would, so the
        # bits do not change.
        cast = v.dtype.type
        limit = cast(bound)
        for j in range(v.shape[0]):
            x = v[j]
            nan = x != x
            x = -limit if x < -limit else (limit if x > limit else x)
            n, r = _exp_steps(x, nan)
            p = cast(INVERSE_FACTORIALS[degree])
            for k in range(degree - 1, -1, -1):
                p = fma(p, r, cast(INVERSE_FACTORIALS[k]))
            m = np.int64(n)
            half = m >> 1
            e = p * _power_of_two(half, itemsize) * _power_of_two(m - half, itemsize)
            v[j] = v[j] if nan else e

    return exp_loop


@cached_njit(**_JIT)
def inplace_exp(v):
    """``v[j] = exp(v[j])`` for a 1-D float32 or float64 array (see the module's docstring)."""
    _exp_of_dtype(v)


# fdlibm e_log.c
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_TWO54 = 1.80143985094819840000e16
_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


@cached_njit(**_CALLED)
def log(x):
    """``log(x)`` of a float64 (see the module's docstring): NaN below 0, ``-inf`` at 0."""
    x = np.float64(x)
    if not x > 0:
        return x - x if x != x else (-np.inf if x == 0 else np.nan)
    if x == np.inf:
        return x
    k = 0
    if x < 2.2250738585072014e-308:  # subnormal: scale into the normal range
        x *= _TWO54
        k = -54
    bits = as_int(x)
    k += (bits >> 52) - 1023
    mantissa = bits & 0x000FFFFFFFFFFFFF
    hx = mantissa >> 32  # the mantissa's top 20 bits, fdlibm's hx
    # 1 + f in [sqrt(2)/2, sqrt(2)): the exponent of 1, or of 1/2 above sqrt(2)
    i = (hx + 0x95F64) & 0x100000
    m = as_float(np.int64(mantissa | ((i ^ 0x3FF00000) << 32)))
    k += i >> 20
    f = m - 1.0
    dk = float(k)
    if (0x000FFFFF & (2 + hx)) < 3:  # -2**-20 <= f < 2**-20
        if f == 0:
            return dk * _LN2_HI + dk * _LN2_LO
        R = f * f * (0.5 - 0.33333333333333333 * f)
        return dk * _LN2_HI - ((R - dk * _LN2_LO) - f)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    R = t2 + t1
    if ((hx - 0x6147A) | (0x6B851 - hx)) > 0:
        hfsq = 0.5 * f * f
        return dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + dk * _LN2_LO)) - f)
    return dk * _LN2_HI - ((s * (f - R) - dk * _LN2_LO) - f)


def _tanh_of(x):
    """``tanh(x)`` of one float32 or float64 (``_tanh_for``)."""
    raise NotImplementedError("compiled code only")


@overload(_tanh_of)
def _tanh_for(x):
    # tanh(x) = -t / (2 + t) with t = expm1(-2 |x|), signed as x. expm1 takes exp's
    # reduction y = n ln 2 + r, with exp(r) - 1 = r (1 + r/2 + r**2/6 + ...) taken
    # without its constant term, so it keeps its relative accuracy near 0, and
    # expm1(y) = 2**n (exp(r) - 1) + (2**n - 1), one fma; for y in [-40, 0] alone
    # (below -40, t is -1 in either dtype, as exp(-40) < 2**-53), so 2**n is one
    # normal power of two and no branch of the range is needed.
    if x not in (types.float32, types.float64):
        return None
    # (float32: exp(r) - 1 to r**7 / 7!, the next term a quarter of an ulp at most)
    degree, itemsize = (7, 4) if x == types.float32 else (13, 8)
    cast = np.float32 if x == types.float32 else np.float64

    def tanh(x):
        low, one, two = cast(-40), cast(1), cast(2)
        nan = x != x
        a = -x if x < 0 else x
        y = -(a + a)
        y = low if y < low else y
        n, r = _exp_steps(y, nan)
        p = cast(INVERSE_FACTORIALS[degree])
        for k in range(degree - 1, 0, -1):
            p = fma(p, r, cast(INVERSE_FACTORIALS[k]))
        s = _power_of_two(np.int64(n), itemsize)
        t = fma(s, p * r, s - one)
        h = -t / (t + two)
        return x if a == 0 else (-h if x < 0 else h)  # tanh(+-0) = +-0; NaN stays NaN

    return tanh


@cached_njit(**_JIT)
def inplace_tanh(v):
    """``v[j] = tanh(v[j])``: ``-t / (2 + t)`` with ``t = expm1(-2 |x|)``, signed as ``x``
    (no cancellation near 0; 1 beyond the range where it rounds to 1)."""
    for j in range(v.shape[0]):
        v[j] = _tanh_of(v[j])


def _logistic_of(x):
    """``1 / (1 + exp(-x))`` of one float32 or float64 (``_logistic_for``)."""
    raise NotImplementedError("compiled code only")


@overload(_logistic_of)
def _logistic_for(x):
    # With e = exp(-|x|) (exp's own steps, for arguments <= 0 alone): 1 / (1 + e) for
    # x >= 0 and e / (1 + e) for x < 0, so neither side loses its relative accuracy, and
    # the result is subnormal, or 0, where exp(x) is.
    if x not in (types.float32, types.float64):
        return None
    degree, itemsize, bound = (7, 4, 153 * LN2_HI) if x == types.float32 else (
        13, 8, 1078 * LN2_HI)
    cast = np.float32 if x == types.float32 else np.float64

    def logistic(x):
        low, one = cast(-bound), cast(1)
        nan = x != x
        y = x if x < 0 else -x  # -|x|
        y = low if y < low else y
        n, r = _exp_steps(y, nan)
        p = cast(INVERSE_FACTORIALS[degree])
        for k in range(degree - 1, -1, -1):
            p = fma(p, r, cast(INVERSE_FACTORIALS[k]))
        m = np.int64(n)
        half = m >> 1
        e = p * _power_of_two(half, itemsize) * _power_of_two(m - half, itemsize)
        return (e if x < 0 else one) / (one + e)

    return logistic


@cached_njit(**_JIT)
def inplace_logistic(v):
    """``v[j] = 1 / (1 + exp(-v[j]))``: ``1 / (1 + e)`` or ``e / (1 + e)`` with ``e =
    exp(-|x|)``; 0 and 1 at the ends (NaN stays NaN)."""
    for j in range(v.shape[0]):
        v[j] = _logistic_of(v[j])
