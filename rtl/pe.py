"""One multiply-accumulate processing element, the cell of the systolic array.

:class:`MacPE` computes exactly :func:`sim.numerics.mac` once per valid input, in a two-stage
pipeline (register the product, then accumulate), which lets synthesis put the multiplier in a DSP
block with its output register.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow
from rtl.fixed import check_format, shape_of
from sim.numerics import product_format

__all__ = ["MacPE"]


class MacPE(wiring.Component):
    """A multiply-accumulate PE: ``acc <- overflow(acc + a * b)`` on every valid cycle.

    Parameters
    ----------
    a_format, b_format:
        Formats of the two operands (default ``int8``).
    acc_format:
        Format of the accumulator (default ``int32``). Its ``overflow`` field chooses what happens
        when a sum leaves its range: ``WRAP`` (two's complement, the default ``INT32``) or
        ``SATURATE`` (clamp). It must be at least as wide as the product, carry the product's
        fractional bits, and be signed if either operand is.

    Members
    -------
    a : In(shape of a_format)
    b : In(shape of b_format)
    valid : In(1)
        ``a`` and ``b`` hold an operand pair this cycle.
    clear : In(1)
        Start a new accumulation: with ``valid`` the accumulator becomes ``overflow(a * b)``, without
        it the accumulator becomes 0.
    acc : Out(shape of acc_format)
        The accumulator, a register (reset value 0).

    Timing
    ------
    Inputs are sampled at a rising edge of the ``sync`` clock; their effect is visible on ``acc``
    after :attr:`latency` (= 2) rising edges counting the sampling one. The PE accepts a new pair on
    every edge (initiation interval 1) and its behaviour on each pair is exactly
    ``acc = sim.numerics.mac(0 if clear else acc, a, b, ...)``.
    """

    latency: int = 2
    """Rising edges from sampling ``a``/``b``/``valid``/``clear`` to the updated ``acc``."""

    def __init__(self, *, a_format: NumberFormat = INT8, b_format: NumberFormat = INT8,
                 acc_format: NumberFormat = INT32) -> None:
        try:
            self._a_format = check_format("Operand a format", a_format)
            self._b_format = check_format("Operand b format", b_format)
            self._acc_format = check_format("Accumulator format", acc_format)
            self._product_format = product_format(a_format, b_format)
            self._check_accumulator()
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        super().__init__({
            "a": In(shape_of(a_format)),
            "b": In(shape_of(b_format)),
            "valid": In(1),
            "clear": In(1),
            "acc": Out(shape_of(acc_format)),
        })

    def _check_accumulator(self) -> None:
        acc_format, product = self._acc_format, self._product_format
        operands = f"a {self._a_format.name} x {self._b_format.name} product"
        if product.signed and not acc_format.signed:
            raise ConfigError(
                f"Accumulator format must be signed when an operand is signed, not {acc_format.name}"
            )
        if acc_format.bits < product.bits:
            raise ConfigError(
                f"Accumulator format must be at least {product.bits} bits wide to hold {operands}, "
                f"not {acc_format.bits}"
            )
        if acc_format.frac_bits != product.frac_bits:
            raise ConfigError(
                f"Accumulator format must have {product.frac_bits} fractional bits (those of {operands}), "
                f"not {acc_format.frac_bits}"
            )

    @property
    def a_format(self) -> NumberFormat:
        return self._a_format

    @property
    def b_format(self) -> NumberFormat:
        return self._b_format

    @property
    def acc_format(self) -> NumberFormat:
        return self._acc_format

    @property
    def parameters(self) -> dict[str, str]:
        """The construction parameters as text (for manifests and testbenches)."""
        return {
            "a_format": self._a_format.name,
            "b_format": self._b_format.name,
            "acc_format": self._acc_format.name,
            "overflow": self._acc_format.overflow.value,
        }

    def elaborate(self, platform: object) -> Module:
        m = Module()
        acc_format = self._acc_format

        # Stage 1: register the exact product and the control bits that travel with it.
        product = Signal(shape_of(self._product_format))
        product_valid = Signal()
        product_clear = Signal()
        m.d.sync += [
            product.eq(self.a * self.b),
            product_valid.eq(self.valid),
            product_clear.eq(self.clear),
        ]

        # Stage 2: add it to the accumulator (or to zero on clear), exactly, one bit wider.
        sum_bits = max(acc_format.bits, self._product_format.bits) + 1
        total = Signal(signed(sum_bits) if acc_format.signed else unsigned(sum_bits))
        m.d.comb += total.eq(Mux(product_clear, 0, self.acc) + product)

        with m.If(product_valid):
            if acc_format.overflow is Overflow.SATURATE:
                with m.If(total > acc_format.max_int):
                    m.d.sync += self.acc.eq(acc_format.max_int)
                with m.Elif(total < acc_format.min_int):
                    m.d.sync += self.acc.eq(acc_format.min_int)
                with m.Else():
                    m.d.sync += self.acc.eq(total)
            else:
                m.d.sync += self.acc.eq(total)  # keeps the low bits: two's-complement wrap
        with m.Elif(product_clear):
            m.d.sync += self.acc.eq(0)

        return m
