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

Names left free for the issues that follow: ``round_shift`` / ``requantize`` (rounding with
:class:`~accel.formats.Rounding`), ``nm_compress`` / ``nm_decompress`` (N:M sparsity) and
``systolic_tile`` (a tile's outputs and cycle count).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accel.formats import INT8, INT32, NumberFormat, Overflow

__all__ = [
    "wrap",
    "saturate",
    "apply_overflow",
    "product_format",
    "mac",
    "mac_array",
    "dot",
]


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


# -- helpers -------------------------------------------------------------------------------------

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
    if acc.dtype != object and products.dtype != object:
        big = max(int(np.abs(acc).max(initial=0)), int(np.abs(products).max(initial=0)))
        if big < 1 << 61:
            return acc + products
    return acc.astype(object) + products.astype(object)


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
