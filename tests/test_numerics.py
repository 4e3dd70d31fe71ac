"""sim.numerics: the bit-exact reference, checked against Python's unbounded integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel.formats import INT8, INT32, NumberFormat, Overflow
from sim.numerics import apply_overflow, dot, gemm_array, mac, mac_array, product_format, saturate, wrap

UINT8 = NumberFormat(8, signed=False)
INT16_SAT = NumberFormat(16, overflow=Overflow.SATURATE)
INT32_SAT = NumberFormat(32, overflow=Overflow.SATURATE)
UINT64 = NumberFormat(64, signed=False, overflow=Overflow.WRAP)

formats = st.builds(
    NumberFormat,
    bits=st.integers(1, 64),
    signed=st.booleans(),
    overflow=st.sampled_from(Overflow),
)
huge = st.integers(-(1 << 100), 1 << 100)


def codes(fmt: NumberFormat) -> st.SearchStrategy[int]:
    return st.integers(fmt.min_int, fmt.max_int)


@given(value=huge, fmt=formats)
def test_wrap_lands_in_range_and_is_congruent(value: int, fmt: NumberFormat) -> None:
    wrapped = wrap(value, fmt)
    assert fmt.min_int <= wrapped <= fmt.max_int
    assert (wrapped - value) % (1 << fmt.bits) == 0


@given(value=huge, fmt=formats)
def test_saturate_lands_in_range_and_keeps_representable_values(value: int, fmt: NumberFormat) -> None:
    clamped = saturate(value, fmt)
    assert fmt.min_int <= clamped <= fmt.max_int
    if fmt.min_int <= value <= fmt.max_int:
        assert clamped == value
    else:
        assert clamped == (fmt.max_int if value > fmt.max_int else fmt.min_int)


@given(data=st.data(), fmt=formats)
def test_representable_values_pass_through_both_rules(data: st.DataObject, fmt: NumberFormat) -> None:
    value = data.draw(codes(fmt))
    assert wrap(value, fmt) == saturate(value, fmt) == value


@pytest.mark.parametrize(("value", "expected"), [
    (128, -128), (-129, 127), (255, -1), (256, 0), (-128, -128), (127, 127), (1 << 40, 0),
])
def test_wrap_int8_corners(value: int, expected: int) -> None:
    assert wrap(value, INT8) == expected


def test_apply_overflow_follows_the_format_unless_told() -> None:
    assert apply_overflow(1 << 31, INT32) == -(1 << 31)  # INT32 wraps
    assert apply_overflow(1 << 31, INT32, Overflow.SATURATE) == (1 << 31) - 1
    assert apply_overflow(200, INT8) == 127  # INT8 saturates


@given(acc=codes(INT32), a=codes(INT8), b=codes(INT8))
def test_mac_is_exact_arithmetic_then_wrap(acc: int, a: int, b: int) -> None:
    assert mac(acc, a, b) == wrap(acc + a * b, INT32)
    assert mac(acc, a, b, overflow=Overflow.SATURATE) == saturate(acc + a * b, INT32)
    assert mac(acc, a, b, acc_format=INT32_SAT) == saturate(acc + a * b, INT32)


@pytest.mark.parametrize(("acc", "a", "b", "expected"), [
    (0, -128, -128, 16384),
    (INT32.max_int, 1, 1, INT32.min_int),  # wraps past the top
    (INT32.min_int, -1, 1, INT32.max_int),  # and past the bottom
    (INT32.max_int - 16383, -128, -128, INT32.min_int),
    (0, 127, -128, -16256),
    (-1, 0, 0, -1),
])
def test_mac_extremes_wrap(acc: int, a: int, b: int, expected: int) -> None:
    assert mac(acc, a, b) == expected


def test_mac_extremes_saturate() -> None:
    assert mac(INT32.max_int, -128, -128, overflow=Overflow.SATURATE) == INT32.max_int
    assert mac(INT32.min_int, 127, -128, overflow=Overflow.SATURATE) == INT32.min_int


def test_131072_largest_products_wrap_int32_to_its_minimum() -> None:
    acc = ((1 << 17) - 1000) * 16384  # as if 2**17 - 1000 steps had run; the last 1000 run here
    for _ in range(1000):
        acc = mac(acc, -128, -128)
    assert acc == INT32.min_int  # 2**17 * 2**14 = 2**31, one past the maximum
    assert int(dot(np.full(1 << 17, -128), np.full(1 << 17, -128))) == INT32.min_int
    assert int(dot(np.full(4, -128), np.full(4, -128), acc=INT32.max_int - 20000, acc_format=INT32_SAT)) \
        == INT32.max_int


@pytest.mark.parametrize(("acc", "a", "b", "field"), [
    (0, 128, 0, "a"), (0, 0, -129, "b"), (1 << 31, 0, 0, "acc"), (0, 1.0, 1, "a"), (0, True, 1, "a"),
])
def test_mac_refuses_operands_outside_their_format(acc: int, a: int, b: int, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        mac(acc, a, b)


def test_mac_refuses_a_bad_overflow_mode() -> None:
    with pytest.raises(ValueError, match=r"^Overflow mode must be an Overflow, not 'wrap'$"):
        mac(0, 1, 1, overflow="wrap")  # type: ignore[arg-type]


@given(data=st.data(), a_fmt=formats, b_fmt=formats, acc_fmt=formats)
def test_mac_array_matches_mac_for_any_formats(data: st.DataObject, a_fmt: NumberFormat,
                                              b_fmt: NumberFormat, acc_fmt: NumberFormat) -> None:
    n = data.draw(st.integers(1, 8))
    acc = data.draw(st.lists(codes(acc_fmt), min_size=n, max_size=n))
    a = data.draw(st.lists(codes(a_fmt), min_size=n, max_size=n))
    b = data.draw(st.lists(codes(b_fmt), min_size=n, max_size=n))
    got = mac_array(np.array(acc, dtype=object), np.array(a, dtype=object), np.array(b, dtype=object),
                    a_format=a_fmt, b_format=b_fmt, acc_format=acc_fmt)
    expected = [mac(x, y, z, a_format=a_fmt, b_format=b_fmt, acc_format=acc_fmt)
                for x, y, z in zip(acc, a, b, strict=True)]
    assert [int(v) for v in got] == expected


@given(data=st.data(), acc_fmt=st.sampled_from([INT32, INT32_SAT, INT16_SAT, UINT64, NumberFormat(17)]),
       operand_fmt=st.sampled_from([INT8, UINT8]))
def test_dot_is_a_sequence_of_mac_steps(data: st.DataObject, acc_fmt: NumberFormat,
                                        operand_fmt: NumberFormat) -> None:
    if operand_fmt.signed and not acc_fmt.signed:
        operand_fmt = UINT8
    n = data.draw(st.integers(1, 40))
    a = data.draw(st.lists(codes(operand_fmt), min_size=n, max_size=n))
    b = data.draw(st.lists(codes(operand_fmt), min_size=n, max_size=n))
    start = data.draw(codes(acc_fmt))
    acc = start
    for x, y in zip(a, b, strict=True):
        acc = mac(acc, x, y, a_format=operand_fmt, b_format=operand_fmt, acc_format=acc_fmt)
    got = dot(np.array(a), np.array(b), acc=start, a_format=operand_fmt, b_format=operand_fmt,
              acc_format=acc_fmt)
    assert int(got) == acc


def test_dot_reduces_the_last_axis_with_broadcasting() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, size=(3, 5, 64))
    b = rng.integers(-128, 128, size=(64,))
    got = dot(a, b, acc=np.arange(5))
    assert got.shape == (3, 5) and got.dtype == np.int64
    assert np.array_equal(got, (a.astype(np.int64) @ b) + np.arange(5))


def test_saturating_dot_clamps_after_every_step_not_at_the_end() -> None:
    a = np.array([127, 127, 127, -128])
    b = np.array([127, 127, 127, 127])
    # the exact sum 3 * 16129 - 16256 = 32131 fits int16, but the running sum saturates first
    assert int(dot(a, b, acc_format=INT16_SAT)) == INT16_SAT.max_int - 16256


def test_dot_of_uint64_wraps_exactly() -> None:
    got = dot(np.array([255, 255], dtype=np.uint8), np.array([255, 1]), acc=UINT64.max_int,
              a_format=UINT8, b_format=UINT8, acc_format=UINT64)
    assert got.dtype == object and int(got) == (UINT64.max_int + 255 * 255 + 255) % (1 << 64)


def test_arrays_refuse_out_of_range_or_non_integer_values() -> None:
    with pytest.raises(ValueError, match=r"^a must hold codes of int8 in \[-128, 127\], not values in \[0, 128\]$"):
        mac_array(0, [0, 128], [1, 1])
    with pytest.raises(ValueError, match=r"^b must hold integer codes of int8, not dtype float64$"):
        dot([1, 2], [1.0, 2.0])


def test_product_format() -> None:
    assert product_format(INT8, INT8).name == "int16"
    assert product_format(UINT8, UINT8).name == "uint16"
    assert product_format(INT8, UINT8).name == "int16"
    assert product_format(NumberFormat.parse("q1.6"), NumberFormat.parse("q1.6")).name == "q3.12"


def test_a_64_bit_accumulator_at_its_least_value_saturates_there_not_at_its_greatest():
    """int64's least value has no int64 magnitude (np.abs overflows to itself): the array forms must not
    take it for a small number and wrap."""
    acc64 = NumberFormat(64, True, overflow=Overflow.SATURATE)
    least = acc64.min_int
    one_bit = NumberFormat(1, False)
    expected = mac(least, 1, -1, a_format=one_bit, b_format=NumberFormat(1, True), acc_format=acc64)
    assert expected == least
    got = mac_array(np.array([least]), np.array([1]), np.array([-1]), a_format=one_bit, b_format=NumberFormat(1, True),
                    acc_format=acc64)
    assert [int(v) for v in got] == [least]
    i8 = NumberFormat(8, True)
    product = gemm_array(np.array([[1]]), np.array([[-1]]), acc=np.array([[least]]), a_format=i8, b_format=i8,
                         acc_format=acc64)
    assert int(product[0, 0]) == least
