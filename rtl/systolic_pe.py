"""Processing elements of the systolic tile: one per dataflow, each a single-cycle registered MAC.

Both PEs compute one :func:`sim.numerics.mac` step per enabled clock edge and register everything
they pass on, so an operand moves one PE per cycle. ``enable`` is the array's global advance: when
it is low nothing in the PE changes (the array stalls as one).

:class:`WeightStationaryPE`
    holds one weight; the input ``x`` flows left to right, the partial sum top to bottom:
    ``psum_out <- overflow(psum_in + x_in * weight)``, ``x_out <- x_in``.
:class:`OutputStationaryPE`
    holds one accumulator; ``a`` (with its ``valid``/``first`` tags) flows left to right, ``b`` top
    to bottom: on a valid beat ``acc <- overflow((0 if first else acc) + a * b)``.

``overflow`` is the accumulator format's rule (wrap or saturate), applied after every step as
:func:`sim.numerics.dot` does.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import NumberFormat, Overflow
from rtl.fixed import check_format, shape_of
from sim.numerics import product_format

__all__ = ["check_mac_formats", "overflow_sum", "WeightStationaryPE", "OutputStationaryPE"]


def check_mac_formats(a_format: object, b_format: object, acc_format: object) -> None:
    """Raise :class:`ConfigError` unless ``acc_format`` can hold sums of ``a_format x b_format`` products."""
    a_format = check_format("Operand a format", a_format)
    b_format = check_format("Operand b format", b_format)
    acc_format = check_format("Accumulator format", acc_format)
    product = product_format(a_format, b_format)
    operands = f"a {a_format.name} x {b_format.name} product"
    if product.signed and not acc_format.signed:
        raise ConfigError(f"Accumulator format must be signed when an operand is signed, not {acc_format.name}")
    if acc_format.bits < product.bits:
        raise ConfigError(f"Accumulator format must be at least {product.bits} bits wide to hold {operands}, "
                          f"not {acc_format.bits}")
    if acc_format.frac_bits != product.frac_bits:
        raise ConfigError(f"Accumulator format must have {product.frac_bits} fractional bits (those of "
                          f"{operands}), not {acc_format.frac_bits}")


def overflow_sum(m: Module, base: Value, product: Value, acc_format: NumberFormat, name: str) -> Value:
    """``base + product`` exactly (one bit wider than either), brought into ``acc_format`` by its rule.

    With ``WRAP`` the caller's assignment to an ``acc_format``-wide signal keeps the low bits; with
    ``SATURATE`` the sum is clamped to ``[min_int, max_int]`` here.
    """
    bits = max(len(base), len(product)) + 1
    total = Signal(signed(bits) if acc_format.signed else unsigned(bits), name=name)
    m.d.comb += total.eq(base + product)
    if acc_format.overflow is Overflow.SATURATE:
        return Mux(total > acc_format.max_int, acc_format.max_int,
                   Mux(total < acc_format.min_int, acc_format.min_int, total))
    return total


class WeightStationaryPE(wiring.Component):
    """A weight-stationary PE: ``psum_out <- overflow(psum_in + x_in * weight)`` every enabled edge.

    Members
    -------
    x_in : In(a_format)        the input arriving from the left
    psum_in : In(acc_format)   the partial sum arriving from above (0 on the top row)
    weight_in : In(b_format)   the weight to hold, taken when ``load`` and ``enable`` are high
    load : In(1)
    enable : In(1)             the array's global advance
    x_out : Out(a_format)      ``x_in``, registered (to the PE on the right)
    psum_out : Out(acc_format) the new partial sum, registered (to the PE below)
    """

    def __init__(self, *, a_format: NumberFormat, b_format: NumberFormat, acc_format: NumberFormat) -> None:
        check_mac_formats(a_format, b_format, acc_format)
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        super().__init__({
            "x_in": In(shape_of(a_format)),
            "psum_in": In(shape_of(acc_format)),
            "weight_in": In(shape_of(b_format)),
            "load": In(1),
            "enable": In(1),
            "x_out": Out(shape_of(a_format)),
            "psum_out": Out(shape_of(acc_format)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        weight = Signal(shape_of(self.b_format))
        new_psum = overflow_sum(m, self.psum_in, self.x_in * weight, self.acc_format, "psum_total")
        with m.If(self.enable):
            m.d.sync += [self.x_out.eq(self.x_in), self.psum_out.eq(new_psum)]
            with m.If(self.load):
                m.d.sync += weight.eq(self.weight_in)
        return m


class OutputStationaryPE(wiring.Component):
    """An output-stationary PE: on a valid beat ``acc <- overflow((0 if first else acc) + a * b)``.

    Members
    -------
    a_in : In(a_format), valid_in : In(1), first_in : In(1)
        the left operand and its tags (``first``: the first reduction step of a new output)
    b_in : In(b_format)        the top operand
    enable : In(1)             the array's global advance
    a_out, valid_out, first_out : Out
        ``a_in`` and its tags, registered (to the PE on the right)
    b_out : Out(b_format)      ``b_in``, registered (to the PE below)
    acc : Out(acc_format)      the accumulator register
    """

    def __init__(self, *, a_format: NumberFormat, b_format: NumberFormat, acc_format: NumberFormat) -> None:
        check_mac_formats(a_format, b_format, acc_format)
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        super().__init__({
            "a_in": In(shape_of(a_format)),
            "valid_in": In(1),
            "first_in": In(1),
            "b_in": In(shape_of(b_format)),
            "enable": In(1),
            "a_out": Out(shape_of(a_format)),
            "valid_out": Out(1),
            "first_out": Out(1),
            "b_out": Out(shape_of(b_format)),
            "acc": Out(shape_of(acc_format)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        base = Mux(self.first_in, 0, self.acc)
        new_acc = overflow_sum(m, base, self.a_in * self.b_in, self.acc_format, "acc_total")
        with m.If(self.enable):
            m.d.sync += [
                self.a_out.eq(self.a_in),
                self.valid_out.eq(self.valid_in),
                self.first_out.eq(self.first_in),
                self.b_out.eq(self.b_in),
            ]
            with m.If(self.valid_in):
                m.d.sync += self.acc.eq(new_acc)
        return m
