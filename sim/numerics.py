"""The bit-exact integer reference of the datapath: what every RTL unit must compute.

RTL testbenches import these functions and compare the hardware against them bit for bit; they
never re-implement arithmetic of their own. Everything works on *raw integer codes*: a value of a
:class:`~accel.formats.NumberFormat` with ``frac_bits = n`` is the integer ``round(x * 2**n)``, so a
fixed-point multiply is an integer multiply whose result has ``n_a + n_b`` fractional bits.

The contract, stated once:

:func:`wrap` ``(value, fmt)``
    ``value`` reduced modulo ``2**fmt.bits`` into ``[fmt.min_int, fmt.max_int]``: exactly what a
    two's-complement (or unsigned) register of ``fmt.bits`` bits holds after truncating the high bits.
:func:`saturate` ``(value, fmt)``
    ``value`` clamped to ``[fmt.min_int, fmt.max_int]``.
:func:`apply_overflow` ``(value, fmt, mode)``
    one of the two, chosen by an :class:`~accel.formats.Overflow` mode.
:func:`mac` ``(acc, a, b)``
    one multiply-accumulate step: ``apply_overflow(acc + a * b, acc_format, overflow)`` where the sum
    and product are exact (unbounded integers) and the overflow rule is applied once, to the new
    accumulator; ``overflow`` defaults to ``acc_format.overflow`` (``WRAP`` for ``INT32``). The
    operands must already be codes of their formats (``ValueError`` otherwise): the reference never
    silently reinterprets an out-of-range operand.
:func:`mac_array` ``(acc, a, b)``
    the same step element-wise over numpy arrays (broadcasting), bit-identical to :func:`mac`.
:func:`dot` ``(a, b, acc=0)``
    a sequence of :func:`mac` steps along the last axis, in index order. With wrapping the order does
    not matter (arithmetic modulo ``2**bits``); with saturation the accumulator is clamped after
    *every* step, as the hardware does, so the result can differ from clamping the exact sum.

Arrays come back as ``numpy.int64`` when every code of the accumulator format fits in it, else as an
``object`` array of Python integers (e.g. ``uint64``), so the answer is exact in every case.

Rounding and requantization (all on Python integers, exactly as the C++ they transcribe):

:func:`round_shift` ``(value, shift, mode)``
    ``value / 2**shift`` rounded to an integer by a :class:`~accel.formats.Rounding` mode:
    ``TRUNCATE`` (toward minus infinity, an arithmetic shift right), ``HALF_UP`` (halves toward plus
    infinity), ``HALF_EVEN`` (halves to the even neighbour), ``HALF_AWAY`` (halves away from zero).
:func:`saturating_rounding_doubling_high_mul` ``(a, b)``
    gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32: ``a * b / 2**31`` rounded to
    nearest; ties of a positive product go up, ties of a negative one toward zero (its nudge
    ``1 - 2**30`` is one short of a half); the one overflowing case ``INT32_MIN * INT32_MIN``
    gives ``INT32_MAX``.
:func:`rounding_divide_by_pot` ``(x, exponent)``
    gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero (mask,
    remainder and threshold, as written there), ``0 <= exponent <= 31``.
:func:`multiply_by_quantized_multiplier` ``(x, multiplier, shift, *, mode)``
    TFLite's ``MultiplyByQuantizedMultiplier``. ``mode="double"`` (the default, gemmlowp's
    double rounding): ``RDBP(SRDHM(x * 2**left_shift, multiplier), right_shift)`` where a positive
    ``shift`` is the left shift and a negative one the right shift; ``x * 2**left_shift`` wraps to
    int32 as C++ does on every two's-complement target. ``mode="single"``
    (``TFLITE_SINGLE_ROUNDING``): ``(x * multiplier + 2**(30 - shift)) >> (31 - shift)`` in 64 bits,
    then cast (wrapped) to int32. The two agree except on about 2 % of inputs, by one.
:func:`requantize` ``(acc, multiplier, shift, zero_point, *, out_format, mode, relu, clamp_min, clamp_max)``
    TFLite's int8 output stage: ``clamp(MBQM(acc) + zero_point)`` where the clamp bounds are those of
    ``out_format`` narrowed by ``relu`` (lower bound ``zero_point``) and ``clamp_min``/``clamp_max``.
    The zero-point addition is exact (TFLite's int32 addition cannot overflow for real scales).
:func:`dyadic_requantize` ``(acc, m, e, *, zero_point, out_format)``
    HAWQ-V3's dyadic form: ``clamp(round_half_even(acc * m / 2**e) + zero_point)``.
:func:`quantize_multiplier` ``(real, *, mode)``
    TFLite's ``QuantizeMultiplier``: ``(multiplier, shift)`` with ``real ~= multiplier * 2**(shift - 31)``
    and ``multiplier`` in ``[2**30, 2**31)`` (or 0).
:func:`float32_requantize` ``(acc, scale, zero_point, *, out_format)``
    onnxruntime's (MLAS ``MlasRequantizeOutput``) and Gemmini's form: ``float32(acc) * float32(scale)``
    (one IEEE float32 product), clamped to ``[out.min - zp, out.max - zp]`` in float32, rounded half
    to even, plus ``zero_point``.
:func:`dyadic_multiplier` ``(real)``
    the dyadic ``(m, e)`` of a real scale: ``m = round(real * 2**e)`` with ``2**30 <= m < 2**31``.

Whole arrays (vectorised numpy, what layer-level references and executors use):

:func:`requantize_array` ``(acc, scale, zero_point, *, mode, out_format, clamp_min, clamp_max)``
    every element of an int32 accumulator array requantized by an
    :class:`~accel.formats.Requantization` mode with a (broadcasting) array of real ``scale`` values:
    ``tflite-double``/``tflite-single`` take ``quantize_multiplier(scale)`` per distinct scale,
    ``dyadic`` takes :func:`dyadic_multiplier`, ``float32-half-even`` uses the float32 scale itself.
    Element for element equal to :func:`requantize`, :func:`dyadic_requantize` and
    :func:`float32_requantize`.
:func:`gemm_array` ``(a, b, *, acc, a_format, b_format, acc_format, overflow)``
    ``acc + a @ b`` (numpy ``matmul`` broadcasting) in exact integer arithmetic with the accumulator's
    overflow rule, equal to :func:`dot` along ``k``; computed with float64 BLAS where every partial
    sum is an integer below ``2**53`` (hence exact), else through :func:`dot`.
:func:`tflite_add` ``(a, b, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, *, mode)``
    TFLite's integer ``ADD`` of two quantized arrays: both inputs shifted left by 20 bits and scaled to
    half the larger input scale, summed, then scaled to the output, each scaling a
    :func:`multiply_by_quantized_multiplier` (``mode`` ``tflite-double`` or ``tflite-single``).
:func:`fma_float32` ``(a, b, c)``
    ``a * b + c`` rounded once to float32 (a fused multiply-add, as AVX2's ``vfmadd``).
:func:`quantize_linear` ``(x, scale, zero_point, *, out_format)`` / :func:`dequantize_linear`
    ONNX ``QuantizeLinear`` as onnxruntime computes it (float32 ``x / scale``, half to even,
    saturated) and ``DequantizeLinear`` (``float32(q - zero_point) * scale``).

A systolic tile:

:func:`systolic_tile` ``(x, w, *, dataflow, ...)``
    the ``m x n`` outputs of the GEMM tile ``x (m x k) @ w (k x n)`` as one fold of an array computes
    them: every dataflow reduces ``k`` in ascending order (WS down the rows, OS in time in each PE,
    IS across the columns), each step a :func:`mac`, so wrap and saturation act exactly as in
    :func:`dot`.
:func:`systolic_tile_cycles` ``(array, dataflow, m, k, n)``
    the tile's cycle count, straight from :func:`accel.timing.gemm_tile_cycles` (never a formula of
    its own), so the RTL tests and the simulator compare against the same number.

N:M structured sparsity (defined in :mod:`sim.sparsity`, re-exported here; its docstring states
the pruning rule, the compressed bit layout and the sparse tile's cycles):

:func:`nm_prune`, :func:`nm_check`, :func:`nm_compress` / :func:`nm_decompress` (an
:class:`NMCompressed`), :func:`nm_pack_group` / :func:`nm_unpack_group` (one group word),
:func:`nm_gemm` (``x @ w`` on the compressed operand, bit-identical to :func:`systolic_tile` on the
decompressed weights), :func:`nm_compressed_bytes` / :func:`nm_to_bytes` / :func:`nm_from_bytes`
(the stored form), :func:`nm_reduction_length` and :func:`nm_tile_cycles` (the sparse WS tile).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from accel.formats import INT8, INT32, NumberFormat, Overflow, Requantization, Rounding
from accel.hardware import Dataflow, SystolicArray
from sim.sparsity import (
    NMCompressed,
    nm_check,
    nm_compress,
    nm_compressed_bytes,
    nm_decompress,
    nm_from_bytes,
    nm_gemm,
    nm_index_bits,
    nm_pack_group,
    nm_prune,
    nm_reduction_length,
    nm_tile_cycles,
    nm_to_bytes,
    nm_unpack_group,
)

__all__ = [
    "logistic_float32",
    "wrap",
    "saturate",
    "apply_overflow",
    "product_format",
    "mac",
    "mac_array",
    "dot",
    "INT32_MIN",
    "INT32_MAX",
    "RequantMode",
    "round_shift",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "clamp",
    "relu",
    "requantize",
    "requant_bounds",
    "dyadic_requantize",
    "dyadic_multiplier",
    "float32_requantize",
    "requantize_array",
    "gemm_array",
    "quantize_linear",
    "dequantize_linear",
    "fma_float32",
    "tflite_add",
    "tflite_add_multipliers",
    "tflite_add_codes",
    "TFLITE_ADD_LEFT_SHIFT",
    "systolic_tile",
    "systolic_tile_cycles",
    "NMCompressed",
    "nm_index_bits",
    "nm_prune",
    "nm_check",
    "nm_compress",
    "nm_decompress",
    "nm_pack_group",
    "nm_unpack_group",
    "nm_gemm",
    "nm_compressed_bytes",
    "nm_to_bytes",
    "nm_from_bytes",
    "nm_reduction_length",
    "nm_tile_cycles",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

RequantMode = Literal["double", "single"]
"""How :func:`multiply_by_quantized_multiplier` rounds: gemmlowp's two roundings or TFLite's one."""


def wrap(value: int, fmt: NumberFormat) -> int:
    """Return ``value`` modulo ``2**fmt.bits``, as a code of ``fmt`` (two's complement if signed)."""
    mask = (1 << fmt.bits) - 1
    low = int(value) & mask
    if fmt.signed and low > fmt.max_int:
        low -= 1 << fmt.bits
    return low


def saturate(value: int, fmt: NumberFormat) -> int:
    """Return ``value`` clamped to ``[fmt.min_int, fmt.max_int]``."""
    return max(fmt.min_int, min(fmt.max_int, int(value)))


def apply_overflow(value: int, fmt: NumberFormat, mode: Overflow | None = None) -> int:
    """Apply the overflow rule ``mode`` (default: ``fmt.overflow``) to bring ``value`` into ``fmt``."""
    mode = fmt.overflow if mode is None else mode
    if mode is Overflow.WRAP:
        return wrap(value, fmt)
    if mode is Overflow.SATURATE:
        return saturate(value, fmt)
    raise ValueError(f"Overflow mode must be an Overflow, not {mode!r}")


def product_format(a_format: NumberFormat, b_format: NumberFormat) -> NumberFormat:
    """The narrowest format that holds every exact product of an ``a_format`` and a ``b_format`` code.

    Its width is ``a.bits + b.bits``, it is signed if either operand is, and its fractional bits
    add up. ``int8 x int8`` gives ``int16``; ``q1.6 x q1.6`` gives ``q3.12``.
    """
    return NumberFormat(
        a_format.bits + b_format.bits,
        signed=a_format.signed or b_format.signed,
        frac_bits=a_format.frac_bits + b_format.frac_bits,
        overflow=Overflow.WRAP,
    )


def mac(
    acc: int,
    a: int,
    b: int,
    *,
    a_format: NumberFormat = INT8,
    b_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> int:
    """One multiply-accumulate step: ``apply_overflow(acc + a * b, acc_format, overflow)``.

    ``overflow`` defaults to ``acc_format.overflow`` (``WRAP`` for the default ``INT32``).
    ``acc``, ``a`` and ``b`` must be codes of their formats; raises ``ValueError`` otherwise.
    """
    _check_code("acc", acc, acc_format)
    _check_code("a", a, a_format)
    _check_code("b", b, b_format)
    return apply_overflow(int(acc) + int(a) * int(b), acc_format, overflow)


def mac_array(
    acc: npt.ArrayLike,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    a_format: NumberFormat = INT8,
    b_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> np.ndarray:
    """:func:`mac` element-wise over arrays (numpy broadcasting), bit-identical to it.

    Raises ``ValueError`` if any element is not a code of its format.
    """
    mode = _mode(acc_format, overflow)
    acc_v = _codes("acc", acc, acc_format)
    products = _products(_codes("a", a, a_format), _codes("b", b, b_format), a_format, b_format)
    return _finish(_apply(_add(acc_v, products), acc_format, mode), acc_format)


def dot(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    acc: npt.ArrayLike = 0,
    a_format: NumberFormat = INT8,
    b_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> np.ndarray:
    """Accumulate ``a[..., k] * b[..., k]`` onto ``acc`` for ``k = 0, 1, ...`` with :func:`mac` steps.

    ``a`` and ``b`` broadcast against each other and the last axis is reduced; ``acc`` broadcasts
    against the remaining axes. Returns an array (0-d for two vectors).
    """
    mode = _mode(acc_format, overflow)
    a_v, b_v = np.broadcast_arrays(_codes("a", a, a_format), _codes("b", b, b_format))
    if a_v.ndim == 0:
        raise ValueError("dot needs operands with at least one axis to reduce, not two scalars")
    products = _products(a_v, b_v, a_format, b_format)
    total = _codes("acc", acc, acc_format)
    if mode is Overflow.WRAP:
        # Arithmetic modulo 2**bits: wrapping the exact sum once equals wrapping after every step.
        depth = max(products.shape[-1], 1).bit_length()
        if products.dtype != object and a_format.bits + b_format.bits + depth > 62:
            products = products.astype(object)
        return _finish(_apply(_add(total, products.sum(axis=-1)), acc_format, mode), acc_format)
    total = np.broadcast_to(total, products.shape[:-1])
    for k in range(products.shape[-1]):
        total = _apply(_add(total, products[..., k]), acc_format, mode)
    return _finish(total, acc_format)


# -- rounding and requantization -----------------------------------------------------------------

def round_shift(value: int, shift: int, mode: Rounding | str = Rounding.HALF_EVEN) -> int:
    """``value / 2**shift`` rounded to an integer by ``mode`` (``shift >= 0``; 0 returns ``value``)."""
    value, shift, mode = int(value), _shift(shift), _rounding(mode)
    if shift == 0:
        return value
    floor = value >> shift  # Python's >> is floor division by 2**shift
    remainder = value - (floor << shift)  # in [0, 2**shift)
    half = 1 << (shift - 1)
    if mode is Rounding.TRUNCATE or remainder < half:
        return floor
    if remainder > half or mode is Rounding.HALF_UP:
        return floor + 1
    if mode is Rounding.HALF_EVEN:
        return floor + (floor & 1)
    return floor + 1 if value > 0 else floor  # HALF_AWAY: a negative half rounds down (away from zero)


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` for int32 ``a`` and ``b``.

    ``(a * b + nudge) / 2**31`` with C++'s division toward zero and ``nudge = 2**30`` for a
    non-negative product, ``1 - 2**30`` for a negative one; ``INT32_MIN * INT32_MIN`` saturates to
    ``INT32_MAX``.
    """
    a, b = _int32("a", a), _int32("b", b)
    if a == b == INT32_MIN:
        return INT32_MAX
    product = a * b
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    return _divide_toward_zero(product + nudge, 1 << 31)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent``, halves away from zero (``0..31``)."""
    x = _int32("x", x)
    if not isinstance(exponent, int | np.integer) or not 0 <= exponent <= 31:
        raise ValueError(f"exponent must be an integer from 0 to 31, not {exponent!r}")
    mask = (1 << int(exponent)) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> int(exponent)) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int, *,
                                     mode: RequantMode = "double") -> int:
    """TFLite's ``MultiplyByQuantizedMultiplier(x, multiplier, shift)`` on int32, by ``mode``.

    ``multiplier`` is a non-negative int32 and ``-31 <= shift <= 30``. ``"double"`` is gemmlowp's
    form (``SRDHM`` then ``RDBP``), ``"single"`` TFLite's ``TFLITE_SINGLE_ROUNDING`` form (one
    64-bit product, one rounding right shift by ``31 - shift``, halves toward plus infinity, the
    result cast to int32).
    """
    x, multiplier = _int32("x", x), _int32("multiplier", multiplier)
    shift = _requant_shift(shift)
    if multiplier < 0:
        raise ValueError(f"multiplier must be a non-negative int32, not {multiplier}")
    if _requant_mode(mode) == "single":
        total_shift = 31 - shift
        result = (x * multiplier + (1 << (total_shift - 1))) >> total_shift
        return wrap(result, INT32)
    left_shift, right_shift = max(shift, 0), max(-shift, 0)
    shifted = wrap(x << left_shift, INT32)  # C++'s int32 multiply by 2**left_shift
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift)


def quantize_multiplier(real: float, *, mode: RequantMode = "double") -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``(multiplier, shift)`` with ``real ~ multiplier * 2**(shift - 31)``.

    ``real`` must be finite and non-negative. ``frexp`` splits it into ``q * 2**shift`` with
    ``q`` in ``[0.5, 1)``; ``multiplier = round_half_away(q * 2**31)`` (``2**31`` becomes ``2**30``
    with ``shift + 1``); a ``shift`` below -31 gives ``(0, 0)``; in ``"single"`` mode a ``shift``
    above 30 is clamped to ``(2**31 - 1, 30)`` as TFLite does under ``TFLITE_SINGLE_ROUNDING``.
    """
    _requant_mode(mode)
    if not isinstance(real, int | float | np.floating | np.integer) or not math.isfinite(real) or real < 0:
        raise ValueError(f"real multiplier must be a finite non-negative number, not {real!r}")
    if real == 0:
        return 0, 0
    q, shift = math.frexp(float(real))
    scaled = q * (1 << 31)  # exact: q has 53 significant bits
    q_fixed = int(math.floor(scaled + 0.5))  # std::round: halves away from zero (scaled > 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if mode == "single" and shift > 30:
        return (1 << 31) - 1, 30
    return q_fixed, shift


def clamp(value: int, low: int, high: int) -> int:
    """``value`` limited to ``[low, high]``."""
    if low > high:
        raise ValueError(f"clamp bounds must satisfy low <= high, not [{low}, {high}]")
    return max(int(low), min(int(high), int(value)))


def relu(value: int, zero_point: int = 0) -> int:
    """ReLU on a quantized value: ``max(value, zero_point)`` (the real zero is ``zero_point``)."""
    return max(int(value), int(zero_point))


def requantize(acc: int, multiplier: int, shift: int, zero_point: int = 0, *,
               out_format: NumberFormat = INT8, mode: RequantMode = "double", relu: bool = False,
               clamp_min: int | None = None, clamp_max: int | None = None) -> int:
    """TFLite's output stage of an int32 accumulator: ``clamp(MBQM(acc, multiplier, shift) + zero_point)``.

    The bounds are ``out_format``'s range, raised to ``zero_point`` by ``relu`` and narrowed by
    ``clamp_min``/``clamp_max`` (TFLite's ``output_activation_min/max``); ``zero_point`` must be a
    code of ``out_format``.
    """
    _check_code("zero_point", zero_point, out_format)
    low, high = requant_bounds(out_format, zero_point, relu=relu, clamp_min=clamp_min, clamp_max=clamp_max)
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift, mode=mode)
    return clamp(scaled + int(zero_point), low, high)


def requant_bounds(out_format: NumberFormat, zero_point: int = 0, *, relu: bool = False,
                   clamp_min: int | None = None, clamp_max: int | None = None) -> tuple[int, int]:
    """The ``[low, high]`` an output is clamped to: ``out_format``'s range, ``relu`` and explicit bounds."""
    low, high = out_format.min_int, out_format.max_int
    if relu:
        low = max(low, int(zero_point))
    if clamp_min is not None:
        low = max(low, int(clamp_min))
    if clamp_max is not None:
        high = min(high, int(clamp_max))
    if low > high:
        raise ValueError(f"requantize bounds must satisfy low <= high, not [{low}, {high}]")
    return low, high


def dyadic_requantize(acc: int, m: int, e: int, *, zero_point: int = 0,
                      out_format: NumberFormat = INT8) -> int:
    """HAWQ-V3's dyadic requantization: ``clamp(round_half_even(acc * m / 2**e) + zero_point)``.

    ``m`` is a non-negative integer and ``e >= 0``; the product is exact.
    """
    _check_code("zero_point", zero_point, out_format)
    if not isinstance(m, int | np.integer) or m < 0:
        raise ValueError(f"dyadic multiplier m must be a non-negative integer, not {m!r}")
    scaled = round_shift(int(acc) * int(m), e, Rounding.HALF_EVEN)
    return clamp(scaled + int(zero_point), out_format.min_int, out_format.max_int)


def dyadic_multiplier(real: float, *, bits: int = 31) -> tuple[int, int]:
    """HAWQ-V3's dyadic number for ``real``: ``(m, e)`` with ``real ~= m / 2**e`` and ``m < 2**bits``.

    ``m = round_half_even(q * 2**bits)`` for ``real = q * 2**s`` (``q`` in ``[0.5, 1)``), ``e = bits - s``
    (``m`` of ``2**bits`` becomes ``2**(bits - 1)`` with ``e - 1``); ``real`` must be finite, positive and
    at most ``2**(bits - 1)`` (so that ``e >= 0``); ``real == 0`` gives ``(0, 0)``.
    """
    if not isinstance(real, int | float | np.floating | np.integer) or not math.isfinite(real) or real < 0:
        raise ValueError(f"real multiplier must be a finite non-negative number, not {real!r}")
    if real == 0:
        return 0, 0
    q, s = math.frexp(float(real))
    m = round(q * (1 << bits))  # Python's round: half to even, exact on a double
    e = bits - s
    if m == 1 << bits:
        m, e = m >> 1, e - 1
    if e < 0:
        raise ValueError(f"real multiplier {real!r} is too large for a dyadic number with {bits}-bit m")
    return m, e


def float32_requantize(acc: int, scale: float, zero_point: int = 0, *, out_format: NumberFormat = INT8) -> int:
    """onnxruntime's ``MlasRequantizeOutput`` on one value (see :func:`requantize_array`)."""
    return int(requantize_array(np.int64(acc), np.float32(scale), zero_point, out_format=out_format,
                                mode=Requantization.FLOAT32_HALF_EVEN))


def requantize_array(
    acc: npt.ArrayLike,
    scale: npt.ArrayLike,
    zero_point: npt.ArrayLike = 0,
    *,
    mode: Requantization | str = Requantization.TFLITE_DOUBLE,
    out_format: NumberFormat = INT8,
    clamp_min: int | None = None,
    clamp_max: int | None = None,
) -> np.ndarray:
    """Requantize an int32 accumulator array by ``mode`` (see the module docstring); ``int64`` codes.

    ``scale`` (real, positive) and ``zero_point`` (codes of ``out_format``) broadcast against ``acc``,
    e.g. one per output channel. The result is clamped to ``out_format``'s range narrowed by
    ``clamp_min``/``clamp_max`` (a fused ReLU is ``clamp_min=zero_point``).

    ``float32-half-even`` transcribes MLAS: ``v = float(acc) * scale`` (float32),
    ``v = min(max(v, low - zp), high - zp)``, then round half to even, plus ``zp``; the float32 scale is
    ``scale`` rounded to float32 once (pass onnxruntime's own float32 product of scales to match it).
    """
    mode = Requantization.parse(mode) if not isinstance(mode, Requantization) else mode
    acc_v = _codes("acc", acc, INT32)
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu" or (zp.size and (zp.min() < out_format.min_int or zp.max() > out_format.max_int)):
        raise ValueError(f"zero_point must hold codes of {out_format.name}, not {zero_point!r}")
    zp = zp.astype(np.int64)
    low, high = requant_bounds(out_format, 0, clamp_min=clamp_min, clamp_max=clamp_max)
    scale_v = np.asarray(scale, dtype=np.float64)
    if scale_v.size and (not np.all(np.isfinite(scale_v)) or scale_v.min() < 0):
        raise ValueError(f"scale must be finite and non-negative, not {scale!r}")
    if mode is Requantization.FLOAT32_HALF_EVEN:
        s32 = np.asarray(scale, dtype=np.float32)
        value = acc_v.astype(np.float32) * s32
        value = np.minimum(np.maximum(value, (low - zp).astype(np.float32)), (high - zp).astype(np.float32))
        return np.rint(value).astype(np.int64) + zp  # rint: half to even, as MLAS's magic-number add
    distinct, inverse = np.unique(scale_v, return_inverse=True)
    if mode is Requantization.DYADIC:
        pairs = [dyadic_multiplier(float(r)) for r in distinct]
        m = np.array([p[0] for p in pairs], dtype=np.int64)[inverse].reshape(scale_v.shape)
        e = np.array([p[1] for p in pairs], dtype=np.int64)[inverse].reshape(scale_v.shape)
        scaled = _round_half_even_shift(acc_v * m, e)
    else:
        single = mode is Requantization.TFLITE_SINGLE
        pairs = [quantize_multiplier(float(r), mode="single" if single else "double") for r in distinct]
        mult = np.array([p[0] for p in pairs], dtype=np.int64)[inverse].reshape(scale_v.shape)
        shift = np.array([p[1] for p in pairs], dtype=np.int64)[inverse].reshape(scale_v.shape)
        scaled = _mbqm_single(acc_v, mult, shift) if single else _mbqm_double(acc_v, mult, shift)
    return np.clip(scaled + zp, low, high)


def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _round_half_even_shift(values: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """:func:`round_shift` (``HALF_EVEN``) element-wise on int64 values and shifts (``0 <= shift < 63``)."""
    values, shift = np.broadcast_arrays(values, shift)
    floor = values >> shift
    remainder = values - (floor << shift)
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 1)
    up = (shift > 0) & ((remainder > half) | ((remainder == half) & (floor & 1 == 1)))
    return floor + up


def _mbqm_double(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """:func:`multiply_by_quantized_multiplier` (``"double"``) element-wise on int64 arrays."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    shifted = _wrap32(x << left)
    product = shifted * multiplier  # |product| < 2**62 (the multiplier is never INT32_MIN)
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C++ division toward zero
    mask = (np.left_shift(1, right)) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _mbqm_single(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """:func:`multiply_by_quantized_multiplier` (``"single"``) element-wise on int64 arrays."""
    total = 31 - shift
    return _wrap32((x * multiplier + np.left_shift(1, total - 1)) >> total)


def gemm_array(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    acc: npt.ArrayLike | None = None,
    a_format: NumberFormat = INT8,
    b_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> np.ndarray:
    """``acc + a @ b`` with numpy ``matmul`` broadcasting, exact, with the accumulator's overflow rule.

    Equal to :func:`dot` of each row of ``a`` and column of ``b`` (``k`` in ascending order, one
    :func:`mac` per step). Where the largest partial sum ``|acc| + k * max|a| * max|b|`` stays below
    ``2**53`` the products are summed by float64 BLAS (every partial sum is then an exact integer, so
    the order does not matter); if it also stays inside ``acc_format`` saturation can never act, and
    wrapping the exact sum once equals wrapping after every step. Otherwise, with saturation, the
    steps run one by one through :func:`dot`.
    """
    mode = _mode(acc_format, overflow)
    a_v, b_v = _codes("a", a, a_format), _codes("b", b, b_format)
    if a_v.ndim < 2 or b_v.ndim < 2 or a_v.shape[-1] != b_v.shape[-2]:
        raise ValueError(f"gemm_array needs a (... x m x k) and b (... x k x n), not shapes {a_v.shape} and "
                         f"{b_v.shape}")
    acc_v = None if acc is None else _codes("acc", acc, acc_format)
    k = a_v.shape[-1]
    big_a, big_b = _magnitude(a_v), _magnitude(b_v)
    big_acc = 0 if acc_v is None else _magnitude(acc_v)
    bound = big_acc + k * big_a * big_b
    if bound < 1 << 53 and _fits_int64(acc_format.bits, acc_format.signed) and (
            mode is Overflow.WRAP or bound <= min(-acc_format.min_int, acc_format.max_int)):
        total = np.matmul(a_v.astype(np.float64), b_v.astype(np.float64)).astype(np.int64)
        if acc_v is not None:
            total = total + acc_v
        return _finish(_apply(total, acc_format, mode), acc_format)
    rows = np.swapaxes(b_v, -1, -2)
    return dot(a_v[..., :, None, :], rows[..., None, :, :], acc=0 if acc_v is None else acc_v,
               a_format=a_format, b_format=b_format, acc_format=acc_format, overflow=mode)


TFLITE_ADD_LEFT_SHIFT = 20
"""TFLite's ``left_shift`` of a quantized ``ADD``: both inputs' offset codes are shifted up by it before
their rescale (``reference_ops::Add``), so the sum keeps 20 fractional bits."""


def tflite_add_multipliers(a_scale: float, b_scale: float, y_scale: float, *,
                           mode: Requantization | str = Requantization.TFLITE_DOUBLE
                           ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The ``(multiplier, shift)`` pairs of TFLite's quantized ``ADD`` (its ``Prepare``): the inputs'
    ``a_scale / twice_max`` and ``b_scale / twice_max`` and the output's ``twice_max / (2**20 y_scale)``,
    ``twice_max = 2 max(a_scale, b_scale)``, each :func:`quantize_multiplier` of the float32 scales in
    double, in ``mode``'s rounding (``tflite-double`` or ``tflite-single``)."""
    rounding = _tflite_rounding(mode)
    scales = [float(np.float32(v)) for v in (a_scale, b_scale, y_scale)]
    twice_max = 2 * max(scales[0], scales[1])
    return (quantize_multiplier(scales[0] / twice_max, mode=rounding),
            quantize_multiplier(scales[1] / twice_max, mode=rounding),
            quantize_multiplier(twice_max / ((1 << TFLITE_ADD_LEFT_SHIFT) * scales[2]), mode=rounding))


def tflite_add_codes(a: npt.ArrayLike, b: npt.ArrayLike, a_zero_point: int, b_zero_point: int,
                     multipliers: Sequence[tuple[int, int]], y_zero_point: int, *,
                     mode: Requantization | str = Requantization.TFLITE_DOUBLE,
                     out_format: NumberFormat = INT8) -> np.ndarray:
    """TFLite's quantized ``ADD`` of codes ``a`` and ``b`` with its three ``(multiplier, shift)`` pairs
    (:func:`tflite_add_multipliers`): ``y = clamp(MBQM(int32(MBQM(int32((a - a_zp) << 20), ma) +
    MBQM(int32((b - b_zp) << 20), mb)), my) + y_zp)`` to ``out_format``, element-wise with broadcasting
    (MBQM: :func:`multiply_by_quantized_multiplier` in ``mode``'s rounding)."""
    kernel = _mbqm_single if _tflite_rounding(mode) == "single" else _mbqm_double
    (ma, sa), (mb, sb), (my, sy) = multipliers

    def scaled(values: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
        return kernel(values, np.int64(multiplier), np.int64(shift))

    a_v = np.asarray(a).astype(np.int64) - int(a_zero_point)
    b_v = np.asarray(b).astype(np.int64) - int(b_zero_point)
    left = TFLITE_ADD_LEFT_SHIFT
    total = scaled(_wrap32(a_v << left), ma, sa) + scaled(_wrap32(b_v << left), mb, sb)
    raw = scaled(_wrap32(total), my, sy) + int(y_zero_point)
    return np.clip(raw, out_format.min_int, out_format.max_int)


def tflite_add(a: npt.ArrayLike, b: npt.ArrayLike, a_scale: float, a_zero_point: int, b_scale: float,
               b_zero_point: int, y_scale: float, y_zero_point: int, *,
               mode: Requantization | str = Requantization.TFLITE_DOUBLE,
               out_format: NumberFormat = INT8) -> np.ndarray:
    """TFLite's quantized ``ADD`` (``reference_ops::Add`` with ``left_shift = 20``), element-wise with broadcasting.

    ``twice_max = 2 * max(a_scale, b_scale)``; input multipliers ``a_scale / twice_max`` and
    ``b_scale / twice_max``, output multiplier ``twice_max / (2**20 * y_scale)`` (TFLite's
    ``QuantizeMultiplier`` of each, in double); ``y = clamp(MBQM(MBQM((a - a_zp) << 20, ma) +
    MBQM((b - b_zp) << 20, mb), my) + y_zp)``: :func:`tflite_add_codes` of
    :func:`tflite_add_multipliers`.
    """
    multipliers = tflite_add_multipliers(a_scale, b_scale, y_scale, mode=mode)
    return tflite_add_codes(a, b, a_zero_point, b_zero_point, multipliers, y_zero_point, mode=mode,
                            out_format=out_format)


def _tflite_rounding(mode: Requantization | str) -> RequantMode:
    mode = Requantization.parse(mode) if not isinstance(mode, Requantization) else mode
    if mode not in (Requantization.TFLITE_DOUBLE, Requantization.TFLITE_SINGLE):
        raise ValueError(f"tflite_add needs mode tflite-double or tflite-single, not {mode.value}")
    return "single" if mode is Requantization.TFLITE_SINGLE else "double"


def fma_float32(a: npt.ArrayLike, b: npt.ArrayLike, c: npt.ArrayLike) -> np.ndarray:
    """``a * b + c`` of float32 values with one rounding to float32 (IEEE fused multiply-add).

    The product of two float32 values is exact in float64; the sum is taken in float64 with its exact
    error (TwoSum) and rounded to odd, so the final rounding to float32 is the correctly rounded one
    (53 >= 24 + 2 bits: rounding to odd first never causes a double-rounding error).
    """
    product = np.asarray(a, dtype=np.float32).astype(np.float64) * np.asarray(b, dtype=np.float32).astype(np.float64)
    addend = np.asarray(c, dtype=np.float32).astype(np.float64)
    total = product + addend
    virtual = total - product
    error = (product - (total - virtual)) + (addend - virtual)  # TwoSum: exact, total + error == product + addend
    bits = total.view(np.int64) if total.ndim else np.asarray(total).reshape(1).view(np.int64)
    inexact_even = (error != 0) & ((bits.reshape(total.shape) & 1) == 0)
    toward = np.where(error > 0, np.inf, -np.inf)
    total = np.where(inexact_even, np.nextafter(total, toward), total)  # round to odd
    return total.astype(np.float32)


#: MLAS's logistic constants (Eigen's rational approximation), as float32: the clamp, p's and q's coefficients.
_LOGISTIC_RANGE = 18.0
_LOGISTIC_ALPHA = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
                   2.48287947061529e-01)
_LOGISTIC_BETA = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
                  1.16817656904453e-01, 9.93151921023180e-01)


def logistic_float32(x: npt.ArrayLike) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))`` as onnxruntime's x86-64 MLAS computes it (its FMA3
    kernel, ``MlasLogisticKernelFma3``), in float32, element-wise.

    ``x`` clamped to ``[-18, 18]``; ``x2 = x * x``; ``p = x * (((a9 x2 + a7) x2 + a5) x2 + a3) x2 + a1)``
    and ``q = ((((b10 x2 + b8) x2 + b6) x2 + b4) x2 + b2) x2 + b0``, each step one fused multiply-add;
    ``max(0, p / q + 0.5)``.
    """
    value = np.clip(np.asarray(x, dtype=np.float32), np.float32(-_LOGISTIC_RANGE), np.float32(_LOGISTIC_RANGE))
    squared = value * value
    alpha, beta = [np.float32(a) for a in _LOGISTIC_ALPHA], [np.float32(b) for b in _LOGISTIC_BETA]
    p = fma_float32(squared, alpha[0], alpha[1])
    for a in alpha[2:]:
        p = fma_float32(squared, p, a)
    q = fma_float32(squared, beta[0], beta[1])
    for b in beta[2:]:
        q = fma_float32(squared, q, b)
    ratio = (value * p).astype(np.float32) / q
    return np.maximum(np.float32(0), ratio.astype(np.float32) + np.float32(0.5))


def quantize_linear(x: npt.ArrayLike, scale: npt.ArrayLike, zero_point: npt.ArrayLike = 0, *,
                    out_format: NumberFormat = INT8) -> np.ndarray:
    """ONNX ``QuantizeLinear`` as onnxruntime's MLAS computes it, as ``int64`` codes of ``out_format``.

    ``float32(x) / float32(scale)`` (one float32 division), clamped to ``[low - zp, high - zp]``, rounded
    half to even, plus ``zero_point``; ``scale`` and ``zero_point`` broadcast against ``x``.
    """
    x32 = np.asarray(x, dtype=np.float32)
    zp = np.asarray(zero_point).astype(np.int64)
    value = x32 / np.asarray(scale, dtype=np.float32)
    value = np.minimum(np.maximum(value, (out_format.min_int - zp).astype(np.float32)),
                       (out_format.max_int - zp).astype(np.float32))
    return np.rint(value).astype(np.int64) + zp


def dequantize_linear(q: npt.ArrayLike, scale: npt.ArrayLike, zero_point: npt.ArrayLike = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``float32(q - zero_point) * float32(scale)`` (float32)."""
    diff = np.asarray(q).astype(np.int64) - np.asarray(zero_point).astype(np.int64)
    return diff.astype(np.float32) * np.asarray(scale, dtype=np.float32)


# -- a systolic tile ------------------------------------------------------------------------------

def systolic_tile(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    *,
    dataflow: Dataflow | str,
    a_format: NumberFormat = INT8,
    b_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> np.ndarray:
    """The ``m x n`` outputs of the GEMM tile ``x (m x k) @ w (k x n)`` as one fold on the array.

    Output ``[i, j]`` is :func:`dot` of ``x[i, :]`` and ``w[:, j]``: ``k`` is reduced in ascending
    order with one :func:`mac` per step, for every dataflow (the order in which a WS column, an OS
    PE or an IS row accumulates), so saturation acts after every step as the hardware does.
    """
    Dataflow.parse(dataflow.value if isinstance(dataflow, Dataflow) else dataflow)
    x_v, w_v = np.asarray(x), np.asarray(w)
    if x_v.ndim != 2 or w_v.ndim != 2 or x_v.shape[1] != w_v.shape[0]:
        raise ValueError(f"systolic_tile needs x (m x k) and w (k x n), not shapes {x_v.shape} and {w_v.shape}")
    return dot(x_v[:, None, :], w_v.T[None, :, :], a_format=a_format, b_format=b_format,
               acc_format=acc_format, overflow=overflow)


def systolic_tile_cycles(array: SystolicArray, dataflow: Dataflow | str, m: int, k: int, n: int, *,
                         fill: bool = True, drain: bool = True) -> int:
    """Cycles of the GEMM tile ``m x k @ k x n``: :func:`accel.timing.gemm_tile_cycles`, nothing else.

    Measured on the RTL, this is the number of clock edges from the one that accepts the first
    operand to the one that emits the last result (see :mod:`rtl.systolic`).
    """
    from accel.timing import gemm_tile_cycles  # accel.timing imports accel.commands: only when asked

    if not isinstance(dataflow, Dataflow):
        dataflow = Dataflow.parse(dataflow)
    return gemm_tile_cycles(array, dataflow, m, k, n, fill=fill, drain=drain)


# -- helpers -------------------------------------------------------------------------------------

def _divide_toward_zero(numerator: int, denominator: int) -> int:
    """C++'s integer division (truncates toward zero) for a positive ``denominator``."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _int32(name: str, value: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int32, not {value!r}")
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{name} must be an int32 in [{INT32_MIN}, {INT32_MAX}], not {value}")
    return int(value)


def _shift(shift: int) -> int:
    if isinstance(shift, bool | np.bool_) or not isinstance(shift, int | np.integer) or shift < 0:
        raise ValueError(f"shift must be a non-negative integer, not {shift!r}")
    return int(shift)


def _requant_shift(shift: int) -> int:
    if isinstance(shift, bool | np.bool_) or not isinstance(shift, int | np.integer) or not -31 <= shift <= 30:
        raise ValueError(f"shift must be an integer from -31 to 30, not {shift!r}")
    return int(shift)


def _rounding(mode: Rounding | str) -> Rounding:
    if isinstance(mode, Rounding):
        return mode
    try:
        return Rounding(str(mode).strip().lower())
    except ValueError:
        raise ValueError(
            f"Rounding mode must be one of {', '.join(r.value for r in Rounding)}, not {mode!r}"
        ) from None


def _requant_mode(mode: str) -> RequantMode:
    if mode not in ("double", "single"):
        raise ValueError(f"requantize mode must be 'double' or 'single', not {mode!r}")
    return mode  # type: ignore[return-value]


def _mode(fmt: NumberFormat, mode: Overflow | None) -> Overflow:
    mode = fmt.overflow if mode is None else mode
    if not isinstance(mode, Overflow):
        raise ValueError(f"Overflow mode must be an Overflow, not {mode!r}")
    return mode


def _check_code(name: str, value: int, fmt: NumberFormat) -> None:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer code of {fmt.name}, not {value!r}")
    if not fmt.min_int <= value <= fmt.max_int:
        raise ValueError(
            f"{name} must be a code of {fmt.name} in [{fmt.min_int}, {fmt.max_int}], not {value}"
        )


def _fits_int64(bits: int, signed: bool = True) -> bool:
    return bits <= 63 or (bits == 64 and signed)


def _codes(name: str, values: npt.ArrayLike, fmt: NumberFormat) -> np.ndarray:
    """``values`` checked to be codes of ``fmt``: int64 if every code fits, else Python ints."""
    array = np.asarray(values)
    if array.dtype == np.bool_ or array.dtype.kind not in "iuO":
        raise ValueError(f"{name} must hold integer codes of {fmt.name}, not dtype {array.dtype}")
    if array.dtype == object and not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in array.flat
    ):
        raise ValueError(f"{name} must hold integer codes of {fmt.name}, not other objects")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < fmt.min_int or high > fmt.max_int:
            raise ValueError(
                f"{name} must hold codes of {fmt.name} in [{fmt.min_int}, {fmt.max_int}], "
                f"not values in [{low}, {high}]"
            )
    if _fits_int64(fmt.bits, fmt.signed):
        return array.astype(np.int64)
    return np.vectorize(int, otypes=[object])(array) if array.size else array.astype(object)


def _products(a: np.ndarray, b: np.ndarray, a_format: NumberFormat, b_format: NumberFormat) -> np.ndarray:
    """Exact element-wise products (int64 while ``a.bits + b.bits <= 62``)."""
    if a.dtype == object or b.dtype == object or a_format.bits + b_format.bits > 62:
        return a.astype(object) * b.astype(object)
    return a * b


def _add(acc: np.ndarray, products: np.ndarray) -> np.ndarray:
    """Exact ``acc + products``: int64 when both operands are below 2**61 in magnitude."""
    acc, products = np.asarray(acc), np.asarray(products)
    if acc.dtype != object != products.dtype and max(_magnitude(acc), _magnitude(products)) < 1 << 61:
        return acc + products
    return acc.astype(object) + products.astype(object)


def _magnitude(values: np.ndarray) -> int:
    """The largest ``|value|`` as a Python int (``np.abs`` of int64's least value overflows to itself)."""
    values = np.asarray(values)
    return max(-int(values.min()), int(values.max()), 0) if values.size else 0


def _apply(values: np.ndarray, fmt: NumberFormat, mode: Overflow) -> np.ndarray:
    """:func:`apply_overflow` element-wise on exact values."""
    values = np.asarray(values)
    if mode is Overflow.SATURATE:
        return np.clip(values, fmt.min_int, fmt.max_int)
    if values.dtype != object and fmt.bits >= 63:
        values = values.astype(object)
    low = values & ((1 << fmt.bits) - 1)
    if fmt.signed:
        low = np.where(low > fmt.max_int, low - (1 << fmt.bits), low)
    return low


def _finish(values: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    values = np.asarray(values)
    if _fits_int64(fmt.bits, fmt.signed):
        return values.astype(np.int64)
    return values.astype(object)
