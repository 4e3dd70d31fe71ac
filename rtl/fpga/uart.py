"""A UART receiver and transmitter (8N1) with ``amaranth.lib.stream`` byte ports.

Both take ``divisor``, the number of clock cycles per bit (``clock_hz // baud``, at least 2).
A frame is one start bit (0), eight data bits LSB first and one stop bit (1); the idle line is 1.

:class:`UARTReceiver`
    ``rx`` (In(1), idle 1) is synchronised through two flip-flops; a falling edge starts a frame,
    which is sampled in the middle of every bit. A frame whose start bit is not low at its middle
    is ignored; one whose stop bit is low is dropped (a framing error). A good byte is offered on
    ``bytes`` (Out(stream of 8 bits)) and held until accepted; a byte that arrives while the
    previous one is still unaccepted overwrites it (the consumer must keep up: one byte per frame).
:class:`UARTTransmitter`
    ``bytes`` (In(stream of 8 bits)) is accepted only while idle; each accepted byte is sent as one
    frame on ``tx`` (Out(1), idle 1) of ``10 * divisor`` cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError

__all__ = ["UARTReceiver", "UARTTransmitter", "check_divisor"]


def check_divisor(divisor: object) -> int:
    """``divisor`` if it is an integer of at least 2 (clock cycles per bit), else :class:`ConfigError`."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
        raise ConfigError(f"UART divisor (clock cycles per bit) must be an integer >= 2, not {divisor!r}")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver: the ``rx`` pin in, received bytes out on the ``bytes`` stream."""

    def __init__(self, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "bytes": Out(stream.Signature(8))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.divisor
        sync0, sync1 = Signal(init=1), Signal(init=1)
        m.d.sync += [sync0.eq(self.rx), sync1.eq(sync0)]
        timer = Signal(range(d + 1))
        bit = Signal(range(10))
        shift = Signal(8)

        with m.If(self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"), m.If(~sync1):
                m.d.sync += timer.eq(d // 2 - 1)  # to the middle of the start bit
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(sync1):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], sync1)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(sync1):
                        m.d.sync += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
                    m.next = "IDLE"  # the middle of the stop bit: ready for the next start edge
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter: bytes in on the ``bytes`` stream, the ``tx`` pin out."""

    def __init__(self, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__({"bytes": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        bit = Signal(range(10))
        frame = Signal(10, init=0x3FF)  # stop, data[7:0], start: shifted out LSB first
        busy = Signal()
        m.d.comb += [self.bytes.ready.eq(~busy), self.tx.eq(frame[0])]
        with m.If(~busy), m.If(self.bytes.valid):
            m.d.sync += [frame.eq(Cat(0, self.bytes.payload, 1)), busy.eq(1), timer.eq(d - 1), bit.eq(0)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [timer.eq(d - 1), frame.eq(Cat(frame[1:], 1)), bit.eq(bit + 1)]
                with m.If(bit == 9):
                    m.d.sync += busy.eq(0)
        return m
