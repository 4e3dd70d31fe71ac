"""The NPU: a whole accelerator that runs an encoded command program, cycle-exact with the simulator.

:class:`NPU` is generated from an :class:`accel.hardware.Accelerator` and executes the images of
:func:`accel.encoding.encode_program`. Its data semantics are :mod:`rtl.npu.golden`'s, bit for bit;
every command's start and end cycle is :func:`sim.engine.simulate`'s.

Structure
---------
``program memory``
    32-bit words written through ``prog_*`` before ``start`` (the host loads the image).
``fetch/decode``
    After ``start`` the decoder walks the image: the header's command count and dependency-table
    offset, then the first 64 bytes of every record and its dependency entries. It computes each command's
    datasheet cycles (:func:`accel.timing.command_cycles`, in hardware from the record's fields) and
    appends the decoded command to its unit's queue. Decoding finishes before cycle 0 of the run:
    the queues hold the whole program (their depth, ``max_commands``, is sized from the program), so
    the run needs no issue cycle and the datasheet no decode term.
``queues``
    One in-order queue per unit, as the simulator has: DMA loads (0), DMA stores and moves (1), the
    array (2), the vector unit (3).
``scoreboard``
    Units complete their commands in order, so "command ``d`` has finished" is "its queue has
    completed more than ``d``'s position in it". The decoder turns a command's ``deps`` into one
    threshold per queue (one past the highest position it waits for, through an id -> (queue,
    position) table); a unit starts its head command in the first cycle in which every queue's
    completed-count reaches its threshold and the unit is free.
``DRAM slot``
    Loads and stores share one DRAM slot (one DMA channel, as the simulator's DRAM resource). The
    arbiter grants it as SimPy's resource does: a request that waited since an earlier cycle wins
    (FIFO); in a same-cycle tie, a queue that reached its command in this cycle with every
    dependency already done asks first, then the queue that has been waiting on its dependencies
    longer, then loads.
``DMA``
    A Load issues one 4-byte read beat per cycle on the ``rd_*`` port (byte address, in-order
    responses on ``rd_resp_*``) and writes each response to the scratchpad (bytes) or the
    accumulator (aligned words); a Store reads the buffer (the accumulator through the requantizing
    read below; a ``raw`` store one accumulator word, its 4 bytes unchanged, per beat) and issues one
    4-byte write beat per cycle on ``wr_*`` with byte strobes. A Move reads 4 accumulator elements
    per cycle and writes 4 saturated bytes to the scratchpad. The buffer side is packed; the other side
    (a transfer's DRAM block, a Move's scratchpad destination block) is walked by an address generator:
    beat, row and plane counters stepping address registers (4 bytes along a row, then the row's start
    plus ``row_stride``, then the plane's start plus ``plane_stride``), so a block whose rows are whole
    beats moves in as many beats as a contiguous transfer of its size: the datasheet's cycles (the DMA
    has no request limit, so :func:`accel.timing.dma_cycles` does not depend on the rows). Addresses may
    have any byte alignment.
``requantization``
    The host's :class:`~accel.encoding.RequantTable`, written through ``rq_*`` before ``start``
    (:func:`accel.encoding.encode_requant_table`'s words: ``rq_table`` 0 the steps, 1 the
    channel table; 2 the vector steps, below), as Gemmini's ``config_mvout`` sets ``acc_scale``
    and the activation before a layer's stores: a step memory (64 bits per command id; its step
    is read in the Store's first cycle) and ``requant_channels`` channel entries (bias,
    multiplier, shift), one copy per lane. A Store from the accumulator whose step is enabled
    feeds its 4 elements per cycle, each plus its channel's
    bias (wrapping), with the channel's multiplier and shift and the step's zero point and clamp (a
    fused ReLU is ``low = zero_point``), to a 4-lane :class:`rtl.requant.Requantizer` (the design's
    rounding: ``tflite-single``, else ``tflite-double``): lane ``i``'s channel of feed ``f`` is
    ``first_channel + (4 f + i) % columns``, from per-lane column counters (no divider), its entry
    addressed in the cycle before the feed. Other Stores (not configured: saturation; raw; from the
    scratchpad) pass a delay line as long as the requantizer. Either way a feed becomes a write beat
    ``Requantizer.latency`` (5) cycles later; feeds start ``max(dma latency - 5, 3)`` cycles after
    the start, so the writes start at the DMA's latency or later and end within the DRAM latency
    the datasheet charges after them (the decoder needs ``dma + dram latency_cycles >= 8``): the
    pipeline is hidden and :func:`accel.timing.dma_cycles` unchanged. A Move has no latency to hide
    those 8 cycles (3 + 5) behind: with ``arch.activation.latency_cycles = 8`` the datasheet charges
    them (:func:`accel.timing.move_cycles`: its beats plus the path's latency) and a Move takes the
    Store's path, its scratchpad writes 8 cycles after its feeds (the scratchpad then has a write
    port per writer, so a load writing the same bank meanwhile is no conflict); with 0 (every
    preset) a Move's beats are its writes, it saturates, and one whose step is enabled stops the run
    with ``error``.
``array``
    The existing systolic tiles (:class:`rtl.systolic.SystolicArray`, one per dataflow the design
    has) fed straight from the scratchpad: WS folds preload ``R`` weight rows then stream the ``m``
    input rows, OS folds stream ``k`` steps of an input column and a weight row; outputs are written
    (or added) to the accumulator one row of ``C`` results per cycle: a WS output row as it leaves,
    an OS tile row by row from its PEs in the ``R`` cycles that end with the one it leaves the array
    in (row ``i`` is final ``R - 1 - i`` cycles before the last). Folds run back to back, so a
    command takes exactly :func:`accel.timing.gemm_tile_cycles`; the last result of a command is
    written on the edge that ends its last cycle, and accumulator reads of the DMA and the Move
    forward it. An OS Compute the host's feeder table configures (:class:`~accel.encoding.FeederStep`,
    written through ``rq_*`` with ``rq_table`` 3 as :func:`accel.encoding.encode_feeder_table`'s
    words; a step memory of 21 words per command id, read by the array queue's head id) gathers
    its input as :mod:`rtl.npu.golden` does, the im2col rows of a convolution's input band: the
    ``R`` lanes' addresses come from the feeder's counters instead (``NPU._feeder``: a shared
    window element stepped each cycle, a pixel per lane stepped per m tile, a group offset per
    product, all by adds), addressed a cycle ahead as before, and a lane whose window lies in the
    padding reads the step's input zero point (a flag registered with its address). No cycle is
    added. A configured WS Compute stops the run with ``error`` (the feeder gathers OS folds; the
    mapper's convolutions on fpga-small are OS); a design without OS has no feeder (its table is
    not stored, every Compute reads its input literally).
``N:M``
    For every pattern of ``arch.array.sparsity`` (when the design has WS) a
    :class:`rtl.sparse_systolic.SparseSystolicArray` beside the dense WS tile runs the N:M Computes
    of that pattern, with the WS sequencing, counters and output path over the compressed
    reduction ``k`` (so :func:`accel.timing.gemm_tile_cycles` of it, as the simulator times them):
    a fold preloads ``R`` kept rows, then streams ``m`` input rows of ``(R / N) M`` dense bytes. Its
    operands are :mod:`rtl.npu.golden`'s: the packed tile (values, then ``ceil(log2 M)``-bit
    indices, column by column, as :func:`sim.numerics.pack_entries` stores them) gives each preload
    beat a value byte and its index's bits for each of the ``C`` columns, ``k`` bytes apart (the
    values through the input lanes, which a preload leaves idle, and lanes of their own for
    columns beyond ``R``; the indices through ``C`` more read lanes); the input row's group ``g`` is
    read by input lane ``g`` as ``M`` consecutive bytes (``(k / N) M``-byte rows). The decoder
    computes the dense reduction, its batch stride and the index stream's bit base while the
    record is read.
``vector``
    Holds its queue for :func:`accel.timing.vector_cycles` and computes what the host's vector step
    of the command says (:class:`~accel.encoding.VectorStep`, written through ``rq_*`` with
    ``rq_table`` 2 as :func:`accel.encoding.encode_vector_table`'s words; a step memory of words 0..18
    per command id, addressed with the running command's id, or the queue's head's while the unit is
    idle or in its last cycle, so a command's step is there from its first cycle): nothing (timed
    only: unconfigured), TFLite's quantized ``add``, a ``clamp``, a ``max`` pool, an ``avg`` (global
    average) pool or a ``depthwise`` convolution. Beat ``i`` (4
    int8 elements; ``arch.vector.lanes`` must be 4) of both operands is addressed in the command's
    cycle ``i`` (``input_addr + 4 i`` and ``second_addr + 4 i``, two read windows of their own) and
    three register stages follow the read: the inputs' rescales ``MBQM(int32((x - x_zp) << 20),
    m_x, s_x)``, the output's ``MBQM`` of their int32 sum, then plus the output zero point (``add``;
    ``clamp``: the operand) clamped to ``[low, high]``; the result beat is written at ``output_addr
    + 4 i`` (byte strobes for the last, partial one) through the scratchpad's third writer in cycle
    ``i + 4``, so the last is written in the command's last cycle when ``arch.vector.latency_cycles``
    is 4 and earlier when more (fewer is refused). The rescale is
    :func:`sim.numerics.multiply_by_quantized_multiplier` in the design's rounding (``tflite-single``,
    else ``tflite-double``), combinational (``_mbqm``). A pool step's beat ``i`` is instead the
    ``i``-th tap of its window walk (``_pool_walk``: tap, channel group, output column, row and image
    counters stepping byte offsets by the step's derived words, no multiplier), one 4-channel pixel
    word a cycle; the first stage keeps the 4 lanes' running maxima and sums of the group's taps
    inside the image (padding taps are read but not taken), and a group's last tap carries them to
    its output word ``output_addr + 4 (i // taps)`` in cycle ``i + 4``: ``max`` the maxima through
    the clamp, ``avg`` the sums plus the step's bias through the output's rescale (the second
    stage's ``MBQM``), plus its zero point, clamped; ``depthwise`` the sums of each tap's codes less
    the input zero point times its channel's weight (lane ``l`` of group ``g``: channel ``4 g + l``,
    its weight byte read by a 1-byte window of its own at ``second_addr + (4 g + l) taps + tap``,
    the weights being channel-major), plus the channel's bias, through its multiplier and shift (a
    copy of the channel table per lane, addressed a cycle after the group's last tap), plus the
    output zero point, clamped (a fused ReLU is ``low``). The mapper's ``elements`` of a pool chunk are
    its outputs times its taps, so ``elements / 4`` feeds are the datasheet's cycles less the
    latency, as for the element-wise functions. A configured command
    that names a block (``input_block``, ``second_block``, ``output_block``) stops the run with
    ``error``, and so does an unknown function code. The vector unit's scratchpad reads are six
    groups (two 4-byte operand windows, four weight bytes), each a copy of the banks.
    With ``requant_channels = 0`` there is no vector datapath (every Vector command is timed only).

Memories: the program memory, the queues, the id table and the trace (one bank per unit, read by the
host through the id table: ``trace_start``/``trace_end`` are those of the ``trace_addr`` of the
cycle before) each have one write and one synchronous read port, the two ports of a block RAM; the
decoder pipelines its reads, which costs cycles before cycle 0 only. The scratchpad is
:class:`rtl.npu.scratchpad.BankedScratchpad` (``arch.scratchpad.banks`` banks of ``word_bytes``,
synchronous reads, one copy per read stream: each input lane, the weight row, the store, with
N:M patterns the ``C`` index lanes and the value lanes of columns beyond ``R``, and the vector
unit's two operands and four weight bytes): the array and the
store address the next cycle's operands, the first of a command from its queue's head while the unit
is idle or ending its previous command, so no command takes a cycle more than the datasheet says. Its
writers are loads, moves and the vector unit; two of them writing one scratchpad bank in the same
cycle stop the run with ``error`` (unless Moves requantize: above; then every writer has a port).
The accumulator is :class:`rtl.npu.accumulator.BankedAccumulator`:
word-interleaved banks (at least ``C`` and 4), so the array's row and the DMA's 4 words touch each
bank once; one copy of the banks for the array's read-modify-write and one for stores and moves,
each bank one write and one synchronous read port; both readers address a cycle ahead (the array the
row it writes next, the DMA the next beat or its queue's head's first). A DMA load word whose bank
the array writes in that cycle waits in one of 4 slots the reads see; a fifth stops the run with
``error``.

Timing: a unit that starts a command in cycle ``s`` is busy for ``command_cycles`` cycles; its
completion is visible to the scoreboard in cycle ``s + cycles`` (the trace's exclusive end). A DMA
transfer also waits for its last beat, so a memory slower than the design's DRAM figures shows up
as extra cycles instead of wrong data. Each command's ``(start, end)`` is written to a trace memory
readable through ``trace_*``; ``cycles`` is the run's total.

Restrictions of this version (refused with :class:`~accel.errors.ConfigError`): one DMA channel,
4-byte DMA beats (DMA and DRAM bandwidth 4 bytes/cycle), byte-wide input and weight formats, a
wrapping int32 accumulator, no scratchpad bank conflicts (``scratchpad_stretch == 1``), N:M groups
``M`` no wider than a scratchpad read window (``word_bytes * (banks - 1) + 1`` bytes), DMA and DRAM
latencies of at least 8 cycles together (the store path's requantizer hides behind them),
``activation.latency_cycles`` 0 or 8, with the vector datapath (``requant_channels > 0``)
``vector.lanes = 4`` and ``vector.latency_cycles >= 4``, and the
decoder refuses (``error``) Computes that split a fold (``fill`` or ``drain`` false), are N:M with a
pattern the array does not list in ``arch.array.sparsity``, on a dataflow other than WS or with a
``k`` that is not whole groups of ``N``, or read an operand through a block (``input_block``,
``weight_block``; with a feeder step too), and transfers (Load, Store, Move) whose block's
``row_bytes`` is not a multiple of 4 (its rows would need more beats than the datasheet's cycles
give; ``dma.max_in_flight`` must be 0). A block must name the transfer's ``size_bytes`` bytes (as
:func:`sim.execute.block_offsets` requires; the decoder does not check).
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.commands import Command, Compute, Load, Move, Store
from accel.encoding import RECORD_BYTES, VECTOR_STEP_WORDS
from accel.errors import ConfigError
from accel.formats import Overflow, Requantization
from accel.hardware import Accelerator, Dataflow, is_int
from accel.timing import fold_overhead, scratchpad_stretch
from rtl.npu.accumulator import BankedAccumulator
from rtl.npu.scratchpad import BankedScratchpad
from rtl.requant import Requantizer
from rtl.sparse_systolic import SparseSystolicArray
from rtl.systolic import SystolicArray
from sim.numerics import TFLITE_ADD_LEFT_SHIFT

__all__ = ["NPU", "QUEUES", "MIN_PROGRAM_WORDS", "refusal"]

QUEUES = ("dma.load", "dma.store", "array", "vector")
"""The units' in-order queues, by index."""

_LOAD, _STORE, _MOVE, _COMPUTE, _VECTOR = 1, 2, 3, 4, 5
_BEAT = 4  # bytes per DMA beat
_RECORD_WORDS = 26  # words of a record the decoder reads: through the Vector's output block's rows
_VECTOR_LEAD = 4  # cycles from a Vector's first read to its first write: the scratchpad read, 3 stages
_FEEDER_WORDS = 32  # rq_* words per command id of the feeder table (accel.encoding.encode_feeder_table)
_FEEDER_USED = 21  # ... of which the feeder stores the first 21 (the rest are zero)
_VECTOR_FUNCTIONS = {"add": 1, "clamp": 2, "max": 3, "avg": 4, "depthwise": 5}  # VectorStep's function codes
_VECTOR_STEP_USED = 19  # words 0..18 of a vector step (accel.encoding.encode_vector_table): the rest are zero
_RQ_LEAD = 3  # a Store's first accumulator read feeds the requantizer 3 cycles after its start (the
# step is read in its first cycle, the channel entries addressed in its third)


def refusal(arch: Accelerator, cmd: Command) -> str | None:
    """Why the decoder refuses ``cmd`` (stopping the run with ``error``), in words, or ``None``: the
    Python statement of its ``supported`` test (see the module docstring's restrictions)."""
    if isinstance(cmd, Compute):
        if cmd.dataflow not in arch.array.dataflows or cmd.dataflow is Dataflow.IS:
            return f"computes {cmd.dataflow.value.upper()}, a dataflow the NPU does not have"
        if not (cmd.fill and cmd.drain):
            return "splits a fold"
        nm = cmd.sparsity
        if nm is not None and nm not in arch.array.sparsity:
            return f"is {nm} sparse, a pattern the array does not have"
        if nm is not None and cmd.dataflow is not Dataflow.WS:
            return f"is {nm} sparse on {cmd.dataflow.value.upper()} (N:M computes are weight-stationary)"
        if nm is not None and cmd.k % nm.n:
            return f"keeps {cmd.k} rows, not whole groups of {nm.n}"
        if cmd.input_block is not None or cmd.weight_block is not None:
            return "reads an operand in place through a block"
        return None
    block = cmd.dram if isinstance(cmd, Load | Store) else cmd.dst if isinstance(cmd, Move) else None
    if block is not None and block.row_bytes % _BEAT:
        return f"moves rows of {block.row_bytes} bytes, not whole {_BEAT}-byte beats"
    return None


def _requant_mode(arch: Accelerator) -> str:
    """The store path requantizer's rounding: TFLite's single rounding for a ``tflite-single`` design,
    else gemmlowp's double (the host's table, :func:`rtl.npu.golden.requant_table`, refuses designs of
    other modes)."""
    return "single" if arch.array.requant is Requantization.TFLITE_SINGLE else "double"


def _entry_layout(id_bits: int, product_bits: int, patterns: int = 0, sp_bits: int = 1) -> data.StructLayout:
    fields = {
        "op": 3, "flags": 5, "id": id_bits, "cycles": 32,
        "need": data.ArrayLayout(id_bits + 1, len(QUEUES)),
        "f": data.ArrayLayout(32, 7),  # record words 4..10 (the operands)
        # a Compute's m * k, k * n and m * n, low bits (the address strides of a batch element)
        "p": data.ArrayLayout(product_bits, 3),
        # a Compute's last index of m, k, n, batch, its m tiles, k tiles (rows) and n tiles (columns),
        # compared with the counters; 2**32 (never reached) for a count of 0
        "last": data.ArrayLayout(33, 7),
        # a transfer's block (Load/Store: DRAM; Move: scratchpad destination; none: one row of all
        # its beats): last beat of a row, last row, row stride, last plane, plane stride
        "blk": data.ArrayLayout(32, 5),
        # a Vector's second input address (record word 12) and whether it names any block (words 15,
        # 20, 25: the rows of its input, second and output blocks)
        "second": 32, "vblk": 1,
    }
    if patterns:  # the design runs N:M computes (arch.array.sparsity)
        fields.update({
            "nm": patterns.bit_length(),  # 1 + the pattern's index in arch.array.sparsity; 0: dense
            "kd": 32,  # the dense reduction the kept rows cover: (k / N) * M
            "mkd": product_bits,  # m * kd, low bits (the input's batch stride)
            # the bit address of the index stream's entry 0 less L times the value stream's (the
            # weight address): entry e's index is at bit nmx + L * (weight_addr + e), modulo the
            # scratchpad's bits
            "nmx": sp_bits + 3,
        })
    return data.StructLayout(fields)


class _State(enum.Enum, shape=4):
    IDLE = 0
    HEADER_COUNT = 1
    HEADER_DEPS = 2
    HEADER_BASE = 3
    RECORD = 4
    DEPS = 5
    WRITE = 6
    PRIME = 7
    RUN = 8
    DONE = 9
    ERROR = 10


class _Feeder(NamedTuple):
    """The OS input feeder's outputs (:meth:`NPU._feeder`)."""

    on: object  # the next cycle's operands are a configured command's (an Amaranth value)
    addrs: list  # the R lanes' next-cycle scratchpad addresses
    pads: list  # this cycle: lane l reads the padding (registered with the addresses)
    zero_point: Signal  # this cycle's command's input zero point
    refused: object  # a configured command starts on WS (the feeder gathers OS folds)


class _Reg(NamedTuple):
    """A register and the value it takes on the next edge (when its owner advances)."""

    cur: Signal
    next: Signal


def _times(value, factor: int):  # noqa: ANN001, ANN202 - an Amaranth value times a constant, as shifts and adds
    total, bit = Const(0, 1), 0
    while factor >> bit:
        if factor >> bit & 1:
            total = total + (value << bit)
        bit += 1
    return total


def _mbqm(x, multiplier, shift, mode: str):  # noqa: ANN001, ANN202 - Amaranth values
    """:func:`sim.numerics.multiply_by_quantized_multiplier` of int32 ``x`` by a multiplier (0 .. 2**31 - 1)
    and a shift (-31 .. 30), combinationally, in ``mode``'s rounding (:class:`rtl.requant.Requantizer`'s
    stages 1 to 4 without their registers)."""
    product_of = lambda v: v * multiplier[:32].as_unsigned()  # noqa: E731 - 64-bit signed
    if mode == "double":
        left = Mux(shift > 0, shift, 0)[:5]
        right = Mux(shift > 0, 0, -shift)[:5]  # 0 .. 31
        product = product_of((x << left)[:32].as_signed())
        nudged = product + Mux(product >= 0, 1 << 30, 1 - (1 << 30))
        high = Mux(nudged < 0, (nudged + ((1 << 31) - 1)) >> 31, nudged >> 31)[:32].as_signed()
        mask = ((Const(1, 32) << right)[:32] - 1)[:31]  # 2**right - 1, at most 31 bits
        remainder = high.as_unsigned()[:31] & mask
        threshold = (mask >> 1) + (high < 0)
        return (high >> right) + (remainder > threshold)
    total = (31 - shift)[:6]  # 1 .. 62
    return ((product_of(x) + (Const(1, 62) << (total - 1)[:6])[:62]) >> total)[:32].as_signed()


MIN_PROGRAM_WORDS = (64 + RECORD_BYTES) // 4
"""The fewest 32-bit words of program memory an NPU may have: a one-command program's image (its
64-byte header and one record, :mod:`accel.encoding`)."""


def _ceil_div(value, divisor: int):  # noqa: ANN001, ANN202 - Amaranth values
    if divisor & (divisor - 1) == 0:
        return (value + divisor - 1) >> (divisor.bit_length() - 1)
    return (value + divisor - 1) // divisor


class NPU(wiring.Component):
    """An accelerator that runs encoded command programs (module docstring).

    Parameters
    ----------
    arch:
        The hardware description the NPU is generated from.
    max_commands:
        Commands a program may have (the depth of every queue, the id table and the trace).
    program_words:
        32-bit words of program memory (an image is ``64 + 128 * commands + 4 * deps + strings``
        bytes, rounded up to 64).
    requant_channels:
        Entries of the requantization channel table (the host's :class:`~accel.encoding.RequantTable`
        may configure that many output channels); 0: no table, no requantizer and no vector datapath
        (every accumulator read saturates, every Vector command is timed only, the ``rq_*`` port is
        unused).
    design:
        What errors call the design (default ``arch.name``): the preset name or TOML path it was
        loaded from, so that a file copied from a preset is not mistaken for the preset.
    """

    def __init__(self, arch: Accelerator, *, max_commands: int = 64, program_words: int = 2048,
                 requant_channels: int = 32, design: str | None = None) -> None:
        design = arch.name if design is None else str(design)
        try:
            self._check(arch, design)
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        self.arch = arch
        self.max_commands = max_commands
        self.program_words = program_words
        self.requant_channels = requant_channels
        if not isinstance(requant_channels, int) or requant_channels < 0:
            self._MustUse__silence = True
            raise ConfigError(f"NPU requant_channels must be a non-negative integer, not {requant_channels!r}")
        # A one-entry table would have no address bits (Amaranth drops a zero-width port); a program
        # memory must hold at least the image of a one-command program (its header and one record).
        for name, value, low in (("max_commands", max_commands, 2), ("program_words", program_words,
                                                                      MIN_PROGRAM_WORDS)):
            if not is_int(value) or value < low:
                self._MustUse__silence = True
                raise ConfigError(f"NPU {name} must be an integer of at least {low}, not {value!r}")
        self.vector_ops = requant_channels > 0  # the vector datapath (its steps are in the host's table)
        v = arch.vector
        if self.vector_ops and (v.lanes != _BEAT or v.latency_cycles < _VECTOR_LEAD):
            self._MustUse__silence = True
            raise ConfigError(f"NPU for {design!r}: the vector unit computes {_BEAT} lanes (one scratchpad beat) "
                              f"a cycle with {_VECTOR_LEAD} cycles from its first read to its first write, so "
                              f"vector.lanes must be {_BEAT} and vector.latency_cycles at least {_VECTOR_LEAD}, not "
                              f"{v.lanes} and {v.latency_cycles} (requant_channels=0 builds no vector datapath)")
        self.id_bits = max(1, (max_commands - 1).bit_length())
        self.sp_bytes = arch.scratchpad.size_bytes
        self.acc_words = arch.accumulator.size_bytes // 4
        # the N:M patterns the array runs (weight-stationary only, as the simulator runs them)
        self.patterns = tuple(arch.array.sparsity) if Dataflow.WS in arch.array.dataflows else ()
        super().__init__({
            "prog_we": In(1), "prog_addr": In(range(program_words)), "prog_data": In(32),
            "start": In(1), "busy": Out(1), "finished": Out(1), "error": Out(1), "cycles": Out(32),
            "rd_valid": Out(1), "rd_addr": Out(32), "rd_resp_valid": In(1), "rd_resp_data": In(32),
            "wr_valid": Out(1), "wr_addr": Out(32), "wr_data": Out(32), "wr_strb": Out(4),
            "trace_addr": In(range(max_commands)), "trace_start": Out(32), "trace_end": Out(32),
            # the host's requantization table (accel.encoding.encode_requant_table): word rq_addr of
            # the steps (rq_table 0), of the channel table (rq_table 1) or of the vector steps
            # (rq_table 2, accel.encoding.encode_vector_table), or of the array's input feeder
            # (rq_table 3, accel.encoding.encode_feeder_table)
            "rq_we": In(1), "rq_table": In(2),
            "rq_addr": In(range(max(VECTOR_STEP_WORDS * max_commands, 4 * requant_channels,
                                    _FEEDER_WORDS * max_commands))),
            "rq_data": In(32),
        })

    @staticmethod
    def _check(arch: Accelerator, design: str) -> None:
        a = arch.array
        problems = []
        if arch.dma.channels != 1:
            problems.append(f"dma.channels must be 1, not {arch.dma.channels}")
        if arch.dma.bandwidth_bytes_per_cycle != _BEAT or arch.dram.bandwidth_bytes_per_cycle != _BEAT:
            problems.append("dma and dram bandwidth_bytes_per_cycle must be 4")
        if arch.dma.max_in_flight:
            problems.append(f"dma.max_in_flight must be 0 (no request limit), not {arch.dma.max_in_flight}")
        if arch.dma.burst_bytes % _BEAT:
            problems.append(f"dma.burst_bytes must be a multiple of 4, not {arch.dma.burst_bytes}")
        for name, fmt in (("input_format", a.input_format), ("weight_format", a.weight_format)):
            if fmt.bits != 8:
                problems.append(f"array.{name} must be 8 bits wide, not {fmt.name}")
        acc = a.accumulator_format
        if acc.bits != 32 or not acc.signed or acc.overflow is not Overflow.WRAP:
            problems.append(f"array.accumulator_format must be int32 with wrap, not {acc.name} {acc.overflow.value}")
        if Dataflow.IS in a.dataflows:
            problems.append("array.dataflows must be ws and/or os (the systolic tile has no IS)")
        for df in a.dataflows:
            if scratchpad_stretch(arch, df) != 1:
                problems.append(f"the scratchpad must feed the {df.value} array without bank conflicts")
        if arch.accumulator.size_bytes % 4 or arch.scratchpad.word_bytes * arch.scratchpad.ports != _BEAT:
            problems.append("accumulator size must be whole words and the scratchpad move path 4 bytes/cycle")
        words, banks = arch.accumulator.size_bytes // 4, 1 << max(a.cols - 1, _BEAT - 1).bit_length()
        if words & (words - 1) or words < banks:
            problems.append(f"accumulator words must be a power of two, at least {banks} (its banks), not {words}")
        hidden = _RQ_LEAD + Requantizer.latency
        if arch.dma.latency_cycles + arch.dram.latency_cycles < hidden:
            problems.append(f"dma and dram latency_cycles must add up to at least {hidden} (the store path's "
                            f"requantizer pipeline hides behind them), not {arch.dma.latency_cycles} + "
                            f"{arch.dram.latency_cycles}")
        if arch.activation.latency_cycles not in (0, hidden):
            problems.append(f"activation.latency_cycles must be 0 (moves saturate) or {hidden} (moves requantize "
                            f"through the store path's pipeline), not {arch.activation.latency_cycles}")
        window = arch.scratchpad.word_bytes * (arch.scratchpad.banks - 1) + 1  # a read lane's widest window
        if Dataflow.WS in a.dataflows and any(p.m > window for p in a.sparsity):
            problems.append(f"the scratchpad must read a group of M bytes a cycle (at most {window}) to run "
                            f"{', '.join(str(p) for p in a.sparsity)} sparsity")
        if problems:
            raise ConfigError(f"NPU for {design!r}: " + "; ".join(problems))

    @property
    def parameters(self) -> dict[str, object]:
        return {"arch": self.arch.name, "max_commands": self.max_commands, "program_words": self.program_words,
                "requant_channels": self.requant_channels}

    # ---------------------------------------------------------------------------------------------

    def elaborate(self, platform: object) -> Module:  # noqa: C901 - one machine, read top to bottom
        m = Module()
        arch, a = self.arch, self.arch.array
        R, C = a.rows, a.cols
        nq = len(QUEUES)
        # Addresses are taken modulo the memories' sizes, so address arithmetic needs only as many
        # low bits as the larger memory's addresses have.
        self.product_bits = max((self.sp_bytes - 1).bit_length(), (self.acc_words - 1).bit_length(), 1)
        patterns = self.patterns
        sb = max((self.sp_bytes - 1).bit_length(), 1)
        layout = _entry_layout(self.id_bits, self.product_bits, len(patterns), sb)

        # -- memories -----------------------------------------------------------------------------
        # Every memory has one write and one synchronous read port (a block RAM's two), except the
        # scratchpad and accumulator (below). A read's data is there in the cycle after its address.
        m.submodules.program = program = Memory(shape=32, depth=self.program_words, init=[])
        pw = program.write_port()
        pr = program.read_port(domain="sync")
        m.d.comb += [pw.en.eq(self.prog_we), pw.addr.eq(self.prog_addr), pw.data.eq(self.prog_data)]

        queues = []
        for q in range(nq):
            mem = Memory(shape=layout, depth=self.max_commands, init=[])
            m.submodules[f"queue_{q}"] = mem
            queues.append((mem.write_port(), mem.read_port(domain="sync")))
        # id -> (queue, position): the decoder reads it for dependencies, the host's trace reads after
        m.submodules.idmap = idmap = Memory(shape=2 + self.id_bits + 1, depth=self.max_commands, init=[])
        idw, idr = idmap.write_port(), idmap.read_port(domain="sync")
        # one trace bank per unit (each unit writes its own), by command id; the host's read picks the
        # bank of the command's queue
        trace_w, trace_r = [], []
        for q in range(nq):
            bank = Memory(shape=64, depth=self.max_commands, init=[])
            m.submodules[f"trace_{q}"] = bank
            trace_w.append(bank.write_port())
            trace_r.append(bank.read_port(domain="sync"))
            m.d.comb += trace_r[q].addr.eq(self.trace_addr)
        with m.Switch(idr.data[:2]):
            for q in range(nq):
                with m.Case(q):
                    m.d.comb += [self.trace_start.eq(trace_r[q].data[:32]), self.trace_end.eq(trace_r[q].data[32:])]

        # read groups: R input lanes, C weight bytes, the store's beat; writers: loads, then moves.
        # With N:M patterns the first R / N input lanes read a group of M bytes each (the dense
        # reduction of a sparse fold's row), and a preload beat reads for each of the C columns a
        # kept value byte (the packed tile is column by column, so a row of kept values is C bytes,
        # k apart) and the bytes holding its index: the values through input lanes (idle while a
        # fold preloads; more lanes for columns beyond R), the indices through C more groups.
        spd = arch.scratchpad
        lanes = (1,) * R + (C, _BEAT)
        if patterns:
            groups, width = max(R // p.n for p in patterns), max(p.m for p in patterns)
            index_bytes = 1 if all(8 % p.index_bits == 0 for p in patterns) else 2
            lanes = (width,) * groups + (1,) * (R - groups) + (C, _BEAT) + (1,) * max(0, C - R) + (index_bytes,) * C
        vector_lanes = len(lanes)  # the vector unit's operand windows and weight bytes (with its datapath)
        if self.vector_ops:  # the two operands, then a depthwise convolution's 4 weight bytes
            lanes += (_BEAT, _BEAT) + (1,) * _BEAT
        m.submodules.scratchpad = sp = BankedScratchpad(size_bytes=spd.size_bytes, banks=spd.banks,
                                                        word_bytes=spd.word_bytes, read_lanes=lanes,
                                                        writers=3 if self.vector_ops else 2, beat_bytes=_BEAT,
                                                        # a requantizing Move writes 8 cycles into its
                                                        # run, when a load may write the same bank
                                                        write_ports=arch.activation.latency_cycles != 0)
        # the accumulator: banks of consecutive words, a row of C per cycle (array), 4 (DMA reads)
        m.submodules.accumulator = acc = BankedAccumulator(words=self.acc_words, lanes=C, dma_lanes=_BEAT)

        # -- fetch / decode -----------------------------------------------------------------------
        state = Signal(_State)
        primed = Signal()  # PRIME's second cycle
        count = Signal(32)
        deps_base = Signal(32)
        index = Signal(range(self.max_commands + 1))
        word = Signal(5)
        rec = Signal(data.ArrayLayout(32, _RECORD_WORDS))
        dep_i = Signal(32)
        dep_phase = Signal(2)
        need = Signal(data.ArrayLayout(self.id_bits + 1, nq))
        qcount = [Signal(self.id_bits + 1, name=f"qcount_{q}") for q in range(nq)]
        cycle = Signal(32)
        m.d.comb += [self.busy.eq((state != _State.IDLE) & (state != _State.DONE) & (state != _State.ERROR)),
                     self.finished.eq(state == _State.DONE), self.error.eq(state == _State.ERROR),
                     self.cycles.eq(cycle)]

        opcode, flags = rec[0][:8], rec[0][8:13]
        first_dep, ndeps = rec[2], rec[3]
        queue_of = Signal(2)
        with m.Switch(opcode):
            with m.Case(_LOAD):
                m.d.comb += queue_of.eq(0)
            with m.Case(_STORE, _MOVE):
                m.d.comb += queue_of.eq(1)
            with m.Case(_COMPUTE):
                m.d.comb += queue_of.eq(2)
            with m.Default():
                m.d.comb += queue_of.eq(3)

        # A command's datasheet cycles, computed in registered stages while its record is read: rec's
        # operand words (4..8) are in place 8 cycles before the record's WRITE, and each stage takes
        # one, so the multiplies never share a cycle (the record takes 17 cycles and DEPS at least 1).
        dma_fixed = arch.dma.latency_cycles + arch.dram.latency_cycles
        burst_cycles = arch.dma.burst_bytes // _BEAT
        mm, kk, nn, batch = rec[4], rec[5], rec[6], rec[7]
        other_cycles = Signal(32)  # stage 1: any command but a Compute
        with m.Switch(opcode):
            with m.Case(_LOAD, _STORE):
                m.d.sync += other_cycles.eq(dma_fixed + _ceil_div(rec[6], arch.dma.burst_bytes) * burst_cycles)
            with m.Case(_MOVE):
                m.d.sync += other_cycles.eq(_ceil_div(rec[8], _BEAT) + arch.activation.latency_cycles)
            with m.Default():
                m.d.sync += other_cycles.eq(arch.vector.latency_cycles + _ceil_div(rec[8], arch.vector.lanes))
        ws_fill, drain = fold_overhead(a, Dataflow.WS)
        os_fill, _ = fold_overhead(a, Dataflow.OS)
        is_ws_rec = flags[:2] == 0
        # stage 1: folds and cycles per fold (the cycles are a 32-bit count: 32 low bits of each factor
        # make them)
        folds, per_fold = Signal(32), Signal(32)
        m.d.sync += [
            folds.eq((Mux(is_ws_rec, _ceil_div(kk, R), _ceil_div(mm, R)) * _ceil_div(nn, C))[:32]),
            per_fold.eq(Mux(is_ws_rec, mm + Mux(flags[3], ws_fill, 0), kk + Mux(flags[3], os_fill, 0))
                        + Mux(flags[4], drain, 0)),
        ]
        per_batch = Signal(32)  # stage 2
        m.d.sync += per_batch.eq((folds * per_fold)[:32])
        cycles = Signal(32)  # stage 3
        m.d.sync += cycles.eq(Mux(opcode == _COMPUTE, (per_batch * batch)[:32], other_cycles))
        # a Compute's address strides, low bits (stage 1)
        pb = self.product_bits
        products = Signal(data.ArrayLayout(pb, 3))
        m.d.sync += [products[0].eq((mm[:pb] * kk[:pb])[:pb]), products[1].eq((kk[:pb] * nn[:pb])[:pb]),
                     products[2].eq((mm[:pb] * nn[:pb])[:pb])]
        lasts = Signal(data.ArrayLayout(33, 7))  # stage 1

        def last(count):  # noqa: ANN001, ANN202
            return Mux(count == 0, 1 << 32, count - 1)

        m.d.sync += [x.eq(last(v)) for x, v in zip(lasts, (mm, kk, nn, batch, _ceil_div(mm, R), _ceil_div(kk, R),
                                                             _ceil_div(nn, C)), strict=True)]

        supported = Signal()
        df_ok = Const(0, 1)
        for df in a.dataflows:
            df_ok = df_ok | (flags[:2] == (0 if df is Dataflow.WS else 1))
        # a transfer's block (words 11..15 for Load, Store and Move): its rows must be whole beats;
        # a Compute reads its operands packed (no input or weight block: words 17 and 22, their rows)
        is_transfer = (opcode == _LOAD) | (opcode == _STORE) | (opcode == _MOVE)
        has_block = rec[11] != 0
        # an N:M compute (word 11: N, M) runs where the design has the pattern: WS, whole groups of N
        nm_word = rec[11][:16]
        nm_ok = nm_word == 0
        nm_index = Const(0, max(1, len(patterns).bit_length()))
        for p_i, p in enumerate(patterns):
            match = nm_word == (p.n | p.m << 8)
            whole = kk[:p.n.bit_length() - 1] == 0 if p.n & (p.n - 1) == 0 else kk % p.n == 0
            nm_ok = nm_ok | (match & is_ws_rec & whole)
            nm_index = Mux(match, p_i + 1, nm_index)
        m.d.comb += supported.eq((opcode >= _LOAD) & (opcode <= _VECTOR) & (
            (opcode != _COMPUTE) | (df_ok & flags[3] & flags[4] & nm_ok
                                    & (rec[17] == 0) & (rec[22] == 0)))
            & (~is_transfer | ~has_block | (rec[12][:2] == 0)))

        entry = Signal(layout)
        m.d.comb += [entry.op.eq(opcode), entry.flags.eq(flags), entry.id.eq(index), entry.cycles.eq(cycles),
                     entry.need.eq(need), entry.p.eq(products), entry.last.eq(lasts)]
        if patterns:
            # an N:M compute's fields, in registered stages as the cycles (word 11 comes 12 cycles
            # before the record's WRITE): stage 1 its pattern and dense reduction, stage 2 m * kd and
            # the tile's entries batch * k * n, stage 3 the index stream's bit base
            nm_r, kd, mkd, entries, nmx = (Signal(x.shape(), name=f"decode_{n}") for x, n in
                                          ((entry.nm, "nm"), (entry.kd, "kd"), (entry.mkd, "mkd"),
                                           (entry.mkd, "entries"), (entry.nmx, "nmx")))
            kd_value, nmx_value = Const(0, 32), Const(0, sb + 3)
            for p in patterns:
                kd_value = Mux(nm_word == (p.n | p.m << 8), _times(_ceil_div(kk, p.n), p.m)[:32], kd_value)
            m.d.sync += [nm_r.eq(nm_index), kd.eq(kd_value)]
            m.d.sync += [mkd.eq((mm[:pb] * kd[:pb])[:pb]), entries.eq((batch[:pb] * products[1])[:pb])]
            w_addr = rec[9][:sb + 3]
            for p_i, p in enumerate(patterns):
                nmx_value = Mux(nm_r == p_i + 1, ((w_addr + entries) << 3) - _times(w_addr, p.index_bits), nmx_value)
            m.d.sync += nmx.eq(nmx_value)
            m.d.comb += [entry.nm.eq(nm_r), entry.kd.eq(kd), entry.mkd.eq(mkd), entry.nmx.eq(nmx)]
        for f in range(7):
            m.d.comb += entry.f[f].eq(rec[4 + f])
        m.d.comb += [entry.second.eq(rec[12]), entry.vblk.eq((rec[15] != 0) | (rec[20] != 0) | (rec[25] != 0))]
        size = Mux(opcode == _MOVE, rec[8], rec[6])
        m.d.comb += [entry.blk[0].eq(Mux(has_block, (rec[12] >> 2) - 1, _ceil_div(size, _BEAT) - 1)),
                     entry.blk[1].eq(Mux(has_block, rec[11] - 1, 0)), entry.blk[2].eq(rec[13]),
                     entry.blk[3].eq(Mux(has_block, rec[14] - 1, 0)), entry.blk[4].eq(rec[15])]
        for q, (wp, _) in enumerate(queues):
            m.d.comb += [wp.addr.eq(qcount[q]), wp.data.eq(entry)]
        m.d.comb += [idw.addr.eq(index), idw.data.eq(Cat(queue_of, qcount[0])),
                     idr.addr.eq(self.trace_addr)]  # the decoder's DEPS state takes it over
        with m.Switch(queue_of):
            for q in range(nq):
                with m.Case(q):
                    m.d.comb += idw.data.eq(Cat(Const(q, 2), qcount[q]))

        with m.Switch(state):
            with m.Case(_State.IDLE, _State.DONE, _State.ERROR), m.If(self.start):
                m.d.sync += [state.eq(_State.HEADER_COUNT), cycle.eq(0), index.eq(0)]
                m.d.sync += [qc.eq(0) for qc in qcount]
            # each read's data arrives a cycle after its address: a state addresses what the next reads
            with m.Case(_State.HEADER_COUNT):
                m.d.comb += pr.addr.eq(3)
                m.d.sync += state.eq(_State.HEADER_DEPS)
            with m.Case(_State.HEADER_DEPS):
                m.d.comb += pr.addr.eq(6)
                m.d.sync += [count.eq(pr.data), state.eq(_State.HEADER_BASE)]
                with m.If(pr.data > self.max_commands):
                    m.d.sync += state.eq(_State.ERROR)
            with m.Case(_State.HEADER_BASE):
                m.d.sync += [deps_base.eq(pr.data >> 2), word.eq(0)]
                m.d.sync += state.eq(Mux(count == 0, _State.RUN, _State.RECORD))
            with m.Case(_State.RECORD):
                # address word w of the first 64 bytes of the record while word w - 1 arrives
                m.d.comb += pr.addr.eq(16 + index * (RECORD_BYTES // 4) + word)
                with m.Switch(word):
                    for w in range(1, _RECORD_WORDS + 1):
                        with m.Case(w):
                            m.d.sync += rec[w - 1].eq(pr.data)
                m.d.sync += word.eq(word + 1)
                with m.If(word == _RECORD_WORDS):
                    m.d.sync += [state.eq(_State.DEPS), dep_i.eq(0), dep_phase.eq(0), need.eq(0)]
            with m.Case(_State.DEPS):
                # per dependency three cycles: address its id, address the id's (queue, position), use it
                with m.If(~supported):
                    m.d.sync += state.eq(_State.ERROR)
                with m.Elif(dep_i < ndeps):
                    m.d.comb += pr.addr.eq(deps_base + first_dep + dep_i)
                    m.d.sync += dep_phase.eq(dep_phase + 1)
                    with m.If(dep_phase == 1):
                        m.d.comb += idr.addr.eq(pr.data)
                    with m.If(dep_phase == 2):
                        dq, dpos = idr.data[:2], idr.data[2:]
                        with m.Switch(dq):
                            for q in range(nq):
                                with m.Case(q), m.If(need[q] < dpos + 1):
                                    m.d.sync += need[q].eq(dpos + 1)
                        m.d.sync += [dep_i.eq(dep_i + 1), dep_phase.eq(0)]
                with m.Else():
                    m.d.sync += state.eq(_State.WRITE)
            with m.Case(_State.WRITE):
                with m.Switch(queue_of):
                    for q in range(nq):
                        with m.Case(q):
                            m.d.comb += queues[q][0].en.eq(1)
                            m.d.sync += qcount[q].eq(qcount[q] + 1)
                m.d.comb += idw.en.eq(1)
                m.d.sync += [index.eq(index + 1), word.eq(0)]
                m.d.sync += state.eq(Mux(index + 1 == count, _State.PRIME, _State.RECORD))
            with m.Case(_State.PRIME):  # the queues' heads are read after their last write, and in
                # a second cycle the array's feeder step of its head (read by the head's id)
                m.d.sync += primed.eq(~primed)
                with m.If(primed):
                    m.d.sync += state.eq(_State.RUN)

        # -- units: queues, scoreboard, timers ----------------------------------------------------
        run = Signal()
        m.d.comb += run.eq(state == _State.RUN)
        completed = [Signal(self.id_bits + 1, name=f"completed_{q}") for q in range(nq)]
        with m.If(state == _State.HEADER_COUNT):
            m.d.sync += [c.eq(0) for c in completed]
        all_done = Const(1, 1)
        for q in range(nq):
            all_done = all_done & (completed[q] == qcount[q])
        with m.If(run):
            with m.If(all_done):
                m.d.sync += state.eq(_State.DONE)
            with m.Else():
                m.d.sync += cycle.eq(cycle + 1)

        slot_busy = Signal()
        waiting = [Signal(name=f"slot_waiting_{u}") for u in range(2)]
        since = [Signal(32, name=f"head_since_{u}") for u in range(2)]  # cycle the queue reached its head
        busys: list[Signal] = []
        heads, curs, views, starts, actives, finishes, ready, wants, lefts = [], [], [], [], [], [], [], [], []
        data_done = [Signal(name=f"data_done_{u}", init=1) for u in range(nq)]
        for u in range(nq):
            hp = Signal(self.id_bits + 1, name=f"head_{u}")
            with m.If(state == _State.HEADER_COUNT):
                m.d.sync += hp.eq(0)
            rp = queues[u][1]
            head = rp.data  # the entry at hp: addressed in the cycle before (below)
            cur = Signal(layout, name=f"cur_{u}")
            busy = Signal(name=f"busy_{u}")
            remaining = Signal(32, name=f"remaining_{u}")
            started_at = Signal(32, name=f"started_at_{u}")
            deps_ok = Const(1, 1)
            for q in range(nq):
                deps_ok = deps_ok & (completed[q] >= head.need[q])
            rdy = Signal(name=f"ready_{u}")
            m.d.comb += rdy.eq(run & (hp < qcount[u]) & ~busy & deps_ok)
            want = Signal(name=f"wants_slot_{u}")
            if u < 2:
                m.d.comb += want.eq(rdy & (head.op != _MOVE))
            start = Signal(name=f"start_{u}")
            view = Signal(layout, name=f"cmd_{u}")
            # the command at the unit: its running one, else its head (which starts in a cycle in which
            # the unit is not busy); selected by a register, not by this cycle's start
            m.d.comb += view.eq(Mux(busy, cur, head))
            left = Signal(32, name=f"left_{u}")
            m.d.comb += left.eq(Mux(busy, remaining, head.cycles))
            active = Signal(name=f"active_{u}")
            m.d.comb += active.eq(busy | start)
            finish = Signal(name=f"finish_{u}")
            m.d.comb += finish.eq(active & (left <= 1) & data_done[u])
            m.d.comb += rp.addr.eq(Mux(start, hp + 1, hp))
            with m.If(start):
                m.d.sync += [cur.eq(head), hp.eq(hp + 1), started_at.eq(cycle)]
            with m.If(active):
                m.d.sync += [busy.eq(~finish), remaining.eq(Mux(left > 1, left - 1, 1))]
            with m.If(finish):
                m.d.sync += completed[u].eq(completed[u] + 1)
            tw = trace_w[u]
            m.d.comb += [tw.en.eq(finish), tw.addr.eq(view.id),
                         tw.data.eq(Cat(Mux(start, cycle, started_at), cycle + 1))]
            heads.append(head)
            busys.append(busy)
            lefts.append(left)
            curs.append(cur)
            views.append(view)
            starts.append(start)
            actives.append(active)
            finishes.append(finish)
            ready.append(rdy)
            wants.append(want)

        # the DRAM slot (one DMA channel)
        holds = [Signal(name=f"holds_slot_{u}") for u in range(2)]
        grant = [Signal(name=f"grant_{u}") for u in range(2)]
        # Who SimPy serves first when both queues ask in the same cycle: a request queued since an
        # earlier cycle (FIFO); else a queue that reached its command this cycle with its deps already
        # done (it asks within its own step); else the queue that has waited on its deps longer
        # (SimPy resumes waiters in the order they began waiting); else loads (created first).
        completed_before = [Signal.like(c, name=f"completed_before_{q}") for q, c in enumerate(completed)]
        m.d.sync += [b.eq(c) for b, c in zip(completed_before, completed, strict=True)]
        prompt = []
        for u in range(2):
            early = Const(1, 1)
            for q in range(nq):
                early = early & (completed_before[q] >= heads[u].need[q])
            prompt.append(Signal(name=f"slot_prompt_{u}"))
            m.d.comb += prompt[u].eq((since[u] == cycle) & early)
        load_first = Signal()
        with m.If(waiting[0] != waiting[1]):
            m.d.comb += load_first.eq(waiting[0])
        with m.Elif(prompt[0] != prompt[1]):
            m.d.comb += load_first.eq(prompt[0])
        with m.Else():
            m.d.comb += load_first.eq(since[0] <= since[1])
        m.d.comb += [grant[0].eq(~slot_busy & wants[0] & (~wants[1] | load_first)),
                     grant[1].eq(~slot_busy & wants[1] & ~grant[0])]
        for u in range(2):
            m.d.comb += starts[u].eq(ready[u] & Mux(heads[u].op == _MOVE, 1, grant[u]))
            m.d.sync += waiting[u].eq(wants[u] & ~grant[u])
            with m.If(finishes[u]):
                m.d.sync += since[u].eq(cycle + 1)
            with m.If(state == _State.HEADER_COUNT):
                m.d.sync += since[u].eq(0)
            with m.If(grant[u]):
                m.d.sync += holds[u].eq(~finishes[u])
            with m.Elif(finishes[u]):
                m.d.sync += holds[u].eq(0)
        m.d.comb += slot_busy.eq(holds[0] | holds[1])
        for u in (2, 3):
            m.d.comb += starts[u].eq(ready[u])

        # -- the array ----------------------------------------------------------------------------
        array_refused = self._array(m, views[2], heads[2], curs[2], busys[2], starts[2], actives[2], finishes[2],
                                    sp, acc)
        with m.If(run & array_refused):
            m.d.sync += state.eq(_State.ERROR)

        # -- the vector unit ----------------------------------------------------------------------
        if self.vector_ops:
            refused = self._vector(m, views[3], busys[3], actives[3], finishes[3], sp, vector_lanes,
                                   cur=curs[3], head=heads[3])
            with m.If(run & refused):
                m.d.sync += state.eq(_State.ERROR)

        def requant(value):  # noqa: ANN001, ANN202 - unit-scale requantization: saturate to int8
            # above 127: non-negative with a bit set above bit 6; below -128: negative with a bit clear
            high = value[7:32]
            return Mux(~value[31] & high.any(), 127, Mux(value[31] & ~high.all(), 0x80, value[:8]))[:8]

        # -- DMA loads ----------------------------------------------------------------------------
        ld = views[0]
        ld_tx, ld_rx = Signal(32), Signal(32)
        # a unit's counters return to 0 in the cycle it finishes (or while it is idle), so they are 0 when
        # it starts without a multiplexer on this cycle's start
        tx_now, rx_now = ld_tx, ld_rx
        ld_beats = _ceil_div(ld.f[2], _BEAT)
        # the DMA's own setup latency passes before the first beat; DRAM's latency is the bus's
        dma_lat = arch.dma.latency_cycles
        ld_setup = self._elapsed(m, dma_lat, actives[0], finishes[0], "load")
        ld_walk = self._walk(m, ld, heads[0].f[4], self.rd_valid, actives[0], finishes[0], "load")
        m.d.comb += [self.rd_valid.eq(actives[0] & ld_setup & (tx_now < ld_beats)),
                     self.rd_addr.eq(ld_walk)]
        with m.If(actives[0] & ~finishes[0]):
            m.d.sync += [ld_tx.eq(tx_now + self.rd_valid), ld_rx.eq(rx_now + self.rd_resp_valid)]
        with m.Else():
            m.d.sync += [ld_tx.eq(0), ld_rx.eq(0)]
        m.d.comb += data_done[0].eq(rx_now + self.rd_resp_valid >= ld_beats)
        # responses come at least a cycle after their requests, so while the load is busy: its
        # writes take the running command's fields (not the head's, behind this cycle's start)
        ld_cur = curs[0]
        base = ld_cur.f[1] + rx_now * _BEAT
        to_acc = ld_cur.flags[0]
        resp = busys[0] & self.rd_resp_valid
        m.d.comb += [sp.w_addr[0].eq(base), sp.w_data[0].eq(self.rd_resp_data)]
        for i in range(_BEAT):
            m.d.comb += sp.w_en[0][i].eq(resp & ~to_acc & (rx_now * _BEAT + i < ld_cur.f[2]))
        m.d.comb += [acc.l_addr.eq(base >> 2), acc.l_data.eq(self.rd_resp_data)]
        for i in range(_BEAT):
            m.d.comb += acc.l_en[i].eq(resp & to_acc & (rx_now * _BEAT + i < ld_cur.f[2]))

        # -- DMA stores and moves -----------------------------------------------------------------
        # A Store's beats take the requantizing read (or the scratchpad's bytes, or raw words) in
        # "feeds", then the requantizer's (or a delay line's) Requantizer.latency cycles, then go out
        # as write beats: the feeds start _RQ_LEAD cycles after the start (or dma latency - the
        # pipeline's, if more), so the writes start no earlier than the DMA's latency and end within
        # the datasheet's cycles (NPU._check: the latencies hide the pipeline). A Move has no latency
        # to hide behind: with activation.latency_cycles (_RQ_LEAD + the pipeline's) it takes the
        # same path, those cycles more; without, its feeds are its writes (unit scale only; a
        # configured Move is an error).
        st = views[1]
        st_tx = Signal(32)  # beats fed
        stx = st_tx
        is_move = st.op == _MOVE
        raw = ~is_move & st.flags[0] & st.flags[1]
        st_size = Mux(is_move, st.f[4], st.f[2])
        st_beats = _ceil_div(st_size, _BEAT)
        beat_on, beat_due = Signal(), Signal()  # a feed now; one is due if the unit is active
        depth = Requantizer.latency
        piped = arch.activation.latency_cycles != 0  # Moves take the requantizer's path too
        st_lead = self._elapsed(m, max(dma_lat - depth, _RQ_LEAD), actives[1], finishes[1], "store")
        if piped:
            st_setup = Mux(is_move, self._elapsed(m, _RQ_LEAD, actives[1], finishes[1], "move"), st_lead)
        else:
            st_setup = is_move | st_lead
        m.d.comb += [beat_due.eq(st_setup & (stx < st_beats)), beat_on.eq(actives[1] & beat_due)]
        with m.If(actives[1] & ~finishes[1]):
            m.d.sync += st_tx.eq(stx + beat_on)
        with m.Else():
            m.d.sync += st_tx.eq(0)
        from_acc = is_move | st.flags[0]
        src = st.f[1]  # Move: accumulator source; Store: buffer address
        # the scratchpad is read a cycle ahead: the next beat, or the head's first when this one ends
        # (while idle: the head's first, or its second if it starts with a beat now); the accumulator's
        # beat is 4 words (elements) from word src / 4 (a raw store's one word), the scratchpad's 4
        # bytes. This cycle's start selects only the last multiplexer.
        head_src = heads[1].f[1]
        next_beat = stx + beat_due
        second = starts[1] & ~finishes[1] & beat_due
        m.d.comb += [
            sp.r_addr[R + 1].eq(Mux(busys[1], Mux(finishes[1], head_src, src + next_beat * _BEAT),
                                    Mux(second, head_src + _BEAT, head_src))),
            acc.d_addr.eq(Mux(busys[1], Mux(finishes[1], head_src >> 2,
                                            (src >> 2) + Mux(raw, next_beat, next_beat * _BEAT)),
                              Mux(second, (head_src >> 2) + _BEAT, head_src >> 2))),
        ]

        requantizing = (~is_move & st.flags[0] & ~raw) | (is_move if piped else 0)  # reads it may configure
        rq = None
        if self.requant_channels:
            rq, rq_on = self._requantizer(m, st, busys[1], beat_on, stx, requantizing, acc)
            started = Signal(name="store_started")  # the step read now is of a command started in the last cycle
            m.d.sync += started.eq(starts[1])
            if not piped:
                with m.If(run & started & (curs[1].op == _MOVE) & rq_on):
                    m.d.sync += state.eq(_State.ERROR)

        byte_data = []
        strobes = []
        for i in range(_BEAT):
            offset = stx * _BEAT + i
            acc_value = acc.d_data[i]  # word (src >> 2) + offset, read a cycle ahead
            byte = Signal(8, name=f"store_byte_{i}")
            strobe = Signal(name=f"store_strobe_{i}")
            m.d.comb += strobe.eq(beat_on & (offset < st_size))
            acc_byte = Mux(raw, acc.d_data[0].word_select(i, 8), requant(acc_value))
            m.d.comb += byte.eq(Mux(strobe, Mux(from_acc, acc_byte, sp.r_data[R + 1].word_select(i, 8)), 0))
            byte_data.append(byte)
            strobes.append(strobe)

        # a Store's feeds become write beats Requantizer.latency cycles later: the requantizer's
        # output, or (unit scale, raw, from the scratchpad) the delay line's bytes
        line_valid = [Signal(name=f"store_line_valid_{d}") for d in range(depth)]
        line_data = [Signal(32, name=f"store_line_data_{d}") for d in range(depth)]
        line_strb = [Signal(4, name=f"store_line_strobe_{d}") for d in range(depth)]
        m.d.sync += [line_valid[0].eq(beat_on & (1 if piped else ~is_move)), line_data[0].eq(Cat(*byte_data)),
                     line_strb[0].eq(Cat(*strobes))]
        m.d.sync += [x[d].eq(x[d - 1]) for x in (line_valid, line_data, line_strb) for d in range(1, depth)]
        w_on, w_strb = line_valid[-1], line_strb[-1]
        w_data = line_data[-1]
        if rq is not None:
            requantized = Cat(*(Mux(w_strb[i], rq.o.payload[i], 0) for i in range(_BEAT)))
            w_data = Mux(rq.o.valid, requantized, w_data)
        st_wx = Signal(32)  # beats written (a Store)
        with m.If(actives[1] & ~finishes[1]):
            m.d.sync += st_wx.eq(st_wx + w_on)
        with m.Else():
            m.d.sync += st_wx.eq(0)
        move_beat = w_on if piped else beat_on  # a Move's scratchpad write
        m.d.comb += data_done[1].eq(Mux(is_move, Mux(piped, st_wx, stx) + move_beat, st_wx + w_on) >= st_beats)
        # the beat's address in its block: DRAM for a Store, the scratchpad for a Move
        head_dst = Mux(heads[1].op == _MOVE, heads[1].f[2], heads[1].f[4])
        st_walk = self._walk(m, st, head_dst, Mux(is_move, move_beat, w_on), actives[1], finishes[1], "store")
        m.d.comb += [self.wr_valid.eq(w_on & ~is_move), self.wr_addr.eq(st_walk), self.wr_data.eq(w_data),
                     self.wr_strb.eq(Mux(is_move, 0, w_strb))]
        m.d.comb += [sp.w_addr[1].eq(st_walk), sp.w_data[1].eq(w_data if piped else Cat(*byte_data))]
        for i in range(_BEAT):
            m.d.comb += sp.w_en[1][i].eq(is_move & (w_on & w_strb[i] if piped else strobes[i]))
        # a load and a move wrote one scratchpad bank, or a load and the array one accumulator bank
        with m.If(run & (sp.conflict | acc.conflict)):
            m.d.sync += state.eq(_State.ERROR)
        return m

    def _requantizer(self, m: Module, st, busy, beat_on, stx, requantizing, acc) -> tuple:  # noqa: ANN001
        """The host's requantization table and the store path's :class:`~rtl.requant.Requantizer`
        (module docstring): the step memory (read for the unit's command ``st``: its step is there from
        the cycle after its start on), one channel-table copy per lane, each lane's column counter.
        Returns the requantizer (fed ``acc``'s 4 words plus their channels' biases in every feed of a
        configured command) and the step's enable bit."""
        a = self.arch.array
        m.submodules.rq_steps = rq_steps = Memory(shape=64, depth=self.max_commands, init=[])
        sw, step = rq_steps.write_port(granularity=32), rq_steps.read_port(domain="sync")
        m.d.comb += [sw.addr.eq(self.rq_addr >> 1), sw.data.eq(Cat(self.rq_data, self.rq_data)),
                     sw.en.eq(Mux(self.rq_we & (self.rq_table == 0), Mux(self.rq_addr[0], 2, 1), 0)),
                     step.addr.eq(st.id)]
        rq_on, rq_zp, rq_low, rq_high = step.data[0], step.data[8:16], step.data[16:24], step.data[24:32]
        first_channel, columns = step.data[32:48], step.data[48:64]
        configured = Signal(name="store_configured")  # the running command requantizes by its step
        m.d.comb += configured.eq(busy & requantizing & rq_on)
        m.submodules.requantizer = rq = Requantizer(out_format=a.input_format, mode=_requant_mode(self.arch),
                                                    lanes=_BEAT)
        m.d.comb += [rq.o.ready.eq(1), rq.i.valid.eq(beat_on & configured)]

        def wrapped(x):  # noqa: ANN001, ANN202 - the lane's next channel column, 4 results on (mod columns)
            for _ in range(_BEAT):
                x = Mux(x >= columns, x - columns, x)
            return x

        for i in range(_BEAT):
            # lane i's channel: column (4 f + i) mod columns of feed f, from first_channel; the entry
            # is addressed in the cycle before the feed
            bank = Memory(shape=96, depth=self.requant_channels, init=[])
            m.submodules[f"rq_channels_{i}"] = bank
            cw, cr = bank.write_port(granularity=32), bank.read_port(domain="sync")
            col = Signal(16, name=f"store_column_{i}")
            init = Const(i, 16)
            for _ in range(i):
                init = Mux(init >= columns, init - columns, init)
            with m.If(busy & (stx == 0) & ~beat_on):
                m.d.sync += col.eq(init)
            with m.Elif(beat_on):
                m.d.sync += col.eq(wrapped(col + _BEAT))
            m.d.comb += [cw.addr.eq(self.rq_addr >> 2), cw.data.eq(Cat(self.rq_data, self.rq_data, self.rq_data)),
                         cr.addr.eq(first_channel + Mux(beat_on, wrapped(col + _BEAT), col))]
            with m.If(self.rq_we & (self.rq_table == 1)), m.Switch(self.rq_addr[:2]):
                for word_index in range(3):
                    with m.Case(word_index):
                        m.d.comb += cw.en.eq(1 << word_index)
            lane = rq.i.payload[i]
            m.d.comb += [lane.acc.eq((acc.d_data[i] + cr.data[:32])[:32]), lane.multiplier.eq(cr.data[32:64]),
                         lane.shift.eq(cr.data[64:70]), lane.zero_point.eq(rq_zp), lane.low.eq(rq_low),
                         lane.high.eq(rq_high)]
        return rq, rq_on

    def _vector(self, m: Module, cmd, busy, active, finish, sp, group: int, *, cur, head):  # noqa: ANN001, ANN202
        """The vector unit's datapath (module docstring): the host's vector steps (one per command id,
        :func:`accel.encoding.encode_vector_table`'s words 0..18), two scratchpad read windows (groups
        ``group`` and ``group + 1``) and a depthwise convolution's 4 weight bytes (``group + 2 ..``),
        one channel-table copy per lane, the window walk and the scratchpad's third writer.
        Returns the run-time refusal: a configured command that names a block, or whose step has no
        function."""
        mode = _requant_mode(self.arch)
        m.submodules.vector_steps = steps = Memory(shape=32 * _VECTOR_STEP_USED, depth=self.max_commands, init=[])
        vw, vr = steps.write_port(granularity=32), steps.read_port(domain="sync")
        word = self.rq_addr[:5]
        m.d.comb += [vw.addr.eq(self.rq_addr >> 5), vw.data.eq(Cat(*(self.rq_data for _ in range(_VECTOR_STEP_USED)))),
                     vw.en.eq(Mux(self.rq_we & (self.rq_table == 2) & (word < _VECTOR_STEP_USED), 1 << word, 0)),
                     # the step of the running command, or (idle, or in its last cycle) of the head, which
                     # starts next: the step is there from a command's first cycle
                     vr.addr.eq(Mux(busy & ~finish, cur.id, head.id))]
        step = vr.data
        function = step[0:4]
        low, high = step[8:16].as_signed(), step[16:24].as_signed()
        a_zp, b_zp, y_zp = (step[32 + 8 * i:40 + 8 * i].as_signed() for i in range(3))
        ma, mb, my = (step[64 + 32 * i:96 + 32 * i] for i in range(3))
        sa, sb_, sy = (step[160 + 8 * i:168 + 8 * i].as_signed() for i in range(3))
        is_add = function == _VECTOR_FUNCTIONS["add"]
        is_max, is_avg = function == _VECTOR_FUNCTIONS["max"], function == _VECTOR_FUNCTIONS["avg"]
        is_dw = function == _VECTOR_FUNCTIONS["depthwise"]
        is_pool = is_max | is_avg | is_dw
        bias = step[544:576].as_signed()  # an avg step's, added to its sums
        first_channel, taps = step[576:592], step[528:544]  # a depthwise step's

        # feeds: beat i of both operands is addressed in the command's cycle i (the first from the
        # queue's head, which starts now), its bytes are there a cycle later
        vx = Signal(32, name="vector_feeds")
        beats = _ceil_div(cmd.f[4], _BEAT)
        feed = Signal(name="vector_feed")
        m.d.comb += feed.eq(active & (vx < beats))
        with m.If(active & ~finish):
            m.d.sync += vx.eq(vx + feed)
        with m.Else():
            m.d.sync += vx.eq(0)
        offset = vx << 2
        pool_addr, inside, first_tap, last_tap, out_word, weight, walk_g = self._pool_walk(m, step, cmd, feed,
                                                                                            active, finish)
        m.d.comb += [sp.r_addr[group].eq(Mux(is_pool, pool_addr, cmd.f[1] + offset)),
                     sp.r_addr[group + 1].eq(cmd.second + offset)]
        # a depthwise tap's weights: lane l's channel 4 g + l, taps bytes a channel (no multiplier)
        lane_weights = (Const(0, 1), taps, taps << 1, taps + (taps << 1))
        for i in range(_BEAT):
            m.d.comb += sp.r_addr[group + 2 + i].eq((cmd.second + weight + lane_weights[i])[:32])
        # the channel-table entries of a depthwise group: addressed with the group of the feed a cycle
        # before (its last tap's bytes are there now), there when its sums reach the rescale
        fed_g = Signal(16, name="vector_fed_group")
        m.d.sync += fed_g.eq(walk_g)
        entries = []
        for i in range(_BEAT):
            bank = Memory(shape=96, depth=max(self.requant_channels, 1), init=[])
            m.submodules[f"vector_channels_{i}"] = bank
            cw, cr = bank.write_port(granularity=32), bank.read_port(domain="sync")
            m.d.comb += [cw.addr.eq(self.rq_addr >> 2), cw.data.eq(Cat(self.rq_data, self.rq_data, self.rq_data)),
                         cr.addr.eq(first_channel + (fed_g << 2) + i)]
            with m.If(self.rq_we & (self.rq_table == 1)), m.Switch(self.rq_addr[:2]):
                for word_index in range(3):
                    with m.Case(word_index):
                        m.d.comb += cw.en.eq(1 << word_index)
            entries.append(cr.data)
        # a pool's tap: whether it is read (not padding) and whether it starts its group's maximum or
        # sum, there with its bytes
        tap_read, tap_first = Signal(name="vector_tap_read"), Signal(name="vector_tap_first")
        m.d.sync += [tap_read.eq(inside), tap_first.eq(first_tap)]
        # the beat's output address and byte strobes travel with it: written _VECTOR_LEAD cycles after its
        # feed (a pool: its group's last tap's, at the group's output word)
        out_offset = Mux(is_pool, out_word << 2, offset)
        addr = [Signal(32, name=f"vector_addr_{d}") for d in range(_VECTOR_LEAD)]
        strobe = [Signal(_BEAT, name=f"vector_strobe_{d}") for d in range(_VECTOR_LEAD)]
        valid = [Signal(name=f"vector_valid_{d}") for d in range(_VECTOR_LEAD)]
        m.d.sync += [addr[0].eq(cmd.f[2] + out_offset), valid[0].eq(feed & (~is_pool | last_tap)),
                     strobe[0].eq(Cat(*(out_offset + i < cmd.f[4] for i in range(_BEAT))))]
        m.d.sync += [x[d].eq(x[d - 1]) for x in (addr, strobe) for d in range(1, _VECTOR_LEAD)]
        m.d.sync += valid[1].eq(valid[0] & (function != 0))  # the step is there with the feed's bytes
        m.d.sync += [valid[d].eq(valid[d - 1]) for d in range(2, _VECTOR_LEAD)]

        out = []
        for i in range(_BEAT):
            a = sp.r_data[group].word_select(i, 8).as_signed()
            b = sp.r_data[group + 1].word_select(i, 8).as_signed()
            # stage 1: both inputs' rescale, MBQM(int32((x - x_zp) << 20), m_x, s_x)
            left = TFLITE_ADD_LEFT_SHIFT
            s1 = [Signal(signed(32), name=f"vector_scaled_{n}_{i}") for n in "ab"]
            a1 = Signal(signed(8), name=f"vector_a1_{i}")
            m.d.sync += [s1[0].eq(_mbqm(((a - a_zp) << left)[:32].as_signed(), ma, sa, mode)),
                         s1[1].eq(_mbqm(((b - b_zp) << left)[:32].as_signed(), mb, sb_, mode)), a1.eq(a)]
            # a pool's running maximum (from the int8 minimum) and sum of its group's read taps
            best, total = Signal(signed(8), name=f"vector_max_{i}"), Signal(signed(32), name=f"vector_total_{i}")
            w = sp.r_data[group + 2 + i][:8].as_signed()  # a depthwise tap's weight of the lane's channel
            taken = Mux(tap_read, Mux(is_dw, (a - a_zp) * w, a), 0)
            m.d.sync += [best.eq(Mux(tap_first, Mux(tap_read, a, -128), Mux(tap_read & (a > best), a, best))),
                         total.eq(Mux(tap_first, taken, total + taken))]
            # stage 2: the output's rescale of their int32 sum (avg: of the taps' sum plus the bias; max:
            # the maximum so far)
            s2, a2 = Signal(signed(32), name=f"vector_sum_{i}"), Signal(signed(8), name=f"vector_a2_{i}")
            entry = entries[i]  # a depthwise lane's channel: bias, multiplier, shift
            rescaled = Mux(is_avg, (total + bias)[:32], Mux(is_dw, (total + entry[:32])[:32],
                                                            (s1[0] + s1[1])[:32])).as_signed()
            multiplier, shift = Mux(is_dw, entry[32:64], my), Mux(is_dw, entry[64:72].as_signed(), sy)
            m.d.sync += [s2.eq(_mbqm(rescaled, multiplier, shift, mode)), a2.eq(Mux(is_max, best, a1))]
            # stage 3: plus the output zero point (add, avg) or the operand (clamp; max: its maximum), clamped
            value = Signal(signed(34), name=f"vector_value_{i}")
            m.d.comb += value.eq(Mux(is_add | is_avg | is_dw, s2 + y_zp, a2))
            code = Signal(8, name=f"vector_code_{i}")
            m.d.sync += code.eq(Mux(value < low, low, Mux(value > high, high, value)))
            out.append(code)
        w = 2  # the scratchpad's third writer
        m.d.comb += [sp.w_addr[w].eq(addr[-1]), sp.w_data[w].eq(Cat(*out))]
        for i in range(_BEAT):
            m.d.comb += sp.w_en[w][i].eq(valid[-1] & strobe[-1][i])
        unsupported = function > _VECTOR_FUNCTIONS["depthwise"]  # an unknown function code
        return busy & (function != 0) & (cmd.vblk | unsupported)

    @staticmethod
    def _pool_walk(m: Module, step, cmd, feed, active, finish) -> tuple:  # noqa: ANN001
        """A ``max`` step's walk over its windows (:class:`~accel.encoding.VectorStep`): tap ``(i, j)``
        of channel group ``g`` of output pixel ``(y, x)``, one per ``feed``, from counters and byte
        offsets that step by the step's derived words (nothing is multiplied); all zero while the unit
        is idle or finishing. Returns this feed's read address, whether its pixel is inside the image
        (not padding), whether it is its group's first tap and its last, the group's output word, a
        depthwise tap's weight offset (channel ``4 g``'s, from ``second_addr``) and the group ``g``."""
        kh, kw, sh, sw = (step[192 + 8 * i:200 + 8 * i] for i in range(4))
        pl = step[232:240]
        groups, out_w, in_h, in_w, out_h, first_row = (step[256 + 16 * i:272 + 16 * i] for i in range(6))
        start_offset, row_bytes, pixel_step, row_step, image_step = (step[352 + 32 * i:384 + 32 * i]
                                                                      for i in range(5))
        top = step[512:528].as_signed()
        j, i = Signal(8, name="pool_j"), Signal(8, name="pool_i")
        g, x, y = (Signal(16, name=f"pool_{n}") for n in "gxy")
        tap, tap_row, pixel, row = (Signal(32, name=f"pool_{n}") for n in ("tap", "tap_row", "pixel", "row"))
        wy, wx = Signal(signed(18), name="pool_wy"), Signal(signed(18), name="pool_wx")  # window top / left
        out_word = Signal(32, name="pool_out_word")
        tap_index, weight_group = Signal(16, name="pool_tap_index"), Signal(32, name="pool_weight_group")
        taps = step[528:544]
        last_j, last_i = j == kw - 1, i == kh - 1
        ih, iw = Signal(signed(20), name="pool_ih"), Signal(signed(20), name="pool_iw")
        m.d.comb += [ih.eq(top + wy + i), iw.eq(wx + j - pl)]
        inside = (ih >= 0) & (ih < in_h) & (iw >= 0) & (iw < in_w)
        address = (cmd.f[1] + start_offset + pixel + tap + (g << 2))[:32]
        with m.If(~active | finish):
            m.d.sync += [r.eq(0) for r in (j, i, g, x, y, tap, tap_row, pixel, row, wy, wx, out_word, tap_index,
                                           weight_group)]
        with m.Elif(feed):
            # a depthwise tap's weight offset: its group's channels' (4 taps bytes a group) plus the tap
            with m.If(~(last_j & last_i)):
                m.d.sync += tap_index.eq(tap_index + 1)
            with m.Else():
                m.d.sync += [tap_index.eq(0), weight_group.eq(Mux(g != groups - 1, weight_group + (taps << 2), 0))]
            with m.If(~last_j):
                m.d.sync += [j.eq(j + 1), tap.eq(tap + (groups << 2))]
            with m.Elif(~last_i):
                m.d.sync += [j.eq(0), i.eq(i + 1), tap.eq(tap_row + row_bytes), tap_row.eq(tap_row + row_bytes)]
            with m.Else():
                m.d.sync += [j.eq(0), i.eq(0), tap.eq(0), tap_row.eq(0), out_word.eq(out_word + 1)]
                with m.If(g != groups - 1):
                    m.d.sync += g.eq(g + 1)
                with m.Elif(x != out_w - 1):
                    m.d.sync += [g.eq(0), x.eq(x + 1), wx.eq(wx + sw), pixel.eq(pixel + pixel_step)]
                with m.Elif(y + first_row != out_h - 1):
                    m.d.sync += [g.eq(0), x.eq(0), wx.eq(0), y.eq(y + 1), wy.eq(wy + sh),
                                 pixel.eq(row + row_step), row.eq(row + row_step)]
                with m.Else():  # the next image (a chunk that spans images starts at their row 0)
                    m.d.sync += [g.eq(0), x.eq(0), wx.eq(0), y.eq(0), wy.eq(0),
                                 pixel.eq(row + image_step), row.eq(row + image_step)]
        return address, inside, (j == 0) & (i == 0), last_j & last_i, out_word, weight_group + tap_index, g

    @staticmethod
    def _elapsed(m: Module, cycles: int, active, finish, name: str):  # noqa: ANN001, ANN205
        """Whether ``cycles`` cycles of the unit's command have passed (``command cycles - left >=
        cycles`` while its data transfer lasts: a transfer's datasheet cycles exceed its setup),
        from a saturating counter that is 0 in the command's first cycle."""
        if cycles == 0:
            return Const(1, 1)
        elapsed = Signal(range(cycles + 1), name=f"{name}_elapsed")
        with m.If(active & ~finish):
            m.d.sync += elapsed.eq(Mux(elapsed == cycles, cycles, elapsed + 1))
        with m.Else():
            m.d.sync += elapsed.eq(0)
        return elapsed == cycles

    @staticmethod
    def _walk(m: Module, cmd, head_base, beat, active, finish, name: str):  # noqa: ANN001, ANN205
        """The address of a transfer's beat in its block (``cmd.blk``), from registers that step with
        every ``beat``: 4 bytes along a row, else the row's start plus the row stride, else the
        plane's start plus the plane stride. No address is multiplied. While the unit is idle or
        finishing, they take ``head_base`` (the first byte of the command that may start next)."""
        last_col, last_row, row_stride, last_plane, plane_stride = (cmd.blk[i] for i in range(5))
        addr, row_base, plane_base = (Signal(32, name=f"{name}_{n}") for n in ("addr", "row_base", "plane_base"))
        col, row, plane = (Signal(32, name=f"{name}_{n}") for n in ("col", "row", "plane"))
        with m.If(~active | finish):
            m.d.sync += [addr.eq(head_base), row_base.eq(head_base), plane_base.eq(head_base),
                         col.eq(0), row.eq(0), plane.eq(0)]
        with m.Elif(beat):
            with m.If(col != last_col):
                m.d.sync += [col.eq(col + 1), addr.eq(addr + _BEAT)]
            with m.Elif(row != last_row):
                m.d.sync += [col.eq(0), row.eq(row + 1), addr.eq(row_base + row_stride),
                             row_base.eq(row_base + row_stride)]
            with m.Elif(plane != last_plane):
                m.d.sync += [col.eq(0), row.eq(0), plane.eq(plane + 1), addr.eq(plane_base + plane_stride),
                             row_base.eq(plane_base + plane_stride), plane_base.eq(plane_base + plane_stride)]
        return addr

    @staticmethod
    def _regs(m: Module, width: int, prefix: str, names: tuple[str, ...]) -> list[_Reg]:
        """Address registers ``prefix_name``, each with its next value (by default its own)."""
        regs = [_Reg(Signal(width, name=f"{prefix}_{n}"), Signal(width, name=f"{prefix}_{n}_next")) for n in names]
        m.d.comb += [r.next.eq(r.cur) for r in regs]
        return regs

    @staticmethod
    def _select(m: Module, regs, head_value, takes, busy, start, finish):  # noqa: ANN001, ANN205
        """The addresses of the array's next cycle, registered as the current ones: while a command
        runs, its next step's if the array takes this cycle's operands (``takes``), else this step's,
        or the head's first when the command finishes; while idle, the head's first, or its second
        if it starts (with operands taken) now. Returns the first register's. This cycle's ``start``
        selects only the last multiplexer."""
        out = []
        for r in regs:
            value = Signal.like(r.cur, name=f"{r.cur.name}_sel")
            m.d.comb += value.eq(Mux(busy, Mux(finish, head_value, Mux(takes, r.next, r.cur)),
                                     Mux(start & takes & ~finish, r.next, head_value)))
            m.d.sync += r.cur.eq(value)
            out.append(value)
        return out[0]

    @staticmethod
    def _load(m: Module, reset, enable, regs, value) -> None:  # noqa: ANN001
        """Registers take ``value`` when ``reset`` (a command's first step is next), else their next
        values when ``enable``."""
        with m.If(reset):
            m.d.sync += [r.cur.eq(value) for r in regs]
        with m.Elif(enable):
            m.d.sync += [r.cur.eq(r.next) for r in regs]

    def _feeder(self, m: Module, head, busy, start, finish, takes, adv, last_i, last_o) -> _Feeder:  # noqa: ANN001
        """The OS input feeder of the host's feeder table (:class:`~accel.encoding.FeederStep`): the R
        lanes' im2col addresses of the array's next cycle and whether each reads the padding.

        The step memory is read by the queue head's id (the step of the head is there one cycle
        after it becomes the head; a Compute lasts at least 3 cycles and the run starts two cycles
        after the decoder, so a command's step is there when its first operands are addressed) and
        latched when the command starts. An OS fold streams the window elements ``(c, i, j)`` of the
        command's reduction, one a cycle (shared by the lanes: counters ``j``, ``i`` and the
        address terms ``c``, ``c + i S_i``, ``c + i S_i + j S_j`` and the padding offsets ``i dh``,
        ``j dw``, each stepped by an add or reset to its row's or channel's start at a wrap); lane
        ``l`` holds output pixel ``first + mt R + l`` (counters ``ow``, ``oh`` and the terms
        ``img S_img``, ``+ oh S_oh``, ``+ ow S_ow``, ``ih0 = oh sh - pt``, ``iw0 = ow sw - pl``), each
        lane one pixel after the one before (a chain of incrementers) and lane 0 of the next m tile
        one after the last lane. The products of the first pixel's and element's coordinates are the
        table's words 14..20 (:class:`~accel.encoding.FeederStep`'s derived properties), so no
        multiplier is built. The registers follow :meth:`_select`'s discipline: they hold this
        cycle's state; the selected value (the next cycle's) addresses the scratchpad.
        """
        R = self.arch.array.rows
        sb = max((self.sp_bytes - 1).bit_length(), 1)
        m.submodules.feeder_steps = steps = Memory(shape=32 * _FEEDER_USED, depth=self.max_commands, init=[])
        fw, fr = steps.write_port(granularity=32), steps.read_port(domain="sync")
        word = self.rq_addr[:5]
        m.d.comb += [fw.addr.eq(self.rq_addr >> 5), fw.data.eq(Cat(*(self.rq_data for _ in range(_FEEDER_USED)))),
                     fw.en.eq(Mux(self.rq_we & (self.rq_table == 3) & (word < _FEEDER_USED), Const(1, 32) << word, 0)),
                     fr.addr.eq(head.id)]
        f_head = fr.data
        f_cur = Signal(32 * _FEEDER_USED, name="feeder_step")
        with m.If(start):
            m.d.sync += f_cur.eq(f_head)
        running = busy & ~finish
        f_view = Mux(busy, f_cur, f_head)  # the running command's constants (the head's when idle)
        f_next = Mux(running, f_cur, f_head)  # ... of the command the next cycle's operands are for

        def w(f, i: int, lo: int = 0, hi: int = 32):  # noqa: ANN001, ANN202 - bits lo..hi of word i
            return f[32 * i + lo:32 * i + hi]

        def k_first(f):  # noqa: ANN001, ANN202 - (j, i, c term, row term, term, di, dj) of the first element
            return (w(f, 5, 24, 32), w(f, 5, 16, 24), w(f, 6, 16, 32), w(f, 14, 0, sb), w(f, 15, 0, sb),
                    w(f, 16, 0, 16), w(f, 16, 16, 32))

        def k_inc(x, f):  # noqa: ANN001, ANN202 - the next window element's
            j, i, ch, row, off, di, dj = x
            j_wrap, i_wrap = j == w(f, 0, 24, 32) - 1, i == w(f, 0, 16, 24) - 1
            return (Mux(j_wrap, 0, j + 1), Mux(j_wrap, Mux(i_wrap, 0, i + 1), i),
                    Mux(j_wrap & i_wrap, ch + 1, ch),
                    Mux(j_wrap, Mux(i_wrap, ch + 1, row + w(f, 11)), row),
                    Mux(j_wrap, Mux(i_wrap, ch + 1, row + w(f, 11)), off + w(f, 12)),
                    Mux(j_wrap, Mux(i_wrap, 0, di + w(f, 4, 16, 24)), di),
                    Mux(j_wrap, 0, dj + w(f, 4, 24, 32)))

        def p_first(f):  # noqa: ANN001, ANN202 - (ow, oh, image term, row term, term, ih0, iw0) of the first pixel
            return (w(f, 7, 16, 32), w(f, 7, 0, 16), w(f, 17, 0, sb), w(f, 18, 0, sb), w(f, 19, 0, sb),
                    w(f, 20, 0, 16).as_signed(), w(f, 20, 16, 32).as_signed())

        def p_inc(x, f):  # noqa: ANN001, ANN202 - the next output pixel's
            ow, oh, img, row, off, ih0, iw0 = x
            w_wrap, h_wrap = ow == w(f, 3, 16, 32) - 1, oh == w(f, 3, 0, 16) - 1
            new_row = Mux(h_wrap, img + w(f, 8), row + w(f, 9))
            return (Mux(w_wrap, 0, ow + 1), Mux(w_wrap, Mux(h_wrap, 0, oh + 1), oh),
                    Mux(w_wrap & h_wrap, img + w(f, 8), img), Mux(w_wrap, new_row, row),
                    Mux(w_wrap, new_row, off + w(f, 10)),
                    Mux(w_wrap, Mux(h_wrap, -w(f, 5, 0, 8), ih0 + w(f, 4, 0, 8)), ih0),
                    Mux(w_wrap, -w(f, 5, 8, 16), iw0 + w(f, 4, 8, 16)))

        k_shapes = (8, 8, sb, sb, sb, 17, 17)
        p_shapes = (16, 16, sb, sb, sb, signed(20), signed(20))

        def signals(values, shapes, name: str) -> list[Signal]:  # noqa: ANN001
            out = [Signal(sh, name=f"{name}_{n}") for sh, n in zip(shapes, "abcdefg", strict=False)]
            m.d.comb += [o.eq(v) for o, v in zip(out, values, strict=True)]
            return out

        def chain(first, f, name: str) -> list[list[Signal]]:  # noqa: ANN001 - lanes 0..R-1 from lane 0's pixel
            lanes = [signals(first, p_shapes, f"{name}_0")]
            for lane in range(1, R):
                lanes.append(signals(p_inc(lanes[-1], f), p_shapes, f"{name}_{lane}"))
            return lanes

        def select(cur, head_v, next_v):  # noqa: ANN001, ANN202 - _select's multiplexer
            return Mux(busy, Mux(finish, head_v, Mux(takes, next_v, cur)),
                       Mux(start & takes & ~finish, next_v, head_v))

        # the shared window element: the next step's, or the first again at the fold's end
        k_cur = [Signal(sh, name=f"feed_k_{n}") for sh, n in zip(k_shapes, ("j", "i", "c", "row", "off", "di", "dj"),
                                                                   strict=True)]
        k_step = signals(k_inc(k_cur, f_view), k_shapes, "feed_k_step")
        k_restart = signals(k_first(f_view), k_shapes, "feed_k_restart")
        k_head = signals(k_first(f_head), k_shapes, "feed_k_head")
        k_sel = [Signal(sh, name=f"{c.name}_sel") for sh, c in zip(k_shapes, k_cur, strict=True)]
        for c, sel, h, st, rs in zip(k_cur, k_sel, k_head, k_step, k_restart, strict=True):
            m.d.comb += sel.eq(select(c, h, Mux(adv, rs, st)))
            m.d.sync += c.eq(sel)
        # the lanes' pixels: the same m tile for its n tiles, then the next R pixels, the first for
        # the next product (whose group is group_stride further)
        p_cur = [[Signal(sh, name=f"feed_lane{lane}_{n}") for sh, n in
                  zip(p_shapes, ("ow", "oh", "img", "row", "off", "ih0", "iw0"), strict=True)] for lane in range(R)]
        p_head = chain(p_first(f_head), f_head, "feed_head_lane")
        p_restart = chain(p_first(f_view), f_view, "feed_restart_lane")
        p_tile = chain(p_inc(p_cur[-1], f_view), f_view, "feed_tile_lane")
        g_cur = Signal(sb, name="feed_group")
        g_sel = Signal(sb, name="feed_group_sel")
        m.d.comb += g_sel.eq(select(g_cur, 0, Mux(adv & last_i & last_o, g_cur + w(f_view, 13), g_cur)))
        m.d.sync += g_cur.eq(g_sel)
        p_sel = []
        for lane in range(R):
            lane_sel = []
            for c, h, t, rs in zip(p_cur[lane], p_head[lane], p_tile[lane], p_restart[lane], strict=True):
                sel = Signal.like(c, name=f"{c.name}_sel")
                nxt = Mux(adv & last_i, Mux(last_o, rs, t), c)
                m.d.comb += sel.eq(select(c, h, nxt))
                m.d.sync += c.eq(sel)
                lane_sel.append(sel)
            p_sel.append(lane_sel)
        # the next cycle's addresses and padding, and the zero point its padding lanes read
        on = w(f_next, 0, 0, 1)
        base = w(f_next, 1, 0, sb)
        in_h, in_w = w(f_next, 2, 0, 16), w(f_next, 2, 16, 32)
        pads = [Signal(name=f"feed_pad_{lane}") for lane in range(R)]
        zero_point = Signal(8, name="feed_zero_point")
        addrs = []
        for lane in range(R):
            _, _, _, _, off, ih0, iw0 = p_sel[lane]
            ih = Signal(signed(21), name=f"feed_ih_{lane}")
            iw = Signal(signed(21), name=f"feed_iw_{lane}")
            m.d.comb += [ih.eq(ih0 + k_sel[5]), iw.eq(iw0 + k_sel[6])]
            inside = (ih >= 0) & (ih < in_h) & (iw >= 0) & (iw < in_w)
            m.d.sync += pads[lane].eq(on & ~inside)
            addrs.append((base + off + k_sel[4] + g_sel)[:sb])
        m.d.sync += zero_point.eq(w(f_next, 0, 8, 16))
        return _Feeder(on=on, addrs=addrs, pads=pads, zero_point=zero_point,
                       refused=start & w(f_head, 0, 0, 1) & (head.flags[:2] == 0))

    def _array(self, m: Module, cmd, head, cur, busy, start, active, finish, sp, acc):  # noqa: ANN001, ANN202
        """Feed the systolic tiles from the scratchpad and write their results to the accumulator.

        The scratchpad's reads are synchronous: each cycle addresses the operands of the next one,
        the command's next step, or, when the array is idle or its command ends this cycle, the first
        step of its queue's head (the command that can start next), so a command's first operands are
        there in its first cycle and no cycle is added to any command.

        The accumulator takes one row of ``C`` consecutive words per cycle and its reads are
        synchronous too: each cycle addresses the row the next cycle writes (WS: the output row
        after this cycle's; OS: the next row of the tile). An OS tile's row ``i`` is final in its PEs
        ``R - 1 - i`` cycles before the whole tile leaves the array, so rows ``0 .. R-1`` are written
        in the ``R`` cycles ending with the one the tile leaves in, the cycle the datasheet's last
        result is written: no cycle is added.
        """
        a = self.arch.array
        R, C = a.rows, a.cols
        mm, kk, nn = cmd.f[0], cmd.f[1], cmd.f[2]
        is_ws = cmd.flags[:2] == 0
        sp_a = [sp.r_data[i] for i in range(R)]  # one input lane each (OS: a column of strided bytes)
        sp_b = sp.r_data[R]  # C consecutive weight bytes
        pick_head = Signal(name="array_addresses_head")
        m.d.comb += pick_head.eq(~active | finish)
        # the dataflow of the command the next cycle's operands are for (its head's, or the running one's)
        next_ws = Mux(busy & ~finish, cur.flags[:2], head.flags[:2]) == 0
        # Addresses are taken modulo the memory's size, so they need only as many low bits.
        sb = max((self.sp_bytes - 1).bit_length(), 1)
        ab = max((self.acc_words - 1).bit_length(), 1)
        patterns = self.patterns

        def value_lane(j: int) -> int:  # the read lane of an N:M preload's kept value of column j
            return j if j < R else R + 2 + j - R

        def index_lane(j: int) -> int:  # ... and of the bytes holding its index
            return R + 2 + max(0, C - R) + j
        ws_a_addr = os_a_addr = ws_b_addr = os_b_addr = None
        refused = Const(0, 1)  # a command the feeder table configures, on a dataflow it does not feed

        # the accumulator row (w_mask defaults off; each dataflow drives it when its results leave)
        # and the address of the row the next cycle writes
        acc_rd = []  # (enable, address) of each dataflow's next-cycle read

        # output contexts: the command whose results leave now, and the one started after it
        layout = cmd.shape()
        octx = [Signal(layout, name=f"out_ctx_{i}") for i in range(2)]
        ovalid = [Signal(name=f"out_ctx_valid_{i}") for i in range(2)]
        pop = Signal()
        push = start
        with m.If(pop):
            with m.If(push & ovalid[1]):
                m.d.sync += [octx[0].eq(octx[1]), octx[1].eq(cmd)]
            with m.Elif(push):
                m.d.sync += [octx[0].eq(cmd), ovalid[1].eq(0)]
            with m.Else():
                m.d.sync += [octx[0].eq(octx[1]), ovalid[0].eq(ovalid[1]), ovalid[1].eq(0)]
        with m.Elif(push):
            with m.If(~ovalid[0]):
                m.d.sync += [octx[0].eq(cmd), ovalid[0].eq(1)]
            with m.Else():
                m.d.sync += [octx[1].eq(cmd), ovalid[1].eq(1)]
        out = octx[0]
        om, on, oacc = out.f[0], out.f[2], out.flags[2]
        # the output context changed on the last edge: its address registers take its base (its first
        # results leave many cycles later: a command starts after the last result of the one before)
        ctx_new = Signal(name="out_ctx_new")
        m.d.sync += ctx_new.eq(pop | (push & ~ovalid[0]))
        out_base, on_a, mn = (out.f[6] >> 2)[:ab], on[:ab], out.p[2][:ab]

        def counter(name: str):  # noqa: ANN202
            reg = Signal(32, name=name)
            return reg, reg  # 0 when a command starts: reset below while the array picks its head

        fdone_r = Signal(name="feed_done")
        fdone = fdone_r
        pops = []
        rows = {}  # dataflow -> (the row of results it writes, whether it writes them as they are)
        for df in a.dataflows:
            array = SystolicArray(R, C, df, a_format=a.input_format, b_format=a.weight_format,
                                  acc_format=a.accumulator_format)
            m.submodules[f"array_{df.value}"] = array
            mine = is_ws if df is Dataflow.WS else ~is_ws
            feeding = active & mine & ~fdone
            b_r, b_ = counter(f"{df.value}_b")
            o_r, o_ = counter(f"{df.value}_outer")  # WS: n tile; OS: m tile
            i_r, i_ = counter(f"{df.value}_inner")  # WS: k tile; OS: n tile
            s_r, s_ = counter(f"{df.value}_step")
            ob, oo, oi, os_ = (Signal(32, name=f"{df.value}_out_{x}") for x in ("b", "outer", "inner", "step"))
            if df is Dataflow.WS:
                ph_r = Signal(name="ws_phase")
                ph = ph_r
                last_m, last_kt, last_nt, last_b = cmd.last[0], cmd.last[5], cmd.last[6], cmd.last[3]
                # this cycle's operands, read from the addresses of the cycle before
                for j in range(C):  # weight row kt*R + s, columns nt*C + j
                    row, col = i_ * R + s_, o_ * C + j
                    m.d.comb += array.weights.payload[j].eq(Mux((row < kk) & (col < nn), sp_b.word_select(j, 8), 0))
                for i in range(R):  # input row s, columns kt*R + i
                    col = i_ * R + i
                    m.d.comb += array.inputs.payload.data[i].eq(Mux(col < kk, sp_a[i][:8], 0))
                # with N:M patterns the dense tile takes dense computes only; each pattern has its tile
                dense_cmd = (cmd.nm == 0) if patterns else Const(1, 1)
                m.d.comb += [array.weights.valid.eq(feeding & ~ph & dense_cmd),
                             array.inputs.valid.eq(feeding & ph & dense_cmd),
                             array.inputs.payload.last.eq(s_ == last_m)]
                fire = (array.weights.valid & array.weights.ready) | (array.inputs.valid & array.inputs.ready)
                w_ready, in_ready, in_step = array.weights.ready, array.inputs.ready, Const(R, sb)
                sparse_tiles = []
                nm_offset = [Signal(3, name=f"nm_index_offset_{j}") for j in range(C)] if patterns else []
                for p_i, p in enumerate(patterns):
                    tile = SparseSystolicArray(R, C, p.n, p.m, a_format=a.input_format, b_format=a.weight_format,
                                               acc_format=a.accumulator_format)
                    m.submodules[f"array_ws_{p.n}_{p.m}"] = tile
                    sparse_tiles.append(tile)
                    this = cmd.nm == p_i + 1
                    # weights: kept row kt*R + s of columns nt*C + j, a value byte and its index's bits
                    # (lanes value_lane(j) and index_lane(j), addressed below)
                    for j in range(C):
                        row, col = i_ * R + s_, o_ * C + j
                        entry = tile.weights.payload.data[j]
                        m.d.comb += [
                            entry.value.eq(Mux((row < kk) & (col < nn), sp.r_data[value_lane(j)][:8], 0)),
                            entry.index.eq((sp.r_data[index_lane(j)] >> nm_offset[j])[:p.index_bits])]
                    # inputs: input row s, dense columns kt*F + g*M + t of the fold's F = (R / N) M
                    fold_k = R // p.n * p.m
                    for g in range(R // p.n):
                        for t in range(p.m):
                            col = i_ * fold_k + g * p.m + t
                            m.d.comb += tile.inputs.payload.data[g][t].eq(
                                Mux(col < cmd.kd, sp_a[g].word_select(t, 8), 0))
                    m.d.comb += [tile.weights.valid.eq(feeding & ~ph & this), tile.inputs.valid.eq(feeding & ph & this),
                                 tile.weights.payload.dense.eq(0), tile.inputs.payload.last.eq(s_ == last_m)]
                    fire = fire | (tile.weights.valid & tile.weights.ready) | (tile.inputs.valid & tile.inputs.ready)
                    w_ready = Mux(this, tile.weights.ready, w_ready)
                    in_ready = Mux(this, tile.inputs.ready, in_ready)
                    in_step = Mux(this, fold_k, in_step)
                end_phase = Mux(ph, s_ == last_m, s_ == R - 1)
                nb, no, ni, ns, nph, nfd = (Signal.like(x, name=f"ws_next_{n}") for x, n in
                                            ((b_r, "b"), (o_r, "outer"), (i_r, "inner"), (s_r, "step"),
                                             (ph_r, "phase"), (fdone_r, "feed_done")))
                m.d.comb += [nb.eq(b_), no.eq(o_), ni.eq(i_), ns.eq(s_), nph.eq(ph), nfd.eq(fdone)]
                with m.If(fire):
                    m.d.comb += ns.eq(Mux(end_phase, 0, s_ + 1))
                    with m.If(end_phase):
                        m.d.comb += nph.eq(~ph)
                    with m.If(end_phase & ph):
                        m.d.comb += ni.eq(Mux(i_ == last_kt, 0, i_ + 1))
                        with m.If(i_ == last_kt):
                            m.d.comb += no.eq(Mux(o_ == last_nt, 0, o_ + 1))
                            with m.If(o_ == last_nt):
                                m.d.comb += nb.eq(b_ + 1)
                                with m.If(b_ == last_b):
                                    m.d.comb += nfd.eq(1)
                with m.If(pick_head):
                    m.d.sync += [b_r.eq(0), o_r.eq(0), i_r.eq(0), s_r.eq(0), ph_r.eq(0), fdone_r.eq(0)]
                with m.Elif(active & mine):
                    m.d.sync += [b_r.eq(nb), o_r.eq(no), i_r.eq(ni), s_r.eq(ns), ph_r.eq(nph), fdone_r.eq(nfd)]
                # next cycle's addresses: this command's next step, or the first of the one that may start.
                # Registers hold the current step's addresses (weights: row s of the fold's tile; inputs:
                # lane 0 of row s) and the bases they return to (the fold's tile, its n tile, its batch
                # element); the next step's are one add away, so no address is multiplied.
                # (the next values assume the array takes this cycle's operands: see _select)
                adv = ph & end_phase  # the fold's last input row: the next fold
                last_i, last_o = i_ == last_kt, o_ == last_nt
                k_s, n_s_, mk, kn = kk[:sb], nn[:sb], cmd.p[0][:sb], cmd.p[1][:sb]
                # dense weights are row-major k x n; a packed N:M tile is column by column (a column's
                # k kept rows, then the next column's), its input row (k / N) M dense bytes
                w_step, w_k_step, w_n_step, in_row_step = n_s_, _times(n_s_, R), Const(C, sb), k_s
                if patterns:
                    nm_cmd = cmd.nm != 0
                    w_step, w_k_step = Mux(nm_cmd, 1, n_s_), Mux(nm_cmd, R, w_k_step)
                    w_n_step, in_row_step = Mux(nm_cmd, _times(k_s, C), C), Mux(nm_cmd, cmd.kd[:sb], k_s)
                    mk = Mux(nm_cmd, cmd.mkd[:sb], mk)
                w_row, w_tile, w_col, w_b = self._regs(m, sb, "ws_w", ("row", "tile", "col", "batch"))
                i_row, i_tile, i_b = self._regs(m, sb, "ws_in", ("row", "tile", "batch"))
                with m.If(~ph):
                    m.d.comb += w_row.next.eq(w_row.cur + w_step)
                with m.If(ph & ~end_phase):
                    m.d.comb += i_row.next.eq(i_row.cur + in_row_step)
                with m.If(adv & ~last_i):
                    m.d.comb += [x.next.eq(w_tile.cur + w_k_step) for x in (w_row, w_tile)]
                    m.d.comb += [x.next.eq(i_tile.cur + in_step) for x in (i_row, i_tile)]
                with m.Elif(adv & ~last_o):
                    m.d.comb += [x.next.eq(w_col.cur + w_n_step) for x in (w_row, w_tile, w_col)]
                    m.d.comb += [x.next.eq(i_b.cur) for x in (i_row, i_tile)]
                with m.Elif(adv):
                    m.d.comb += [x.next.eq(w_b.cur + kn) for x in (w_row, w_tile, w_col, w_b)]
                    m.d.comb += [x.next.eq(i_b.cur + mk) for x in (i_row, i_tile, i_b)]
                takes = mine & ~fdone & Mux(ph, in_ready, w_ready)
                ws_b_addr = self._select(m, (w_row, w_tile, w_col, w_b), head.f[5][:sb], takes, busy, start, finish)
                first = self._select(m, (i_row, i_tile, i_b), head.f[4][:sb], takes, busy, start, finish)
                ws_a_addr = [(first + i)[:sb] for i in range(R)]
                if patterns:
                    # the command the next cycle's operands are for: its pattern, k and index base
                    running = busy & ~finish
                    next_nm = Mux(running, cur.nm, head.nm)
                    lane_k = Mux(running, cur.f[1], head.f[1])[:sb]
                    nmx = Mux(running, cur.nmx, head.nmx)
                    for p_i, p in enumerate(patterns):  # input lane g: group g, M bytes from g * M
                        for g in range(R // p.n):
                            ws_a_addr[g] = Mux(next_nm == p_i + 1, (first + g * p.m)[:sb], ws_a_addr[g])
                    # the next cycle preloads an N:M fold: the counters restart (a command's first
                    # beat is a weight) or the running command's phase is (or stays) the weights'
                    preload = Signal(name="nm_preload_next")
                    m.d.comb += preload.eq((next_nm != 0) & Mux(pick_head, 1, Mux(active & mine, ~nph, ~ph)))
                    for j in range(C):  # column j's kept value k bytes after column j - 1's, and its index
                        value_addr = Signal(sb, name=f"nm_value_addr_{j}")
                        index_bit = Signal(sb + 3, name=f"nm_index_bit_{j}")
                        m.d.comb += value_addr.eq(ws_b_addr + _times(lane_k, j))
                        index_at = Const(0, sb + 3)
                        for p_i, p in enumerate(patterns):
                            index_at = Mux(next_nm == p_i + 1, _times(value_addr, p.index_bits), index_at)
                        m.d.comb += [index_bit.eq(nmx + index_at), sp.r_addr[index_lane(j)].eq(index_bit >> 3)]
                        if j < R:  # an input lane, idle in the preload
                            ws_a_addr[j] = Mux(preload, value_addr, ws_a_addr[j])
                        else:
                            m.d.comb += sp.r_addr[value_lane(j)].eq(value_addr)
                        m.d.sync += nm_offset[j].eq(index_bit[:3])
                # results: row os_ of k tile oi, n tile oo
                m.d.comb += array.outputs.ready.eq(1)
                out_valid, out_row = array.outputs.valid, list(array.outputs.payload.data)
                for p_i, tile in enumerate(sparse_tiles):  # one tile runs at a time: the output's
                    m.d.comb += tile.outputs.ready.eq(1)
                    out_valid = out_valid | tile.outputs.valid
                    out_row = [Mux(out.nm == p_i + 1, t, d) for t, d in zip(tile.outputs.payload.data, out_row,
                                                                             strict=True)]
                got = out_valid & ovalid[0] & (out.flags[:2] == 0)
                o_last_m, o_last_kt, o_last_nt, o_last_b = out.last[0], out.last[5], out.last[6], out.last[3]

                # the first word of output row os_ of n tile oo, that of the tile's row 0 and of the
                # batch element's, kept as the counters move
                r_row, r_tile, r_b = self._regs(m, ab, "ws_acc", ("row", "tile", "batch"))
                with m.If(got & (os_ != o_last_m)):
                    m.d.comb += r_row.next.eq(r_row.cur + on_a)
                with m.Elif(got & (oi != o_last_kt)):
                    m.d.comb += r_row.next.eq(r_tile.cur)
                with m.Elif(got & (oo != o_last_nt)):
                    m.d.comb += [x.next.eq(r_tile.cur + C) for x in (r_row, r_tile)]
                with m.Elif(got):
                    m.d.comb += [x.next.eq(r_b.cur + mn) for x in (r_row, r_tile, r_b)]
                self._load(m, ctx_new, Const(1, 1), (r_row, r_tile, r_b), out_base)

                with m.If(got):
                    for j in range(C):
                        col = oo * C + j
                        m.d.comb += acc.w_mask[j].eq(col < on)
                rows[df] = (out_row, (oi == 0) & ~oacc)  # a k tile's first: written
                last_out = got & (os_ == o_last_m) & (oi == o_last_kt) & (oo == o_last_nt) & (ob == o_last_b)
                n_s, n_i, n_o, n_b = (Signal.like(x, name=f"ws_out_next_{n}") for x, n in
                                      ((os_, "step"), (oi, "inner"), (oo, "outer"), (ob, "b")))
                m.d.comb += [n_s.eq(os_), n_i.eq(oi), n_o.eq(oo), n_b.eq(ob)]
                with m.If(got):
                    m.d.comb += n_s.eq(Mux(os_ == o_last_m, 0, os_ + 1))
                    with m.If(os_ == o_last_m):
                        m.d.comb += n_i.eq(Mux(oi == o_last_kt, 0, oi + 1))
                        with m.If(oi == o_last_kt):
                            m.d.comb += n_o.eq(Mux(oo == o_last_nt, 0, oo + 1))
                            with m.If(oo == o_last_nt):
                                m.d.comb += n_b.eq(Mux(last_out, 0, ob + 1))
                m.d.sync += [os_.eq(n_s), oi.eq(n_i), oo.eq(n_o), ob.eq(n_b)]
                acc_rd.append((out.flags[:2] == 0, r_row.next))
                pops.append(last_out)
            else:
                last_k, last_mt, last_nt, last_b = cmd.last[1], cmd.last[4], cmd.last[6], cmd.last[3]
                pads = [Signal(name=f"os_pad_{i}") for i in range(R)]  # the feeder's (below)
                zero_point = Signal(8, name="os_zero_point")
                for i in range(R):  # A[mt*R + i, s]
                    row = o_ * R + i
                    m.d.comb += array.operands.payload.a[i].eq(Mux(row < mm, Mux(pads[i], zero_point, sp_a[i][:8]), 0))
                for j in range(C):  # B[s, nt*C + j]
                    col = i_ * C + j
                    m.d.comb += array.operands.payload.b[j].eq(Mux(col < nn, sp_b.word_select(j, 8), 0))
                m.d.comb += [array.operands.valid.eq(feeding), array.operands.payload.last.eq(s_ == last_k)]
                fire = array.operands.valid & array.operands.ready
                nb, no, ni, ns, nfd = (Signal.like(x, name=f"os_next_{n}") for x, n in
                                       ((b_r, "b"), (o_r, "outer"), (i_r, "inner"), (s_r, "step"),
                                        (fdone_r, "feed_done")))
                m.d.comb += [nb.eq(b_), no.eq(o_), ni.eq(i_), ns.eq(s_), nfd.eq(fdone)]
                with m.If(fire):
                    m.d.comb += ns.eq(Mux(s_ == last_k, 0, s_ + 1))
                    with m.If(s_ == last_k):
                        m.d.comb += ni.eq(Mux(i_ == last_nt, 0, i_ + 1))
                        with m.If(i_ == last_nt):
                            m.d.comb += no.eq(Mux(o_ == last_mt, 0, o_ + 1))
                            with m.If(o_ == last_mt):
                                m.d.comb += nb.eq(b_ + 1)
                                with m.If(b_ == last_b):
                                    m.d.comb += nfd.eq(1)
                with m.If(pick_head):
                    m.d.sync += [b_r.eq(0), o_r.eq(0), i_r.eq(0), s_r.eq(0), fdone_r.eq(0)]
                with m.Elif(active & mine):
                    m.d.sync += [b_r.eq(nb), o_r.eq(no), i_r.eq(ni), s_r.eq(ns), fdone_r.eq(nfd)]
                # the same for OS: inputs (lane 0 at step s of the m tile), weights (row s of the n tile)
                adv = s_ == last_k  # the fold's last step: the next fold
                last_i, last_o = i_ == last_nt, o_ == last_mt
                k_s, n_s_, mk, kn = kk[:sb], nn[:sb], cmd.p[0][:sb], cmd.p[1][:sb]
                a_row, a_tile, a_b = self._regs(m, sb, "os_in", ("step", "tile", "batch"))
                b_row, b_tile, b_b = self._regs(m, sb, "os_w", ("row", "tile", "batch"))
                with m.If(~adv):
                    m.d.comb += [a_row.next.eq(a_row.cur + 1), b_row.next.eq(b_row.cur + n_s_)]
                with m.If(adv & ~last_i):
                    m.d.comb += a_row.next.eq(a_tile.cur)
                    m.d.comb += [x.next.eq(b_tile.cur + C) for x in (b_row, b_tile)]
                with m.Elif(adv & ~last_o):
                    m.d.comb += [x.next.eq(a_tile.cur + _times(k_s, R)) for x in (a_row, a_tile)]
                    m.d.comb += [x.next.eq(b_b.cur) for x in (b_row, b_tile)]
                with m.Elif(adv):
                    m.d.comb += [x.next.eq(a_b.cur + mk) for x in (a_row, a_tile, a_b)]
                    m.d.comb += [x.next.eq(b_b.cur + kn) for x in (b_row, b_tile, b_b)]
                takes = mine & ~fdone & array.operands.ready
                first = self._select(m, (a_row, a_tile, a_b), head.f[4][:sb], takes, busy, start, finish)
                os_b_addr = self._select(m, (b_row, b_tile, b_b), head.f[5][:sb], takes, busy, start, finish)
                # lane i reads k bytes further on: the running command's k, else the head's
                lane_k = Mux(busy & ~finish, cur.f[1][:sb], head.f[1][:sb])
                os_a_addr = [(first + _times(lane_k, i))[:sb] for i in range(R)]
                # a command the host's feeder table configures: its lanes' im2col addresses instead
                feed = self._feeder(m, head, busy, start, finish, takes, adv, last_i, last_o)
                os_a_addr = [Mux(feed.on, f, a) for f, a in zip(feed.addrs, os_a_addr, strict=True)]
                m.d.comb += [p.eq(f) for p, f in zip(pads, feed.pads, strict=True)]
                m.d.comb += zero_point.eq(feed.zero_point)
                refused = feed.refused
                m.d.comb += array.outputs.ready.eq(1)
                got = array.outputs.valid & ovalid[0] & (out.flags[:2] == 1)
                o_last_mt, o_last_nt, o_last_b = out.last[4], out.last[6], out.last[3]
                # tag[d] is high d cycles after the cycle a fold's last step is accepted; the tile
                # leaves R + C - 1 cycles after it, and row i is final and written at tag[C + i]
                tag = [Signal(name=f"os_tag_{d}") for d in range(C + R)]
                m.d.comb += tag[0].eq(fire & array.operands.payload.last)
                m.d.sync += [tag[d].eq(tag[d - 1]) for d in range(1, C + R)]
                drain, drain_row = Signal(name="os_drain"), Signal(range(R), name="os_drain_row")
                ahead, ahead_row = Signal(name="os_drain_next"), Signal(range(R), name="os_drain_next_row")
                for i in range(R):
                    with m.If(tag[C + i]):
                        m.d.comb += [drain.eq(1), drain_row.eq(i)]
                    with m.If(tag[C + i - 1]):
                        m.d.comb += [ahead.eq(1), ahead_row.eq(i)]

                # the first word of the tile row read next (row i of the tile is read at tag[C + i - 1],
                # rows in order, and the next tile's row 0 comes R + C - 1 cycles after this one's), that
                # of the tile's row 0, of its m tile's, of its batch element's
                t_row, t_tile, t_m, t_b = self._regs(m, ab, "os_acc", ("row", "tile", "m_tile", "batch"))
                with m.If(got & (oi != o_last_nt)):
                    m.d.comb += [x.next.eq(t_tile.cur + C) for x in (t_row, t_tile)]
                with m.Elif(got & (oo != o_last_mt)):
                    m.d.comb += [x.next.eq(t_m.cur + _times(on_a, R)) for x in (t_row, t_tile, t_m)]
                with m.Elif(got):
                    m.d.comb += [x.next.eq(t_b.cur + mn) for x in (t_row, t_tile, t_m, t_b)]
                with m.Elif(ahead):
                    m.d.comb += t_row.next.eq(t_row.cur + on_a)
                self._load(m, ctx_new, Const(1, 1), (t_row, t_tile, t_m, t_b), out_base)

                tile_row = array.outputs.payload[drain_row]
                with m.If(drain & ovalid[0] & (out.flags[:2] == 1) & (oo * R + drain_row < om)):
                    for j in range(C):
                        m.d.comb += acc.w_mask[j].eq(oi * C + j < on)
                rows[df] = (list(tile_row), ~oacc)
                acc_rd.append((ahead & (out.flags[:2] == 1), t_row.cur))
                last_out = got & (oi == o_last_nt) & (oo == o_last_mt) & (ob == o_last_b)
                with m.If(got):
                    m.d.sync += oi.eq(Mux(oi == o_last_nt, 0, oi + 1))
                    with m.If(oi == o_last_nt):
                        m.d.sync += oo.eq(Mux(oo == o_last_mt, 0, oo + 1))
                        with m.If(oo == o_last_mt):
                            m.d.sync += ob.eq(Mux(last_out, 0, ob + 1))
                pops.append(last_out)
        for i in range(R):
            a_addr = ws_a_addr[i] if os_a_addr is None else os_a_addr[i] if ws_a_addr is None \
                else Mux(next_ws, ws_a_addr[i], os_a_addr[i])
            m.d.comb += sp.r_addr[i].eq(a_addr)
        b_addr = ws_b_addr if os_b_addr is None else os_b_addr if ws_b_addr is None \
            else Mux(next_ws, ws_b_addr, os_b_addr)
        m.d.comb += sp.r_addr[R].eq(b_addr)
        # one read-modify-write adder: the output context (a register) picks the dataflow's row
        (row, fresh), *others = rows.values()
        if others:
            os_out = out.flags[:2] == 1
            os_row, os_fresh = rows[Dataflow.OS]
            ws_row, ws_fresh = rows[Dataflow.WS]
            row = [Mux(os_out, o, w) for o, w in zip(os_row, ws_row, strict=True)]
            fresh = Mux(os_out, os_fresh, ws_fresh)
        for j in range(C):
            m.d.comb += acc.w_data[j].eq(Mux(fresh, row[j], acc.a_data[j] + row[j]))
        rd_addr = acc_rd[0][1]
        for en, addr in acc_rd[1:]:
            rd_addr = Mux(en, addr, rd_addr)
        m.d.comb += acc.a_addr.eq(rd_addr)
        # every row the array writes was read (addressed) in the cycle before: its address is that one
        w_addr = Signal.like(acc.w_addr, name="acc_row_addr")
        m.d.sync += w_addr.eq(rd_addr)
        m.d.comb += acc.w_addr.eq(w_addr)
        pop_any = Const(0, 1)
        for p in pops:
            pop_any = pop_any | p
        m.d.comb += pop.eq(pop_any)
        return refused

