"""The stand-alone multiply-accumulate PE: the array's output-stationary cell behind an input register.

:class:`MacPE` computes exactly :func:`sim.numerics.mac` once per valid input. It is not a second
implementation of the MAC: its arithmetic, format checks and overflow rule are those of
:class:`rtl.systolic_pe.OutputStationaryPE` (the cell every output-stationary tile is built of), with
one register stage in front of it (the operands and their tags, where synthesis puts a DSP block's
input registers). What is synthesized or simulated as ``pe`` is therefore the array's own cell.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from rtl.fixed import check_format, shape_of
from rtl.systolic_pe import OutputStationaryPE, check_mac_formats

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
        fractional bits, and be signed if either operand is
        (:func:`rtl.systolic_pe.check_mac_formats`).

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
            check_mac_formats(a_format, b_format, acc_format)
            self._a_format = check_format("Operand a format", a_format)
            self._b_format = check_format("Operand b format", b_format)
            self._acc_format = check_format("Accumulator format", acc_format)
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
        m.submodules.cell = cell = OutputStationaryPE(a_format=self._a_format, b_format=self._b_format,
                                                      acc_format=self._acc_format)

        # Stage 1: register the operands and their tags.
        a, b = Signal(shape_of(self._a_format)), Signal(shape_of(self._b_format))
        valid, clear = Signal(), Signal()
        m.d.sync += [a.eq(self.a), b.eq(self.b), valid.eq(self.valid), clear.eq(self.clear)]

        # Stage 2: the output-stationary cell. A clear without a pair is a first beat of 0 * b.
        m.d.comb += [
            cell.a_in.eq(Mux(valid, a, 0)),
            cell.b_in.eq(b),
            cell.valid_in.eq(valid | clear),
            cell.first_in.eq(clear),
            cell.enable.eq(1),
            self.acc.eq(cell.acc),
        ]
        return m
