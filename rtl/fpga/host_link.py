"""A board top level: a weight-stationary systolic tile behind a UART and a tiny command protocol.

:class:`HostLink` has two pins besides clock and reset, ``rx`` (host to board) and ``tx`` (board to
host), 8N1 at ``clock / divisor`` baud (:mod:`rtl.fpga.uart`). It holds a ``rows x cols`` WS
:class:`~rtl.systolic.SystolicArray` (int8 inputs and weights, int32 accumulators), a weight
register, an activation buffer and a result buffer of ``max_stream`` rows, and a cycle counter.

Protocol (bytes on the wire; multi-byte integers little-endian; ``R = rows``, ``C = cols``)
---------------------------------------------------------------------------------------------
Every command is one opcode byte followed by its payload; the board answers every command, and
handles one command at a time (the host waits for the answer before sending the next).

=========  =====================================  ==============================================
opcode     payload (host -> board)                answer (board -> host)
=========  =====================================  ==============================================
``'I'``    none                                   3 bytes: ``R``, ``C``, ``max_stream``
``'W'``    ``R*C`` int8: ``w[i, j]``, row-major   ``'W'`` (weights stored)
``'A'``    ``S`` (1 byte, ``1..max_stream``),     ``'A'`` (activations stored); ``'?'`` right
           then ``S*R`` int8: ``x[t, i]``,        after ``S`` if ``S`` is out of range (the
           row-major                              rows are then not expected)
``'G'``    none                                   ``'G'`` once the fold ``x @ w`` has run
                                                  (``'?'`` if no activations were stored)
``'R'``    none                                   ``S*C*4`` bytes: int32 ``y[t, j]``, row-major
                                                  (nothing if no activations were stored)
``'C'``    none                                   4 bytes: uint32 cycle count of the last ``'G'``
other      none                                   ``'?'``
=========  =====================================  ==============================================

``'G'`` streams the stored weights (``R`` beats) and the ``S`` activation rows into the array at
one beat per clock and stores each output row; ``y = sim.numerics.systolic_tile(x, w, "ws")``. The
cycle count is the number of rising clock edges after the one that accepts the first weight beat up
to and including the one that emits the last result row: exactly
:meth:`SystolicArray.fold_cycles(S) <rtl.systolic.SystolicArray.fold_cycles>` (``2R + C + S - 2``),
which is what ``accel.timing`` charges for the fold.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from rtl.fpga.uart import UARTReceiver, UARTTransmitter, check_divisor
from rtl.systolic import SystolicArray

__all__ = ["HostLink", "OP_INFO", "OP_WEIGHTS", "OP_ACTIVATIONS", "OP_GO", "OP_RESULTS", "OP_CYCLES",
           "ERROR", "ACC_BYTES"]

OP_INFO, OP_WEIGHTS, OP_ACTIVATIONS, OP_GO, OP_RESULTS, OP_CYCLES = (ord(c) for c in "IWAGRC")
ERROR = ord("?")
"""The answer to an unknown or refused command."""
ACC_BYTES = 4
"""Bytes per result value on the wire (int32)."""


class HostLink(wiring.Component):
    """The UART-attached ``rows x cols`` WS tile (module docstring: pins, protocol, cycle count).

    ``rows, cols`` are 1..255, ``max_stream`` (activation rows per fold) 1..255, ``divisor`` the
    UART clock cycles per bit (>= 2).
    """

    def __init__(self, rows: int, cols: int, divisor: int, *, max_stream: int = 16) -> None:
        for name, value in (("rows", rows), ("cols", cols), ("max_stream", max_stream)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 255:
                raise ConfigError(f"HostLink {name} must be an integer in 1..255, not {value!r}")
        self.rows, self.cols, self.max_stream = rows, cols, max_stream
        self.divisor = check_divisor(divisor)
        self.array = SystolicArray(rows, cols, "ws")
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rows, cols, depth = self.rows, self.cols, self.max_stream
        m.submodules.uart_rx = rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = tx = UARTTransmitter(self.divisor)
        m.submodules.array = array = self.array
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        m.submodules.act_mem = act_mem = Memory(shape=8 * rows, depth=depth, init=[])
        m.submodules.res_mem = res_mem = Memory(shape=32 * cols, depth=depth, init=[])
        act_w, act_r = act_mem.write_port(), act_mem.read_port(domain="comb")
        res_w, res_r = res_mem.write_port(), res_mem.read_port(domain="comb")

        weights = Signal(8 * rows * cols)  # byte b of the 'W' payload in bits [8b, 8b + 8)
        act_row = Signal(8 * rows)
        stream_len = Signal(8)  # S of the stored activations, 0 = none
        count = Signal(range(max(rows * cols, 4 * cols, rows, 4) + 1))  # byte within a payload/row
        row = Signal(8)  # activation/result row
        cycles = Signal(32)
        counting = Signal()
        answer = Signal(8)

        byte = rx.bytes.payload
        got = rx.bytes.valid & rx.bytes.ready
        weight_rows = Array([weights[8 * cols * i: 8 * cols * (i + 1)] for i in range(rows)])
        info = Array([Const(rows, 8), Const(cols, 8), Const(depth, 8)])
        m.d.comb += [
            act_w.data.eq(Cat(act_row[8:], byte)),
            act_w.addr.eq(row),
            res_w.addr.eq(row),
            res_w.data.eq(array.outputs.payload.data.as_value()),
            array.outputs.ready.eq(1),
        ]

        with m.FSM(init="BOOT"):
            with m.State("BOOT"):
                # One cycle after reset: the state register changes, which also makes Icarus evaluate
                # the combinational logic that depends only on it (else it keeps its time-0 value).
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [count.eq(0), row.eq(0)]
                    with m.Switch(byte):
                        with m.Case(OP_INFO):
                            m.d.sync += answer.eq(rows)  # the INFO bytes go out from a register
                            m.next = "INFO"
                        with m.Case(OP_WEIGHTS):
                            m.next = "WEIGHTS"
                        with m.Case(OP_ACTIVATIONS):
                            m.next = "LENGTH"
                        with m.Case(OP_GO):
                            with m.If(stream_len == 0):
                                m.d.sync += answer.eq(ERROR)
                                m.next = "ANSWER"
                            with m.Else():
                                m.next = "RUN"
                        with m.Case(OP_RESULTS), m.If(stream_len != 0):
                            m.next = "RESULTS"
                        with m.Case(OP_CYCLES):
                            m.next = "CYCLES"
                        with m.Default():
                            m.d.sync += answer.eq(ERROR)
                            m.next = "ANSWER"
            with m.State("INFO"):
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(answer)]
                with m.If(tx.bytes.ready):
                    m.d.sync += [count.eq(count + 1), answer.eq(info[count + 1])]
                    with m.If(count == 2):
                        m.next = "IDLE"
            with m.State("WEIGHTS"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [weights.eq(Cat(weights[8:], byte)), count.eq(count + 1)]
                    with m.If(count == rows * cols - 1):
                        m.d.sync += answer.eq(OP_WEIGHTS)
                        m.next = "ANSWER"
            with m.State("LENGTH"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    with m.If((byte == 0) | (byte > depth)):
                        m.d.sync += [answer.eq(ERROR), stream_len.eq(0)]
                        m.next = "ANSWER"
                    with m.Else():
                        m.d.sync += stream_len.eq(byte)
                        m.next = "ACTIVATIONS"
            with m.State("ACTIVATIONS"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [act_row.eq(Cat(act_row[8:], byte)), count.eq(count + 1)]
                    with m.If(count == rows - 1):
                        m.d.comb += act_w.en.eq(1)
                        m.d.sync += [count.eq(0), row.eq(row + 1)]
                        with m.If(row == stream_len - 1):
                            m.d.sync += answer.eq(OP_ACTIVATIONS)
                            m.next = "ANSWER"
            with m.State("RUN"):
                # count: weight beats offered so far; row: activation rows accepted; cycles as documented.
                out_row = Signal(8)
                m.d.comb += [
                    array.weights.valid.eq(count < rows),
                    array.weights.payload.eq(weight_rows[count]),
                    act_r.addr.eq(row),
                    array.inputs.valid.eq((count == rows) & (row < stream_len)),
                    array.inputs.payload.data.eq(act_r.data),
                    array.inputs.payload.last.eq(row == stream_len - 1),
                    res_w.addr.eq(out_row),
                ]
                first = array.weights.valid & array.weights.ready & (count == 0)
                with m.If(array.weights.valid & array.weights.ready):
                    m.d.sync += count.eq(count + 1)
                with m.If(array.inputs.valid & array.inputs.ready):
                    m.d.sync += row.eq(row + 1)
                with m.If(first):
                    m.d.sync += [cycles.eq(0), counting.eq(1), out_row.eq(0)]
                with m.Elif(counting):
                    m.d.sync += cycles.eq(cycles + 1)
                with m.If(array.outputs.valid):
                    m.d.comb += res_w.en.eq(1)
                    m.d.sync += out_row.eq(out_row + 1)
                    with m.If(array.outputs.payload.last):
                        m.d.sync += [counting.eq(0), answer.eq(OP_GO)]
                        m.next = "ANSWER"
            with m.State("RESULTS"):
                result_bytes = Array([res_r.data[8 * b: 8 * (b + 1)] for b in range(4 * cols)])
                m.d.comb += [res_r.addr.eq(row), tx.bytes.valid.eq(1), tx.bytes.payload.eq(result_bytes[count])]
                with m.If(tx.bytes.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 4 * cols - 1):
                        m.d.sync += [count.eq(0), row.eq(row + 1)]
                        with m.If(row == stream_len - 1):
                            m.next = "IDLE"
            with m.State("CYCLES"):
                cycle_bytes = Array([cycles[8 * b: 8 * (b + 1)] for b in range(4)])
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(cycle_bytes[count])]
                with m.If(tx.bytes.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 3):
                        m.next = "IDLE"
            with m.State("ANSWER"):
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(answer)]
                with m.If(tx.bytes.ready):
                    m.next = "IDLE"
        return m
