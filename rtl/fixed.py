"""Amaranth shapes for :class:`~accel.formats.NumberFormat` values.

A format's raw integer code is what travels on a wire, so its shape is ``signed(bits)`` or
``unsigned(bits)``; the binary point is a convention between the ends, not part of the shape.
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed, unsigned

from accel.errors import ConfigError
from accel.formats import NumberFormat

__all__ = ["shape_of", "check_format"]


def check_format(name: str, fmt: object) -> NumberFormat:
    """Return ``fmt`` if it is a :class:`NumberFormat`; raise :class:`ConfigError` naming ``name``."""
    if not isinstance(fmt, NumberFormat):
        raise ConfigError(f"{name} must be a NumberFormat, not {fmt!r}")
    return fmt


def shape_of(fmt: NumberFormat) -> Shape:
    """The shape of one raw code of ``fmt``: ``signed(fmt.bits)`` or ``unsigned(fmt.bits)``."""
    check_format("Format", fmt)
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)
