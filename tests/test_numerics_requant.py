"""sim.numerics rounding and requantization, each checked against its own definition.

The oracle for TFLite/gemmlowp is a straightforward transcription of the C++ in this file
(``_cpp_*``: fixed-width int32/int64 arithmetic with C++'s truncating division), independent of
the implementation under test; pinned values come from working the C++ by hand.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel.formats import INT8, INT32, NumberFormat, Overflow, Rounding
from accel.hardware import Dataflow, SystolicArray
from accel.timing import gemm_tile_cycles
from sim.numerics import (
    INT32_MAX,
    INT32_MIN,
    dot,
    dyadic_requantize,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize,
    round_shift,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    systolic_tile,
    systolic_tile_cycles,
)

int32s = st.integers(INT32_MIN, INT32_MAX)
multipliers = st.integers(0, INT32_MAX)
shifts = st.integers(-31, 30)
UINT8 = NumberFormat(8, signed=False)


# -- the oracle: gemmlowp/TFLite C++ transcribed line by line ---------------------------------------

def _c_int32(v: int) -> int:
    """static_cast<int32_t> (two's complement)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _c_div(a: int, b: int) -> int:
    """C++ '/' on integers: truncation toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _cpp_srdhm(a: int, b: int) -> int:
    # bool overflow = a == b && a == std::numeric_limits<std::int32_t>::min();
    overflow = a == b and a == -(2**31)
    a_64, b_64 = a, b
    ab_64 = a_64 * b_64
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    ab_x2_high32 = _c_int32(_c_div(ab_64 + nudge, 1 << 31))
    return 2**31 - 1 if overflow else ab_x2_high32


def _cpp_rdbp(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    zero, one = 0, 1
    remainder = x & mask
    threshold = (mask >> 1) + (one if x < zero else zero)
    return (x >> exponent) + (one if remainder > threshold else zero)


def _cpp_mbqm_double(x: int, quantized_multiplier: int, shift: int) -> int:
    left_shift = shift if shift > 0 else 0
    right_shift = 0 if shift > 0 else -shift
    return _cpp_rdbp(_cpp_srdhm(_c_int32(x * (1 << left_shift)), quantized_multiplier), right_shift)


def _cpp_mbqm_single(x: int, quantized_multiplier: int, shift: int) -> int:
    total_shift = 31 - shift
    round_ = 1 << (total_shift - 1)
    result = x * quantized_multiplier + round_
    result = result >> total_shift
    return _c_int32(result)


def _cpp_quantize_multiplier(double_multiplier: float) -> tuple[int, int]:
    if double_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(double_multiplier)
    v = q * (1 << 31)
    q_fixed = int(math.copysign(math.floor(abs(v) + 0.5), v))  # TfLiteRound = std::round
    assert q_fixed <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


# -- round_shift -----------------------------------------------------------------------------------

@given(value=st.integers(-(1 << 70), 1 << 70), shift=st.integers(0, 40))
def test_round_shift_matches_exact_rational_rounding(value: int, shift: int) -> None:
    exact = Fraction(value, 1 << shift)
    floor = math.floor(exact)
    frac = exact - floor
    assert round_shift(value, shift, Rounding.TRUNCATE) == floor
    assert round_shift(value, shift, Rounding.HALF_UP) == math.floor(exact + Fraction(1, 2))
    assert round_shift(value, shift, Rounding.HALF_EVEN) == round(exact)  # Fraction rounds half to even
    away = floor + 1 if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and exact > 0) else floor
    assert round_shift(value, shift, Rounding.HALF_AWAY) == away


@pytest.mark.parametrize(("value", "truncate", "half_up", "half_even", "half_away"), [
    (5, 1, 1, 1, 1),    # 1.25
    (6, 1, 2, 2, 2),    # 1.5
    (10, 2, 3, 2, 3),   # 2.5
    (-6, -2, -1, -2, -2),  # -1.5
    (-10, -3, -2, -2, -3),  # -2.5
    (-5, -2, -1, -1, -1),  # -1.25
    (-7, -2, -2, -2, -2),  # -1.75
])
def test_round_shift_pinned_halves(value: int, truncate: int, half_up: int, half_even: int, half_away: int) -> None:
    got = [round_shift(value, 2, mode) for mode in
           (Rounding.TRUNCATE, Rounding.HALF_UP, Rounding.HALF_EVEN, Rounding.HALF_AWAY)]
    assert got == [truncate, half_up, half_even, half_away]
    assert round_shift(value, 0, "half_even") == value


def test_round_shift_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^shift must be a non-negative integer, not -1$"):
        round_shift(4, -1)
    with pytest.raises(ValueError, match=r"^Rounding mode must be one of truncate, half_up, half_even, half_away, "
                                         r"not 'nearest'$"):
        round_shift(4, 1, "nearest")


# -- gemmlowp primitives ---------------------------------------------------------------------------

@given(a=int32s, b=int32s)
def test_srdhm_matches_gemmlowp(a: int, b: int) -> None:
    assert saturating_rounding_doubling_high_mul(a, b) == _cpp_srdhm(a, b)


def test_srdhm_pinned_values() -> None:
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX  # the saturating case
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX) == -INT32_MAX
    assert saturating_rounding_doubling_high_mul(INT32_MAX, INT32_MAX) == INT32_MAX - 1
    assert saturating_rounding_doubling_high_mul(1 << 30, 1 << 30) == 1 << 29
    assert saturating_rounding_doubling_high_mul(3, 1 << 30) == 2   # 1.5 rounds away: 2
    # gemmlowp's negative nudge is 1 - 2**30, one short of a half: negative ties go toward zero
    assert saturating_rounding_doubling_high_mul(-3, 1 << 30) == -1  # -1.5 -> -1
    assert saturating_rounding_doubling_high_mul(1, 1 << 30) == 1   # 0.5 -> 1
    assert saturating_rounding_doubling_high_mul(-1, 1 << 30) == 0  # -0.5 -> 0
    assert saturating_rounding_doubling_high_mul(-5, 1 << 30) == -2  # -2.5 -> -2


@given(x=int32s, exponent=st.integers(0, 31))
def test_rdbp_matches_gemmlowp_and_rounds_half_away(x: int, exponent: int) -> None:
    got = rounding_divide_by_pot(x, exponent)
    assert got == _cpp_rdbp(x, exponent)
    assert got == round_shift(x, exponent, Rounding.HALF_AWAY)


def test_rdbp_pinned_values() -> None:
    assert [rounding_divide_by_pot(x, 1) for x in (3, -3, 5, -5, 4, -4)] == [2, -2, 3, -3, 2, -2]
    assert [rounding_divide_by_pot(x, 2) for x in (6, -6, 5, -5, 7, -7)] == [2, -2, 1, -1, 2, -2]
    assert rounding_divide_by_pot(INT32_MIN, 31) == -1 and rounding_divide_by_pot(INT32_MAX, 31) == 1
    with pytest.raises(ValueError, match=r"^exponent must be an integer from 0 to 31, not 32$"):
        rounding_divide_by_pot(1, 32)


# -- MultiplyByQuantizedMultiplier -----------------------------------------------------------------

@given(x=int32s, multiplier=multipliers, shift=shifts)
def test_mbqm_double_matches_tflite(x: int, multiplier: int, shift: int) -> None:
    assert multiply_by_quantized_multiplier(x, multiplier, shift) == _cpp_mbqm_double(x, multiplier, shift)


@given(x=int32s, multiplier=multipliers, shift=shifts)
def test_mbqm_single_matches_tflite(x: int, multiplier: int, shift: int) -> None:
    got = multiply_by_quantized_multiplier(x, multiplier, shift, mode="single")
    assert got == _cpp_mbqm_single(x, multiplier, shift)


@given(x=int32s, multiplier=st.integers(1 << 30, INT32_MAX), shift=st.integers(-31, 0))
def test_single_rounding_is_the_correctly_rounded_product(x: int, multiplier: int, shift: int) -> None:
    """For right shifts the single form is x * M / 2**(31 - shift) rounded once, halves up."""
    exact = Fraction(x * multiplier, 1 << (31 - shift))
    assert multiply_by_quantized_multiplier(x, multiplier, shift, mode="single") == math.floor(exact + Fraction(1, 2))


def test_mbqm_pinned_values() -> None:
    # 128 * 0.5 * 2**-1 = 32 in both modes
    assert multiply_by_quantized_multiplier(128, 1 << 30, -1) == 32
    assert multiply_by_quantized_multiplier(128, 1 << 30, -1, mode="single") == 32
    # x = 3, M = 0.5, shift -1: 0.75; SRDHM(3, 2**30) = 2 (1.5 away), RDBP(2, 1) = 1; single: 1
    assert multiply_by_quantized_multiplier(3, 1 << 30, -1) == 1
    # x = 5, M = 0.75, shift -2: 0.9375 -> double: SRDHM = round(3.75) = 4, RDBP(4, 2) = 1; single: 1
    assert multiply_by_quantized_multiplier(5, 3 << 29, -2) == 1
    # where the two disagree, a negative half: x = -10, M = 0.5, shift -1 is exactly -2.5;
    # double: SRDHM(-10, 2**30) = -5, RDBP(-5, 1) = -3 (away from zero); single: floor(-2.5 + 0.5) = -2
    assert multiply_by_quantized_multiplier(-10, 1 << 30, -1) == -3
    assert multiply_by_quantized_multiplier(-10, 1 << 30, -1, mode="single") == -2
    # x = -20, M = 0.75, shift -1 is -7.5: double -8, single -7
    assert multiply_by_quantized_multiplier(-20, 3 << 29, -1) == -8
    assert multiply_by_quantized_multiplier(-20, 3 << 29, -1, mode="single") == -7
    # left shift wraps int32 as C++ does: 2**30 << 1 = INT32_MIN, times 1.0 (M = 2**31 - 1)
    assert multiply_by_quantized_multiplier(1 << 30, INT32_MAX, 1) == _cpp_mbqm_double(1 << 30, INT32_MAX, 1)
    with pytest.raises(ValueError, match=r"^shift must be an integer from -31 to 30, not 31$"):
        multiply_by_quantized_multiplier(1, 1, 31)
    with pytest.raises(ValueError, match=r"^requantize mode must be 'double' or 'single', not 'triple'$"):
        multiply_by_quantized_multiplier(1, 1, 0, mode="triple")  # type: ignore[arg-type]


def _disagreement(rng: random.Random, trials: int, low_log2: float, high_log2: float) -> float:
    """Fraction of random (accumulator, real scale) pairs on which the two roundings differ.

    Scales are log-uniform in ``[2**low_log2, 2**high_log2]``, accumulators uniform in +-2**20.
    """
    differ = 0
    for _ in range(trials):
        multiplier, shift = quantize_multiplier(2.0 ** rng.uniform(low_log2, high_log2))
        acc = rng.randint(-(1 << 20), 1 << 20)
        double = multiply_by_quantized_multiplier(acc, multiplier, shift)
        single = multiply_by_quantized_multiplier(acc, multiplier, shift, mode="single")
        assert abs(double - single) <= 1, (acc, multiplier, shift)
        differ += double != single
    return differ / trials


def test_single_rounding_disagrees_with_double_on_about_two_percent() -> None:
    """TFLite's two roundings differ by one on roughly 2 % of inputs at int8-conv-like scales.

    With scales log-uniform in [2**-8, 2**-3] (input scale x weight scale / output scale of
    typical int8 layers) about 2.4 % of results differ; the fraction is about 2**-(e + 1) for a
    right shift of ``e`` bits (a tie after the first rounding), which is checked too.
    """
    rng = random.Random(5)
    fraction = _disagreement(rng, 20000, -8, -3)
    print(f"single vs double rounding disagree on {fraction:.2%} of 20000 random inputs")
    assert 0.01 < fraction < 0.04, fraction
    for right_shift in (2, 4, 6):  # scales in [2**-(e+1), 2**-e): the multiplier's shift is -e
        measured = _disagreement(rng, 8000, -right_shift - 1, -right_shift)
        assert 0.6 < measured * 2 ** (right_shift + 1) < 1.4, (right_shift, measured)
    assert _disagreement(rng, 2000, -1, -1e-9) == 0  # no second rounding: they agree


# -- QuantizeMultiplier ----------------------------------------------------------------------------

@given(real=st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_matches_tflite(real: float) -> None:
    assert quantize_multiplier(real) == _cpp_quantize_multiplier(real)


@given(real=st.floats(1e-9, 1e6))
def test_quantize_multiplier_represents_the_real_scale(real: float) -> None:
    multiplier, shift = quantize_multiplier(real)
    assert 1 << 30 <= multiplier < 1 << 31
    assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2.0**-30


def test_quantize_multiplier_pinned_values() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    assert quantize_multiplier(1 / 3) == (1431655765, -1)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # shift below -31
    assert quantize_multiplier(1 - 2.0**-40) == (1 << 30, 1)  # rounds up to 2**31: halved, shift + 1
    assert quantize_multiplier(2.0**40, mode="single") == (INT32_MAX, 30)
    with pytest.raises(ValueError, match=r"^real multiplier must be a finite non-negative number, not -1.0$"):
        quantize_multiplier(-1.0)


# -- requantize and the dyadic form ------------------------------------------------------------------

@given(acc=int32s, multiplier=multipliers, shift=shifts, zero_point=st.integers(-128, 127),
       mode=st.sampled_from(["double", "single"]), use_relu=st.booleans())
def test_requantize_is_mbqm_plus_zero_point_clamped(acc: int, multiplier: int, shift: int, zero_point: int,
                                                    mode: str, use_relu: bool) -> None:
    oracle = _cpp_mbqm_double if mode == "double" else _cpp_mbqm_single
    low = zero_point if use_relu else -128
    expected = max(low, min(127, oracle(acc, multiplier, shift) + zero_point))
    assert requantize(acc, multiplier, shift, zero_point, mode=mode, relu=use_relu) == expected  # type: ignore[arg-type]


def test_requantize_pinned_values() -> None:
    m, s = quantize_multiplier(0.5)
    assert requantize(100, m, s, 3) == 53
    assert requantize(-10, 1 << 30, -1, 0) == -3 and requantize(-10, 1 << 30, -1, 0, mode="single") == -2
    assert requantize(10**6, m, s, 0) == 127 and requantize(-(10**6), m, s, 0) == -128  # saturation
    assert requantize(-100, m, s, -10, relu=True) == -10
    assert requantize(100, m, s, 0, clamp_min=-6, clamp_max=6) == 6
    assert requantize(100, m, s, 10, out_format=UINT8) == 60
    with pytest.raises(ValueError, match=r"^zero_point must be a code of int8 in \[-128, 127\], not 200$"):
        requantize(0, m, s, 200)


@given(acc=int32s, m=st.integers(0, (1 << 16) - 1), e=st.integers(0, 40), zero_point=st.integers(-128, 127))
def test_dyadic_requantize_rounds_half_to_even(acc: int, m: int, e: int, zero_point: int) -> None:
    exact = Fraction(acc * m, 1 << e)
    assert dyadic_requantize(acc, m, e, zero_point=zero_point) == max(-128, min(127, round(exact) + zero_point))


def test_dyadic_requantize_pinned_halves() -> None:
    assert [dyadic_requantize(a, 1, 1) for a in (1, 3, 5, -1, -3, -5)] == [0, 2, 2, 0, -2, -2]
    assert dyadic_requantize(10**9, 3, 2) == 127


# -- the systolic tile --------------------------------------------------------------------------------

@given(m=st.integers(1, 6), k=st.integers(1, 6), n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       dataflow=st.sampled_from(Dataflow))
def test_systolic_tile_is_a_dot_per_output(m: int, k: int, n: int, seed: int, dataflow: Dataflow) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    out = systolic_tile(x, w, dataflow=dataflow)
    assert out.shape == (m, n)
    assert np.array_equal(out, x @ w)


def test_systolic_tile_saturates_after_every_step() -> None:
    acc = NumberFormat(16, overflow=Overflow.SATURATE)
    x = np.array([[127, 127, 127, -128]])
    w = np.array([[127], [127], [127], [127]])
    # 16129, 32258, 48387 saturates at 32767, then 32767 - 16256 = 16511 (the exact sum is 32131)
    assert systolic_tile(x, w, dataflow="ws", acc_format=acc)[0, 0] == 16511
    assert systolic_tile(x, w, dataflow="os", acc_format=acc)[0, 0] == dot(x[0], w[:, 0], acc_format=acc)
    wrapped = systolic_tile(x, w, dataflow="os", acc_format=NumberFormat(16, overflow=Overflow.WRAP))
    assert wrapped[0, 0] == 32131  # wrapping is modular: the exact sum comes back
    assert systolic_tile(x, w, dataflow="os", acc_format=INT32)[0, 0] == 32131
    with pytest.raises(ValueError, match=r"^systolic_tile needs x \(m x k\) and w \(k x n\), not shapes"):
        systolic_tile(x, w.T, dataflow="ws")


@pytest.mark.parametrize("dataflow", list(Dataflow))
@pytest.mark.parametrize(("rows", "cols", "m", "k", "n"), [(4, 4, 16, 4, 4), (8, 8, 5, 20, 9), (4, 8, 3, 3, 3)])
def test_systolic_tile_cycles_are_the_datasheet(dataflow: Dataflow, rows: int, cols: int, m: int, k: int,
                                                n: int) -> None:
    array = SystolicArray(rows, cols, dataflows=tuple(Dataflow))
    assert systolic_tile_cycles(array, dataflow.value, m, k, n) == gemm_tile_cycles(array, dataflow, m, k, n)


def test_one_ws_fold_is_scalesim_formula() -> None:
    array = SystolicArray(4, 8)
    assert systolic_tile_cycles(array, Dataflow.WS, 10, 4, 8) == 2 * 4 + 8 + 10 - 2
    assert systolic_tile_cycles(array, Dataflow.OS, 4, 10, 8) == 4 + 8 + 10 - 2
    assert INT8.bits == 8
