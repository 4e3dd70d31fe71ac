"""Number formats of the datapath: signed/unsigned integers and fixed-point Qm.n.

A :class:`NumberFormat` is a value: total width in bits, signedness, the number of fractional bits,
and what happens on rounding and overflow. Its text form is what TOML files and the command line use:

``int8``, ``uint16``, ``int32``
    integers (no fractional bits);
``q1.6``, ``uq4.4``
    fixed point Qm.n: ``m`` integer bits and ``n`` fractional bits; the sign bit is extra for the
    signed ``q`` form (``q1.6`` is 8 bits wide), none for the unsigned ``uq`` form.

:class:`Requantization` names how the accumulator's read path scales an int32 accumulator back to
the input format (``sim.numerics.requantize_array`` implements each).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from accel.errors import ConfigError

__all__ = ["Rounding", "Overflow", "Requantization", "NumberFormat", "INT8", "INT32"]


class Rounding(Enum):
    """How a value is rounded when fractional bits are dropped."""

    TRUNCATE = "truncate"  # toward minus infinity (an arithmetic shift right)
    HALF_UP = "half_up"  # round half toward plus infinity
    HALF_EVEN = "half_even"  # round half to even (banker's rounding)
    HALF_AWAY = "half_away"  # round half away from zero (gemmlowp's RoundingDivideByPOT)


class Overflow(Enum):
    """What happens to a value outside the representable range."""

    WRAP = "wrap"
    SATURATE = "saturate"


class Requantization(Enum):
    """How the hardware requantizes an accumulator ``acc`` by a real scale ``s`` to an output code.

    ``tflite-double``
        TFLite/gemmlowp: ``s`` as an int32 multiplier and a shift, ``SaturatingRoundingDoublingHighMul``
        then ``RoundingDivideByPOT`` (two roundings). The default.
    ``tflite-single``
        TFLite's ``TFLITE_SINGLE_ROUNDING``: one 64-bit product and one rounding shift.
    ``dyadic``
        HAWQ-V3: ``round_half_even(acc * m / 2**e)`` with an integer ``m`` below ``2**31``.
    ``float32-half-even``
        onnxruntime's CPU kernels (MLAS ``MlasRequantizeOutput``) and Gemmini's accumulator scaling:
        ``float32(acc) * float32(s)``, clamped, rounded half to even in float32.
    """

    TFLITE_DOUBLE = "tflite-double"
    TFLITE_SINGLE = "tflite-single"
    DYADIC = "dyadic"
    FLOAT32_HALF_EVEN = "float32-half-even"

    @classmethod
    def parse(cls, text: str) -> Requantization:
        if isinstance(text, Requantization):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise ConfigError(
                f"Requantization must be one of {', '.join(repr(r.value) for r in cls)}, not {text!r}"
            ) from None


_PATTERN = re.compile(r"^(?:(?P<iu>u?)int(?P<ibits>\d+)|(?P<qu>u?)q(?P<m>\d+)\.(?P<n>\d+))$")


@dataclass(frozen=True)
class NumberFormat:
    """A two's-complement (or unsigned) fixed-point number format.

    ``bits`` is the whole width, ``frac_bits`` how many of them are below the binary point.
    """

    bits: int
    signed: bool = True
    frac_bits: int = 0
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 64:
            raise ConfigError(f"Number format width must be an integer from 1 to 64, not {self.bits!r}")
        if not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits <= self.bits - self.signed:
            raise ConfigError(
                f"Number format fractional bits must be an integer from 0 to {self.bits - self.signed}, "
                f"not {self.frac_bits!r}"
            )

    @classmethod
    def parse(cls, text: str, *, rounding: Rounding = Rounding.HALF_EVEN,
              overflow: Overflow = Overflow.SATURATE) -> NumberFormat:
        """Read ``int8``, ``uint16``, ``q1.6`` or ``uq4.4`` (case-insensitive)."""
        match = _PATTERN.match(text.strip().lower()) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(
                f"Number format must look like 'int8', 'uint16', 'q1.6' or 'uq4.4', not {text!r}"
            )
        if match["ibits"] is not None:
            return cls(int(match["ibits"]), signed=not match["iu"], rounding=rounding, overflow=overflow)
        signed = not match["qu"]
        int_bits, frac_bits = int(match["m"]), int(match["n"])
        return cls(int_bits + frac_bits + signed, signed=signed, frac_bits=frac_bits,
                   rounding=rounding, overflow=overflow)

    @property
    def name(self) -> str:
        """The text form that :meth:`parse` reads back."""
        if self.frac_bits == 0:
            return f"{'' if self.signed else 'u'}int{self.bits}"
        return f"{'' if self.signed else 'u'}q{self.bits - self.frac_bits - self.signed}.{self.frac_bits}"

    @property
    def min_int(self) -> int:
        """The smallest raw (integer) code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """The largest raw (integer) code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def size_bytes(self) -> int:
        """Bytes one value occupies in memory (whole bytes)."""
        return (self.bits + 7) // 8

    def __str__(self) -> str:
        return self.name


INT8 = NumberFormat(8)
INT32 = NumberFormat(32, overflow=Overflow.WRAP)
