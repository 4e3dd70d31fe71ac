"""A serial I/O harness that lets any synchronous unit be placed and routed on a small package.

A systolic tile has hundreds of port bits; an iCE40UP5K in the SG48 package has 39 I/O pins. For
place-and-route and Fmax, :class:`SerialHarness` wraps a unit so that the top level has only five
pins besides the clock and reset:

``sin``    serial data in (registered, like ``shift`` and ``load``): shifted into a register chain as
           wide as all the unit's inputs together;
``shift``  when high, the input chain (and the output chain) shift by one bit each clock edge;
``load``   when high (and ``shift`` low), the output chain captures all the unit's outputs at once;
``sout``   the last bit of the output chain.

Every unit input is driven by a register and every unit output is captured by a register, so each
timing path through the unit starts and ends at a flip-flop on the same clock: nextpnr's Fmax is then
the unit's register-to-register Fmax (plus one register stage at each port, as in an out-of-context
run with registered boundaries). Nothing can be optimised away, because every output reaches ``sout``.

The harness adds about two flip-flops and one LUT per port bit; resource counts for a unit are
therefore taken from synthesis of the bare unit (:func:`rtl.fpga.synth.synthesize`), and the harness is used
only for placement, routing and timing.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError

__all__ = ["SerialHarness", "port_bits"]


def port_bits(unit: wiring.Component) -> tuple[int, int]:
    """``(input bits, output bits)`` of ``unit``'s signature (clock and reset excluded)."""
    ins = outs = 0
    for _path, member, value in unit.signature.flatten(unit):
        width = len(Value.cast(value))
        if member.flow is wiring.In:
            ins += width
        else:
            outs += width
    return ins, outs


class SerialHarness(wiring.Component):
    """Wrap ``unit`` (a synchronous ``wiring.Component``) behind a serial shift-register interface.

    The unit is instantiated as submodule ``dut``; its inputs are the bits of the input chain in
    signature order (first member in the lowest bits), its outputs are captured in the same order.
    """

    def __init__(self, unit: wiring.Component) -> None:
        if not isinstance(unit, wiring.Component):
            raise ConfigError(f"Harnessed unit must be an amaranth.lib.wiring.Component, not {unit!r}")
        self.unit = unit
        self.in_bits, self.out_bits = port_bits(unit)
        if self.out_bits == 0:
            raise ConfigError(f"Harnessed unit must have at least one output port, {unit!r} has none")
        super().__init__({"sin": In(1), "shift": In(1), "load": In(1), "sout": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = unit = self.unit
        ins, outs = [], []
        for _path, member, value in unit.signature.flatten(unit):
            (ins if member.flow is wiring.In else outs).append(Value.cast(value))

        # The control pins are registered first, so that no timing path starts at a pin.
        sin, shift, load = Signal(), Signal(), Signal()
        m.d.sync += [sin.eq(self.sin), shift.eq(self.shift), load.eq(self.load)]

        if self.in_bits:
            chain_in = Signal(self.in_bits)
            with m.If(shift):
                m.d.sync += chain_in.eq(Cat(sin, chain_in[:-1]))
            m.d.comb += Cat(*ins).eq(chain_in)

        chain_out = Signal(self.out_bits)
        with m.If(shift):
            m.d.sync += chain_out.eq(Cat(chain_out[1:], chain_in[-1] if self.in_bits else sin))
        with m.Elif(load):
            m.d.sync += chain_out.eq(Cat(*outs))
        m.d.comb += self.sout.eq(chain_out[0])
        return m
