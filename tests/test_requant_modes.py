"""Every hardware requantization mode of sim.numerics, vectorised and scalar, and the [array] requant option.

The float32 mode (onnxruntime's MLAS MlasRequantizeOutput, Gemmini's accumulator scaling) is checked
against an independent oracle: the exact product as a Fraction, rounded to float32 by struct, then
clamped and rounded half to even by Python's round().
"""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accel import config
from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow, Requantization
from sim.numerics import (
    dot,
    dyadic_multiplier,
    dyadic_requantize,
    float32_requantize,
    fma_float32,
    gemm_array,
    multiply_by_quantized_multiplier,
    quantize_linear,
    quantize_multiplier,
    requantize,
    requantize_array,
    tflite_add,
)

UINT8 = NumberFormat(8, signed=False)


def _f32(x: float | Fraction) -> float:
    """Round to the nearest float32 (ties to even), as IEEE arithmetic does."""
    return struct.unpack("f", struct.pack("f", float(x)))[0] if not isinstance(x, Fraction) else _f32_exact(x)


def _f32_exact(x: Fraction) -> float:
    # float(Fraction) rounds correctly to double; doubles are exact for float32 neighbours, so find them.
    low = struct.unpack("f", struct.pack("f", float(x)))[0]
    candidates = sorted({low, float(np.nextafter(np.float32(low), np.float32(np.inf))),
                         float(np.nextafter(np.float32(low), np.float32(-np.inf)))})
    best = min(candidates, key=lambda c: (abs(Fraction(c) - x), int(np.float32(c).view(np.int32)) & 1))
    return best


def _oracle_float32(acc: int, scale: float, zp: int, fmt: NumberFormat) -> int:
    value = _f32_exact(Fraction(_f32(float(acc))) * Fraction(_f32(scale)))
    value = min(max(value, fmt.min_int - zp), fmt.max_int - zp)
    return round(value) + zp  # Python's round: half to even


@given(st.integers(-(2**31), 2**31 - 1), st.floats(1e-9, 4.0), st.integers(-128, 127))
def test_float32_mode_matches_its_definition(acc: int, scale: float, zp: int) -> None:
    got = int(requantize_array(np.array([acc]), np.float32(scale), zp, mode="float32-half-even")[0])
    assert got == _oracle_float32(acc, scale, zp, INT8) == float32_requantize(acc, scale, zp)


def test_float32_mode_pinned_halves_and_clamps() -> None:
    acc = np.array([5, 7, -5, -7, 1, 3, 1000, -1000])
    assert requantize_array(acc, 0.5, 0, mode=Requantization.FLOAT32_HALF_EVEN).tolist() == \
        [2, 4, -2, -4, 0, 2, 127, -128]
    assert requantize_array(acc, 0.5, 10, mode="float32-half-even", out_format=UINT8).tolist() == \
        [12, 14, 8, 6, 10, 12, 255, 0]
    assert requantize_array(acc, 0.5, 0, mode="float32-half-even", clamp_min=0).tolist() == [2, 4, 0, 0, 0, 2, 127, 0]
    # float32(16777217) is 16777216: the accumulator itself is rounded to float32 first, as MLAS's cvtdq2ps.
    assert float32_requantize(16777217, 2.0**-20, 0) == 16


@pytest.mark.parametrize("mode", ["double", "single"])
def test_tflite_modes_vectorised_equal_scalar(mode: str) -> None:
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**31), 2**31, 5000)
    acc[:6] = [0, 1, -1, 2**31 - 1, -(2**31), 12345]
    scale = rng.uniform(1e-7, 0.9, 5000)
    zp = rng.integers(-128, 128, 5000)
    got = requantize_array(acc, scale, zp, mode=f"tflite-{mode}")
    expected = [requantize(int(a), *quantize_multiplier(float(s), mode=mode), int(z), mode=mode)  # type: ignore[arg-type]
                for a, s, z in zip(acc, scale, zp, strict=True)]
    assert got.tolist() == expected


def test_dyadic_mode_vectorised_equal_scalar() -> None:
    rng = np.random.default_rng(4)
    acc = rng.integers(-(2**24), 2**24, 5000)
    scale = rng.uniform(1e-6, 2.0, 5000)
    zp = rng.integers(-128, 128, 5000)
    got = requantize_array(acc, scale, zp, mode=Requantization.DYADIC)
    expected = [dyadic_requantize(int(a), *dyadic_multiplier(float(s)), zero_point=int(z))
                for a, s, z in zip(acc, scale, zp, strict=True)]
    assert got.tolist() == expected


@given(st.floats(1e-12, 1e6))
def test_dyadic_multiplier_is_a_31_bit_fraction_close_to_the_scale(real: float) -> None:
    m, e = dyadic_multiplier(real)
    assert 2**30 <= m < 2**31 and e >= 0
    assert abs(m / 2**e - real) <= real * 2.0**-30


def test_per_channel_scales_broadcast() -> None:
    acc = np.arange(-6, 6).reshape(3, 4) * 1000
    scale = np.array([0.001, 0.01, 0.1, 1.0], dtype=np.float32)
    for mode in Requantization:
        got = requantize_array(acc, scale, 0, mode=mode)
        assert got.shape == (3, 4)
        assert np.array_equal(got[:, 0], np.clip(np.round(acc[:, 0] * 0.001), -128, 127))


def test_bad_requantization_arguments() -> None:
    with pytest.raises(ValueError, match="zero_point must hold codes of int8"):
        requantize_array(np.array([1]), 0.5, 300)
    with pytest.raises(ValueError, match="scale must be finite and non-negative"):
        requantize_array(np.array([1]), -0.5, 0)
    with pytest.raises(ConfigError, match="^Requantization must be one of 'tflite-double', 'tflite-single', 'dyadic', "
                                          "'float32-half-even', not 'float64'$"):
        requantize_array(np.array([1]), 0.5, 0, mode="float64")


@pytest.mark.parametrize("mode", ["double", "single"])
def test_tflite_add_equals_its_scalar_transcription(mode: str) -> None:
    rng = np.random.default_rng(9)
    a, b = rng.integers(-128, 128, 3000), rng.integers(-128, 128, 3000)
    sa, sb, sy = 0.0213, 0.0078, 0.0305
    za, zb, zy = 5, -12, 3
    twice = 2 * max(float(np.float32(sa)), float(np.float32(sb)))
    ma = quantize_multiplier(float(np.float32(sa)) / twice, mode=mode)  # type: ignore[arg-type]
    mb = quantize_multiplier(float(np.float32(sb)) / twice, mode=mode)  # type: ignore[arg-type]
    my = quantize_multiplier(twice / ((1 << 20) * float(np.float32(sy))), mode=mode)  # type: ignore[arg-type]
    expected = []
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        total = multiply_by_quantized_multiplier((x - za) << 20, *ma, mode=mode)  # type: ignore[arg-type]
        total += multiply_by_quantized_multiplier((y - zb) << 20, *mb, mode=mode)  # type: ignore[arg-type]
        expected.append(max(-128, min(127, multiply_by_quantized_multiplier(total, *my, mode=mode) + zy)))  # type: ignore[arg-type]
    got = tflite_add(a, b, sa, za, sb, zb, sy, zy, mode=f"tflite-{mode}")
    assert got.tolist() == expected
    exact = np.clip(np.round(((a - za) * sa + (b - zb) * sb) / sy) + zy, -128, 127)
    assert np.abs(got - exact).max() <= 1


@given(st.floats(-1e6, 1e6, width=32), st.floats(-1e3, 1e3, width=32), st.floats(-1e9, 1e9, width=32))
def test_fma_float32_rounds_once(a: float, b: float, c: float) -> None:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    assert float(fma_float32(np.float32(a), np.float32(b), np.float32(c))) == _f32_exact(exact)


def test_quantize_linear_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.25, 0.75, -0.25, -0.75, 100.0, -100.0], dtype=np.float32)
    assert quantize_linear(x, 0.5, 0).tolist() == [0, 2, 0, -2, 127, -128]
    assert quantize_linear(x, 0.5, 128, out_format=UINT8).tolist() == [128, 130, 128, 126, 255, 0]


@pytest.mark.parametrize("overflow", [Overflow.WRAP, Overflow.SATURATE])
def test_gemm_array_equals_dot(overflow: Overflow) -> None:
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, (2, 5, 33))
    b = rng.integers(-128, 128, (2, 33, 7))
    acc_format = NumberFormat(32, overflow=overflow)
    expected = dot(a[:, :, None, :], np.swapaxes(b, 1, 2)[:, None, :, :], acc_format=acc_format)
    assert np.array_equal(gemm_array(a, b, acc_format=acc_format), expected)
    # A 16-bit saturating accumulator: the per-step clamp matters, so the slow exact path runs.
    narrow = NumberFormat(16, overflow=overflow)
    expected = dot(a[:, :, None, :], np.swapaxes(b, 1, 2)[:, None, :, :], acc_format=narrow)
    assert np.array_equal(gemm_array(a, b, acc_format=narrow), expected)
    assert gemm_array(a, b, acc=np.full((2, 5, 7), 7), acc_format=INT32).tolist() == (np.matmul(a, b) + 7).tolist()


def test_array_requant_option_loads_dumps_and_validates() -> None:
    base = config.load("gemmini")
    assert base.array.requant is Requantization.TFLITE_DOUBLE  # the default, unchanged
    assert 'requant = "tflite-double"' in config.dumps(base)
    text = config.dumps(base).replace('requant = "tflite-double"', 'requant = "float32-half-even"')
    design = config.loads(text)
    assert design.array.requant is Requantization.FLOAT32_HALF_EVEN
    assert config.loads(config.dumps(design)) == design
    bad = text.replace('"float32-half-even"', '"float64"')
    with pytest.raises(ConfigError, match=r"^x.toml: array.requant: Requantization must be one of 'tflite-double', "
                                          r"'tflite-single', 'dyadic', 'float32-half-even', not 'float64'$"):
        config.loads(bad, source="x.toml")
    with pytest.raises(ConfigError, match=r"array.requant: must be one of"):
        config.loads(text.replace('"float32-half-even"', "3"), source="x.toml")
