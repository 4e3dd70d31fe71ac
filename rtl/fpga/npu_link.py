"""A board top level: the whole NPU (:class:`rtl.npu.NPU`) and a DRAM model behind a UART.

:class:`NPULink` has two pins besides clock and reset, ``rx`` (host to board) and ``tx`` (board to
host), 8N1 at ``clock / divisor`` baud (:mod:`rtl.fpga.uart`). It holds an :class:`~rtl.npu.NPU` of
``arch`` and a board-side DRAM model: ``dram_bytes`` of block RAM (four byte lanes, so any byte
address is one access per lane) on the NPU's DMA bus. The host writes the encoded program
(:func:`accel.encoding.encode_program`) into the NPU's program memory and the input bytes into the
DRAM model, starts the run, polls the status, then reads the output bytes back, the cycle counter and
each command's trace (start and end cycle). Before a program that requantizes (a quantized layer's
stores, the vector unit's steps) the host writes the NPU's requantization and vector tables
(:class:`accel.encoding.RequantTable`, as :func:`accel.encoding.encode_requant_table` and
:func:`accel.encoding.encode_vector_table` lay them out), and before a convolution the array's
input feeder table (:func:`accel.encoding.encode_feeder_table`), through the NPU's ``rq_*`` port
with ``'Q'``; the board's NPU has ``requant_channels`` channel entries (:data:`REQUANT_CHANNELS`
unless given; 0 builds no requantizer and no vector datapath, and refuses every ``'Q'`` but the
feeder's).

Protocol (bytes on the wire; multi-byte integers little-endian)
--------------------------------------------------------------
Every command is one opcode byte followed by its payload; the board answers every command (the host
waits for the answer before sending the next). A successful answer starts with the opcode byte
itself, a refusal is the single byte ``'?'``. ``P``, ``Q``, ``W``, ``R``, ``T`` and ``G`` are refused
while the NPU is busy (running a program), so the host never changes memories the run uses.

=========  =======================================  =============================================
opcode     payload (host -> board)                  answer (board -> host)
=========  =======================================  =============================================
``'I'``    none                                     ``'I'`` then 16 bytes: u32 ``program_words``,
                                                    u32 ``dram_bytes``, u16 ``max_commands``, u8
                                                    array rows, u8 array cols, u16 DRAM latency
                                                    (cycles), u16 ``requant_channels``
``'P'``    u32 word address ``a``, u32 word count   ``'P'`` once the ``4n`` bytes are in program
           ``n``, then ``4n`` bytes: the words      memory; ``'?'`` (after the payload, which is
           ``a .. a+n-1``, each little-endian       received and dropped) if busy, ``n = 0`` or
                                                    ``a + n > program_words``
``'Q'``    u8 table ``t`` (0..3), u32 word address  ``'Q'`` once the ``n`` words are written to the
           ``a``, u32 word count ``n``, then        NPU's table ``t`` (``rq_table = t``, ``rq_addr``
           ``4n`` bytes: the words ``a .. a+n-1``   ``a .. a+n-1``); ``'?'`` (after the dropped
           of table ``t``, each little-endian       payload) if busy, ``n = 0`` or ``a + n`` is
                                                    past table ``t``: 0 the requantization steps
                                                    (``2 max_commands`` words), 1 the channels
                                                    (``4 requant_channels``), 2 the vector steps
                                                    (``32 max_commands``), 3 the array's input
                                                    feeder steps (``32 max_commands``; empty when
                                                    the design has no OS dataflow); tables 0..2
                                                    are empty when ``requant_channels = 0``
``'W'``    u32 byte address ``a``, u32 count ``n``,  ``'W'`` once the bytes are in DRAM; ``'?'``
           then ``n`` bytes for DRAM ``a .. a+n-1``  (after the dropped payload) if busy, ``n = 0``
                                                    or ``a + n > dram_bytes``
``'R'``    u32 byte address ``a``, u32 count ``n``   ``'R'`` then the ``n`` DRAM bytes from ``a``;
                                                    ``'?'`` alone if busy, ``n = 0`` or ``a + n >
                                                    dram_bytes``
``'G'``    none                                     ``'G'``: the NPU's ``start`` was pulsed (the
                                                    run goes on); ``'?'`` if a run is going on
``'S'``    none                                     ``'S'`` then the status byte: bit 0 busy,
                                                    bit 1 finished, bit 2 error (the NPU refused
                                                    the program or stopped it), bit 3 bus error
                                                    (the run accessed DRAM outside
                                                    ``dram_bytes``, or read and wrote in one
                                                    cycle); bit 3 is cleared by ``'G'``
``'C'``    none                                     ``'C'`` then u32: the NPU's cycle counter (the
                                                    run's total once finished)
``'T'``    u32 command id ``i``                     ``'T'`` then u32 start, u32 end (exclusive)
                                                    cycle of command ``i`` in the last run; ``'?'``
                                                    alone if busy or ``i >= max_commands``
other      none                                     ``'?'``
=========  =======================================  =============================================

DRAM model timing
-----------------
The NPU issues one 4-byte beat per cycle (``rd_*``: a read, ``wr_*``: a write with byte strobes) at
any byte address. A read beat issued in cycle ``c`` is answered on ``rd_resp_*`` in cycle ``c + L``,
``L = arch.dram.latency_cycles``, in order (one synchronous block-RAM read, then ``L - 1`` pipeline
registers; ``L = 0`` reads combinationally, which makes LUT RAM); a write lands at the end of its
cycle. That is the cocotb DRAM model of ``tests/rtl/npu_tb.py`` (the design's latency, at most 4
bytes per cycle), so the cycle counter equals :func:`sim.engine.simulate`'s total. On a board the
cycles are the NPU's clock cycles whatever the baud rate: the host link only loads and unloads.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.encoding import FEEDER_STEP_WORDS, VECTOR_STEP_WORDS
from accel.errors import ConfigError
from accel.hardware import Accelerator, Dataflow, is_int
from rtl.fpga.uart import UARTReceiver, UARTTransmitter, check_divisor
from rtl.npu import NPU

__all__ = ["NPULink", "OP_INFO", "OP_PROGRAM", "OP_TABLE", "OP_WRITE", "OP_READ", "OP_GO", "OP_STATUS", "OP_CYCLES",
           "OP_TRACE", "ERROR", "INFO_BYTES", "REQUANT_CHANNELS", "STATUS_BUSY", "STATUS_FINISHED", "STATUS_ERROR",
           "STATUS_BUS_ERROR", "table_words"]

OP_INFO, OP_PROGRAM, OP_TABLE, OP_WRITE, OP_READ, OP_GO, OP_STATUS, OP_CYCLES, OP_TRACE = (ord(c) for c in "IPQWRGSCT")
ERROR = ord("?")
"""The answer to an unknown or refused command."""
INFO_BYTES = 16
"""Bytes after ``'I'`` in the answer to ``'I'``."""
REQUANT_CHANNELS = 256
"""The board NPU's channel entries unless given: a program may requantize 256 output channels (a
layer of 256, or several smaller ones). The channel table is 4 lane copies of 96-bit entries; 256
deep, each copy is three 512 x 36 ECP5 block RAMs, as it would be at any depth up to 512."""
STATUS_BUSY, STATUS_FINISHED, STATUS_ERROR, STATUS_BUS_ERROR = 1, 2, 4, 8
"""Bits of the status byte."""
_LANES = 4  # DRAM byte lanes (the NPU's 4-byte beat)


def table_words(max_commands: int, requant_channels: int, feeder: bool) -> tuple[int, int, int, int]:
    """The words ``'Q'`` may write to each table ``rq_table = 0 .. 3`` of an NPU with ``max_commands``
    commands, ``requant_channels`` channel entries and (``feeder``: its design has the OS dataflow)
    the array's input feeder (the module docstring's protocol table): tables 0..2 are empty without
    a requantizer, table 3 without a feeder."""
    feeder_words = FEEDER_STEP_WORDS * max_commands if feeder else 0
    if not requant_channels:
        return 0, 0, 0, feeder_words
    return 2 * max_commands, 4 * requant_channels, VECTOR_STEP_WORDS * max_commands, feeder_words


class NPULink(wiring.Component):
    """The UART-attached NPU with its DRAM model (module docstring: pins, protocol, DRAM timing).

    Parameters
    ----------
    arch:
        The hardware description of the NPU (:class:`rtl.npu.NPU`'s restrictions apply).
    divisor:
        UART clock cycles per bit (>= 2).
    dram_bytes:
        Bytes of the DRAM model, a positive multiple of 4.
    max_commands, program_words, requant_channels:
        The NPU's (commands a program may have, 32-bit words of program memory, entries of the
        requantization channel table: :class:`rtl.npu.NPU`).
    """

    def __init__(self, arch: Accelerator, divisor: int, *, dram_bytes: int = 16384, max_commands: int = 64,
                 program_words: int = 2048, requant_channels: int = REQUANT_CHANNELS) -> None:
        try:
            self.divisor = check_divisor(divisor)
            if not is_int(dram_bytes) or dram_bytes <= 0 or dram_bytes % 4 or dram_bytes >= 1 << 32:
                raise ConfigError("NPULink dram_bytes must be a positive multiple of 4 below 2**32, "
                                  f"not {dram_bytes!r}")
            for name, value, low in (("max_commands", max_commands, 2), ("program_words", program_words, 1),
                                     ("requant_channels", requant_channels, 0)):
                if not is_int(value) or not low <= value < 1 << 16:
                    raise ConfigError(f"NPULink {name} must be an integer in {low}..65535, not {value!r}")
            latency = arch.dram.latency_cycles
            if not isinstance(latency, int) or not 0 <= latency < 1 << 16:
                raise ConfigError(f"NPULink needs a whole DRAM latency in cycles below 65536, not {latency!r}")
            self.arch, self.dram_bytes, self.latency = arch, dram_bytes, latency
            self.npu = NPU(arch, max_commands=max_commands, program_words=program_words,
                           requant_channels=requant_channels)
            self.table_words = table_words(max_commands, requant_channels, Dataflow.OS in arch.array.dataflows)
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def info(self) -> bytes:
        """The 16 bytes after ``'I'`` in the answer to ``'I'``."""
        npu, a = self.npu, self.arch.array
        return (npu.program_words.to_bytes(4, "little") + self.dram_bytes.to_bytes(4, "little")
                + npu.max_commands.to_bytes(2, "little") + bytes([a.rows & 0xFF, a.cols & 0xFF])
                + self.latency.to_bytes(2, "little") + npu.requant_channels.to_bytes(2, "little"))

    @property
    def parameters(self) -> dict[str, object]:
        return {**self.npu.parameters, "divisor": self.divisor, "dram_bytes": self.dram_bytes}

    def elaborate(self, platform: object) -> Module:  # noqa: C901 - one protocol machine, read top to bottom
        m = Module()
        npu = self.npu
        m.submodules.npu = npu
        m.submodules.uart_rx = rx = UARTReceiver(self.divisor)
        m.submodules.uart_tx = tx = UARTTransmitter(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        # -- the DRAM model: four byte lanes, byte a in lane a % 4 at row a // 4 -----------------------
        rows = self.dram_bytes // _LANES
        latency = self.latency
        lanes_w, lanes_r = [], []
        for lane in range(_LANES):
            mem = Memory(shape=8, depth=rows, init=[])
            m.submodules[f"dram_{lane}"] = mem
            lanes_w.append(mem.write_port())
            lanes_r.append(mem.read_port(domain="sync" if latency else "comb"))

        # The NPU's beats (the default owner of the lanes; the host's states take them over). Lane L
        # holds byte i = (L - a) % 4 of a beat at byte address A (a = A % 4), at row A // 4 + (L < a).
        def lane_row(addr, lane):  # noqa: ANN001, ANN202
            return (addr[2:] + (addr[:2] > lane))[:len(lanes_r[lane].addr)]

        for lane in range(_LANES):
            offset = (lane - npu.wr_addr[:2])[:2]
            wr_bytes = Array([npu.wr_data.word_select(i, 8) for i in range(_LANES)])
            m.d.comb += [
                lanes_r[lane].addr.eq(lane_row(npu.rd_addr, lane)),
                lanes_w[lane].addr.eq(lane_row(npu.wr_addr, lane)),
                lanes_w[lane].data.eq(wr_bytes[offset]),
                lanes_w[lane].en.eq(npu.wr_valid & npu.wr_strb.bit_select(offset, 1)),
            ]
        # the read answer: byte i of the beat is lane (a + i) % 4's byte, a of the cycle the lanes were read
        rot = Signal(2)
        lane_data = Array([lanes_r[lane].data for lane in range(_LANES)])
        word = Cat(*(lane_data[(rot + i)[:2]] for i in range(_LANES)))
        if latency == 0:
            m.d.comb += [rot.eq(npu.rd_addr[:2]), npu.rd_resp_valid.eq(npu.rd_valid), npu.rd_resp_data.eq(word)]
        else:
            m.d.sync += rot.eq(npu.rd_addr[:2])
            valid = [Signal(name=f"dram_valid_{d}") for d in range(latency)]  # valid[d]: read d + 1 cycles ago
            beat = [Signal(32, name=f"dram_data_{d}") for d in range(latency)]
            m.d.sync += valid[0].eq(npu.rd_valid)
            m.d.comb += beat[0].eq(word)
            for d in range(1, latency):
                m.d.sync += [valid[d].eq(valid[d - 1]), beat[d].eq(beat[d - 1])]
            m.d.comb += [npu.rd_resp_valid.eq(valid[-1]), npu.rd_resp_data.eq(beat[-1])]

        bus_error = Signal()
        write_outside = Const(0, 1)
        for i in range(_LANES):
            write_outside = write_outside | (npu.wr_strb[i] & (npu.wr_addr + i >= self.dram_bytes))
        with m.If((npu.rd_valid & ((npu.rd_addr + _LANES > self.dram_bytes) | npu.wr_valid))
                  | (npu.wr_valid & write_outside)):
            m.d.sync += bus_error.eq(1)

        # -- the protocol ---------------------------------------------------------------------------
        byte = rx.bytes.payload
        got = rx.bytes.valid & rx.bytes.ready
        op = Signal(8)
        header = Signal(64)  # the payload's first 8 (or 4) bytes, shifted in from the top
        count = Signal(3)  # header byte / word byte
        addr = Signal(33)
        left = Signal(33)  # bytes (W, R) or words (P) still to come
        refused = Signal()  # a P, Q or W whose payload is dropped
        table = Signal(2)  # Q's table
        word_in = Signal(32)
        trace_id = Signal(range(npu.max_commands))
        out = Signal(8 * (1 + INFO_BYTES))  # an answer, sent low byte first
        out_left = Signal(range(2 + INFO_BYTES))
        m.d.comb += npu.trace_addr.eq(trace_id)
        status = Cat(npu.busy, npu.finished, npu.error, bus_error)
        h_addr, h_count = header[:32], header[32:]
        info = Const(int.from_bytes(bytes([OP_INFO]) + self.info, "little"), 8 * (1 + INFO_BYTES))

        def answer(value, length: int) -> list:  # noqa: ANN001 - an Amaranth value of length bytes
            return [out.eq(value), out_left.eq(length)]

        with m.FSM(init="BOOT"):
            with m.State("BOOT"):
                # one cycle after reset, so Icarus evaluates what depends only on the state (host_link.py)
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [op.eq(byte), count.eq(0)]
                    with m.Switch(byte):
                        with m.Case(OP_INFO):
                            m.d.sync += answer(info, 1 + INFO_BYTES)
                            m.next = "SEND"
                        with m.Case(OP_PROGRAM, OP_WRITE, OP_READ, OP_TRACE):
                            m.next = "HEADER"
                        with m.Case(OP_TABLE):
                            m.next = "TABLE"
                        with m.Case(OP_GO):
                            with m.If(npu.busy):
                                m.d.sync += answer(ERROR, 1)
                            with m.Else():
                                m.d.comb += npu.start.eq(1)
                                m.d.sync += [bus_error.eq(0), *answer(OP_GO, 1)]
                            m.next = "SEND"
                        with m.Case(OP_STATUS):
                            m.d.sync += answer(Cat(Const(OP_STATUS, 8), status), 2)
                            m.next = "SEND"
                        with m.Case(OP_CYCLES):
                            m.d.sync += answer(Cat(Const(OP_CYCLES, 8), npu.cycles), 5)
                            m.next = "SEND"
                        with m.Default():
                            m.d.sync += answer(ERROR, 1)
                            m.next = "SEND"
            with m.State("TABLE"):  # Q's table byte (a byte above 3 is refused in CHECK)
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [table.eq(byte[:2]), refused.eq(byte > 3)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += rx.bytes.ready.eq(1)
                with m.If(got):
                    m.d.sync += [header.eq(Cat(header[8:], byte)), count.eq(count + 1)]
                    with m.If((count == 7) | ((op == OP_TRACE) & (count == 3))):
                        m.next = "CHECK"
            with m.State("CHECK"):
                end = h_addr + h_count
                m.d.sync += [addr.eq(h_addr), left.eq(h_count), count.eq(0), word_in.eq(0)]
                with m.Switch(op):
                    with m.Case(OP_PROGRAM, OP_TABLE, OP_WRITE):
                        words = Array(Const(n, 33) for n in self.table_words)[table]
                        limit = Mux(op == OP_PROGRAM, npu.program_words, Mux(op == OP_TABLE, words, self.dram_bytes))
                        bad_table = (op == OP_TABLE) & refused  # its table byte was above 3
                        m.d.sync += refused.eq(npu.busy | (h_count == 0) | (end > limit) | bad_table)
                        with m.If(h_count == 0):
                            m.d.sync += answer(ERROR, 1)  # no payload to drop
                            m.next = "SEND"
                        with m.Else():
                            m.next = "PAYLOAD"
                    with m.Case(OP_READ):
                        with m.If(npu.busy | (h_count == 0) | (end > self.dram_bytes)):
                            m.d.sync += answer(ERROR, 1)
                            m.next = "SEND"
                        with m.Else():
                            m.next = "READ_HEAD"
                    with m.Default():  # OP_TRACE: the id is the top 4 bytes
                        with m.If(npu.busy | (header[32:] >= npu.max_commands)):
                            m.d.sync += answer(ERROR, 1)
                            m.next = "SEND"
                        with m.Else():
                            m.d.sync += trace_id.eq(header[32:])
                            m.next = "TRACE_WAIT"
            with m.State("PAYLOAD"):
                m.d.comb += rx.bytes.ready.eq(1)
                last = (op == OP_WRITE) | (count == 3)  # the last byte of a word (P, Q) or every byte (W)
                with m.If(got):
                    with m.If(op == OP_PROGRAM):
                        m.d.sync += [word_in.eq(Cat(word_in[8:], byte)), count.eq(count + 1)]
                        m.d.comb += [npu.prog_addr.eq(addr), npu.prog_data.eq(Cat(word_in[8:], byte)),
                                     npu.prog_we.eq(last & ~refused)]
                    with m.Elif(op == OP_TABLE):
                        m.d.sync += [word_in.eq(Cat(word_in[8:], byte)), count.eq(count + 1)]
                        m.d.comb += [npu.rq_table.eq(table), npu.rq_addr.eq(addr),
                                     npu.rq_data.eq(Cat(word_in[8:], byte)), npu.rq_we.eq(last & ~refused)]
                    with m.Else():
                        for lane in range(_LANES):
                            m.d.comb += [lanes_w[lane].addr.eq(addr[2:]), lanes_w[lane].data.eq(byte),
                                         lanes_w[lane].en.eq(~refused & (addr[:2] == lane))]
                    with m.If(last):
                        m.d.sync += [addr.eq(addr + 1), left.eq(left - 1), count.eq(0)]
                        with m.If(left == 1):
                            m.d.sync += answer(Mux(refused, ERROR, op), 1)
                            m.next = "SEND"
            with m.State("READ_HEAD"):
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(OP_READ)]
                with m.If(tx.bytes.ready):
                    m.next = "READ_ADDR"
            with m.State("READ_ADDR"):  # the lanes read the row of addr; its byte is there next cycle
                m.d.comb += [lanes_r[lane].addr.eq(addr[2:]) for lane in range(_LANES)]
                m.next = "READ_SEND"
            with m.State("READ_SEND"):
                m.d.comb += [lanes_r[lane].addr.eq(addr[2:]) for lane in range(_LANES)]
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(lane_data[addr[:2]])]
                with m.If(tx.bytes.ready):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                    m.next = "READ_ADDR"
                    with m.If(left == 1):
                        m.next = "IDLE"
            with m.State("TRACE_WAIT"):  # trace_addr is the id now; the trace memories answer next cycle
                m.next = "TRACE"
            with m.State("TRACE"):
                m.d.sync += answer(Cat(Const(OP_TRACE, 8), npu.trace_start, npu.trace_end), 9)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [tx.bytes.valid.eq(1), tx.bytes.payload.eq(out[:8])]
                with m.If(tx.bytes.ready):
                    m.d.sync += [out.eq(out[8:]), out_left.eq(out_left - 1)]
                    with m.If(out_left == 1):
                        m.next = "IDLE"
        return m

