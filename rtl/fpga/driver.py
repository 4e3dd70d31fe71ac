"""The host side of :class:`rtl.fpga.host_link.HostLink`'s UART command protocol.

:class:`HostLinkDriver` speaks the protocol (documented in :mod:`rtl.fpga.host_link`) over any
:class:`Transport`: an object with ``write(data: bytes) -> None`` and ``read(n: int) -> bytes``,
where ``read`` returns exactly ``n`` bytes or raises. :class:`SerialTransport` is one on a real
board's serial port (pyserial, imported only when opened); the cocotb testbench
(``tests/rtl/uart_host_link_tb.py``) supplies one that drives and samples the RTL's UART pins, so
the same driver code is what is verified in simulation.

:meth:`HostLinkDriver.run_tile` sends one WS tile ``x (S x R) @ w (R x C)``, reads the results and
the cycle counter, and checks them against :func:`sim.numerics.systolic_tile` and
:func:`sim.numerics.systolic_tile_cycles`.

:class:`NPULinkDriver` speaks the protocol of :class:`rtl.fpga.npu_link.NPULink` (the whole NPU and a
DRAM model behind the UART) over the same :class:`Transport`: :meth:`NPULinkDriver.run_program`
writes a program's image, its requantization and vector tables (``'Q'``: for a plan of a quantized
graph :func:`rtl.npu.golden.requant_table`'s words, else a table that leaves every command at unit
scale), the array's input feeder table (``'Q'`` table 3: for a plan of a graph,
:func:`rtl.npu.golden.feeder_table`'s steps, so a convolution's computes gather their im2col rows)
and its inputs, runs it, reads its outputs, the cycle counter and each command's trace, and checks
them against :func:`rtl.npu.golden.execute` with those tables and :func:`sim.engine.simulate`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from accel.errors import AccelError, ToolError
from rtl.fpga import npu_link
from rtl.fpga.host_link import (
    ACC_BYTES,
    ERROR,
    OP_ACTIVATIONS,
    OP_CYCLES,
    OP_GO,
    OP_INFO,
    OP_RESULTS,
    OP_WEIGHTS,
)

if TYPE_CHECKING:
    from accel.commands import Command
    from accel.encoding import FeederTable, RequantTable
    from accel.hardware import Accelerator
    from mapper.plan import Plan
    from workloads.graph import Graph

__all__ = ["Transport", "SerialTransport", "HostLinkDriver", "LinkError", "TileInfo", "TileRun", "NPULinkDriver",
           "NPUInfo", "NPURun", "conv_layer", "fc_layer", "program_tensors", "random_inputs"]


class LinkError(AccelError):
    """The board answered something the protocol does not allow, or a result did not match."""


class Transport(Protocol):
    """A byte pipe to the board: ``read(n)`` returns exactly ``n`` bytes or raises."""

    def write(self, data: bytes) -> None: ...

    def read(self, n: int) -> bytes: ...


class SerialTransport:
    """A :class:`Transport` on a serial port through pyserial (``pip install pyserial``).

    ``timeout`` (seconds) bounds each read; a short read raises :class:`~accel.errors.ToolError`.
    """

    def __init__(self, port: str, baud: int = 115200, *, timeout: float = 2.0) -> None:
        try:
            import serial  # type: ignore[import-not-found, import-untyped]
        except ImportError:
            raise ToolError("'accel fpga run' needs pyserial to talk to the board: pip install pyserial") from None
        try:
            self._port: Any = serial.Serial(port, baud, timeout=timeout)
        except (serial.SerialException, OSError) as error:
            raise ToolError(f"cannot open serial port {port!r}: {error}") from None
        self.port = port

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def read(self, n: int) -> bytes:
        data = bytes(self._port.read(n))
        if len(data) != n:
            raise ToolError(f"board on {self.port} sent {len(data)} of {n} expected bytes before the timeout")
        return data

    def close(self) -> None:
        self._port.close()


@dataclass(frozen=True)
class TileInfo:
    """What the board reports for ``'I'``: the tile's size and its activation buffer depth."""

    rows: int
    cols: int
    max_stream: int


@dataclass(frozen=True)
class TileRun:
    """One tile on the board: its results and cycles, and what sim.numerics / accel.timing expect."""

    results: np.ndarray
    expected: np.ndarray
    cycles: int
    expected_cycles: int

    @property
    def results_match(self) -> bool:
        return bool(np.array_equal(self.results, self.expected))

    @property
    def cycles_match(self) -> bool:
        return self.cycles == self.expected_cycles


class HostLinkDriver:
    """The protocol over ``transport``; every method sends one command and reads its whole answer."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._info: TileInfo | None = None

    def info(self) -> TileInfo:
        """``'I'``: the tile's rows, columns and maximum stream length (cached after the first call)."""
        if self._info is None:
            self.transport.write(bytes([OP_INFO]))
            rows, cols, max_stream = self.transport.read(3)
            self._info = TileInfo(rows, cols, max_stream)
        return self._info

    def load_weights(self, w: npt.ArrayLike) -> None:
        """``'W'``: store the int8 weights ``w`` (rows x cols)."""
        info = self.info()
        w_v = self._int8(w, "w")
        if w_v.shape != (info.rows, info.cols):
            raise LinkError(f"weights must be {info.rows} x {info.cols}, not {w_v.shape}")
        self.transport.write(bytes([OP_WEIGHTS]) + w_v.astype(np.int8).tobytes())
        self._expect(OP_WEIGHTS, "load weights")

    def load_activations(self, x: npt.ArrayLike) -> None:
        """``'A'``: store the int8 activations ``x`` (S x rows, 1 <= S <= max_stream)."""
        info = self.info()
        x_v = self._int8(x, "x")
        if x_v.ndim != 2 or x_v.shape[1] != info.rows or not 1 <= x_v.shape[0] <= info.max_stream:
            raise LinkError(f"activations must be S x {info.rows} with 1 <= S <= {info.max_stream}, not {x_v.shape}")
        self.transport.write(bytes([OP_ACTIVATIONS, x_v.shape[0]]) + x_v.astype(np.int8).tobytes())
        self._expect(OP_ACTIVATIONS, "load activations")

    def go(self) -> None:
        """``'G'``: run the fold on the stored weights and activations; returns when it is done."""
        self.transport.write(bytes([OP_GO]))
        self._expect(OP_GO, "run the fold")

    def read_results(self, stream_length: int) -> np.ndarray:
        """``'R'``: the int32 results (stream_length x cols) of the last fold."""
        cols = self.info().cols
        self.transport.write(bytes([OP_RESULTS]))
        raw = self.transport.read(stream_length * cols * ACC_BYTES)
        return np.frombuffer(raw, dtype="<i4").reshape(stream_length, cols).astype(np.int64)

    def read_cycles(self) -> int:
        """``'C'``: the cycle count of the last fold (see :mod:`rtl.fpga.host_link`)."""
        self.transport.write(bytes([OP_CYCLES]))
        return int.from_bytes(self.transport.read(4), "little")

    def run_tile(self, x: npt.ArrayLike, w: npt.ArrayLike, *, check: bool = True) -> TileRun:
        """Run ``x (S x rows) @ w (rows x cols)`` on the board and compare with the simulator.

        With ``check`` a result that differs from :func:`sim.numerics.systolic_tile` or a cycle
        count that differs from :func:`sim.numerics.systolic_tile_cycles` raises :class:`LinkError`;
        the returned :class:`TileRun` carries both either way.
        """
        from accel.hardware import Dataflow, SystolicArray
        from sim.numerics import systolic_tile, systolic_tile_cycles

        x_v, w_v = np.asarray(x), np.asarray(w)
        self.load_weights(w_v)
        self.load_activations(x_v)
        self.go()
        s = x_v.shape[0]
        results = self.read_results(s)
        cycles = self.read_cycles()
        info = self.info()
        expected = np.asarray(systolic_tile(x_v, w_v, dataflow="ws"), dtype=np.int64)
        array = SystolicArray(info.rows, info.cols, dataflows=(Dataflow.WS,))
        run = TileRun(results, expected, cycles, systolic_tile_cycles(array, Dataflow.WS, s, info.rows, info.cols))
        if check and not run.results_match:
            bad = np.argwhere(results != expected)[:4].tolist()
            raise LinkError(f"board results differ from sim.numerics.systolic_tile at {bad}: "
                            f"got {results.tolist()}, expected {expected.tolist()}")
        if check and not run.cycles_match:
            raise LinkError(f"board took {cycles} cycles, accel.timing says {run.expected_cycles}")
        return run

    # -- helpers ---------------------------------------------------------------------------------

    def _expect(self, answer: int, what: str) -> None:
        got = self.transport.read(1)[0]
        if got != answer:
            detail = "refused ('?')" if got == ERROR else f"answered {got:#04x}"
            raise LinkError(f"board {detail} when asked to {what} (expected {chr(answer)!r})")

    @staticmethod
    def _int8(values: npt.ArrayLike, name: str) -> np.ndarray:
        v = np.asarray(values)
        if not np.issubdtype(v.dtype, np.integer) or v.size and (v.min() < -128 or v.max() > 127):
            raise LinkError(f"{name} must hold int8 integers (-128..127)")
        return v.astype(np.int64)


# -- the NPU host link ----------------------------------------------------------------------------

CHUNK_BYTES = 4096
"""The most bytes one ``'W'`` or ``'R'`` of :class:`NPULinkDriver` moves (a read at 115200 baud takes
0.36 s, well inside :class:`SerialTransport`'s timeout); longer transfers are split."""


@dataclass(frozen=True)
class NPUInfo:
    """What :class:`~rtl.fpga.npu_link.NPULink` reports for ``'I'``."""

    program_words: int
    dram_bytes: int
    max_commands: int
    rows: int
    cols: int
    dram_latency: int
    requant_channels: int


@dataclass(frozen=True)
class NPURun:
    """One program on the board: its output bytes, cycles and trace, and what golden and the simulator say.

    ``outputs`` and ``expected`` map each output tensor (one a store writes) to its DRAM bytes
    (:func:`program_tensors`); ``trace`` and ``expected_trace`` hold each command's ``(start, end)``
    cycle, by command id (``trace`` is empty when it was not read).
    """

    outputs: dict[str, bytes]
    expected: dict[str, bytes]
    cycles: int
    expected_cycles: int
    trace: tuple[tuple[int, int], ...] = ()
    expected_trace: tuple[tuple[int, int], ...] = field(default=(), repr=False)

    @property
    def outputs_match(self) -> bool:
        return self.outputs == self.expected

    @property
    def cycles_match(self) -> bool:
        return self.cycles == self.expected_cycles

    @property
    def trace_match(self) -> bool:
        return not self.trace or self.trace == self.expected_trace

    def mismatches(self) -> list[str]:
        """What differs, one phrase each (empty when everything matches)."""
        problems = []
        for name, got in self.outputs.items():
            want = self.expected[name]
            diff = [i for i, (x, y) in enumerate(zip(got, want, strict=True)) if x != y]
            if diff:
                shown = ", ".join(f"byte {i}: {got[i]:#04x} != {want[i]:#04x}" for i in diff[:4])
                problems.append(f"output {name!r} differs from rtl.npu.golden.execute in {len(diff)} of "
                                f"{len(want)} bytes ({shown})")
        if not self.cycles_match:
            problems.append(f"the board took {self.cycles} cycles, sim.simulate {self.expected_cycles}")
        if not self.trace_match:
            bad = [(i, got, want) for i, (got, want) in enumerate(zip(self.trace, self.expected_trace, strict=True))
                   if got != want]
            problems.append("trace differs from sim.simulate's: " + ", ".join(
                f"command {i} ran [{g[0]}, {g[1]}), simulator [{w[0]}, {w[1]})" for i, g, w in bad[:4]))
        return problems


def program_tensors(commands: Sequence[Command]) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """The DRAM regions ``(address, bytes)`` of a program's inputs and outputs, by tensor name.

    An input is a tensor a load reads before any store of the program writes it; an output is a
    tensor a store writes. A region spans the lowest to the highest byte the program's loads (inputs)
    or stores (outputs) of that tensor touch (a strided DRAM block: from its first byte to one past its
    last, :attr:`~accel.commands.Block.span_bytes`).
    """
    from accel.commands import Load, Store

    spans: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
    stored: set[str] = set()
    for cmd in commands:
        if not isinstance(cmd, Load | Store):
            continue
        if isinstance(cmd, Load) and cmd.tensor in stored:
            continue  # reads back what the program wrote: not an input
        kind = spans[isinstance(cmd, Store)]
        if isinstance(cmd, Store):
            stored.add(cmd.tensor)
        end = cmd.dram_addr + (cmd.size_bytes if cmd.dram is None else cmd.dram.span_bytes)
        lo, hi = kind.setdefault(cmd.tensor, [cmd.dram_addr, end])
        kind[cmd.tensor] = [min(lo, cmd.dram_addr), max(hi, end)]
    inputs, outputs = ({name: (lo, hi - lo) for name, (lo, hi) in kind.items()} for kind in spans)
    return inputs, outputs


def _codes(name: str, value: object, size: int) -> bytes:
    """An input's bytes: ``bytes`` as they are, integer codes (-128..255) as one byte each."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        v = np.asarray(value)
        if not np.issubdtype(v.dtype, np.integer) or v.size and (v.min() < -128 or v.max() > 255):
            raise LinkError(f"input {name!r} must be bytes or integer codes -128..255")
        data = (v.reshape(-1).astype(np.int64) & 0xFF).astype(np.uint8).tobytes()
    if len(data) != size:
        raise LinkError(f"input {name!r} has {len(data)} bytes; the program reads {size} bytes of it")
    return data


class NPULinkDriver:
    """The NPU host link's protocol (:mod:`rtl.fpga.npu_link`) over ``transport``.

    Every method sends one command (or, for long transfers, one per :data:`CHUNK_BYTES`) and reads its
    whole answer. :meth:`wait` polls the status at most ``max_polls`` times, ``poll_interval``
    seconds apart.
    """

    def __init__(self, transport: Transport, *, max_polls: int = 100_000, poll_interval: float = 0.0) -> None:
        self.transport = transport
        self.max_polls, self.poll_interval = max_polls, poll_interval
        self._info: NPUInfo | None = None

    def info(self) -> NPUInfo:
        """``'I'``: the board's memories and array (cached after the first call)."""
        if self._info is None:
            self.transport.write(bytes([npu_link.OP_INFO]))
            first = self.transport.read(1)[0]
            if first != npu_link.OP_INFO:
                raise LinkError(f"the board answered {first:#04x} to 'I', not 'I': is it running the NPU host link "
                                "(accel fpga build --design npu)?")
            raw = self.transport.read(npu_link.INFO_BYTES)
            self._info = NPUInfo(int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little"),
                                 int.from_bytes(raw[8:10], "little"), raw[10], raw[11],
                                 int.from_bytes(raw[12:14], "little"), int.from_bytes(raw[14:16], "little"))
        return self._info

    def write_program(self, image: bytes) -> None:
        """``'P'``: the encoded program ``image`` into program memory from word 0 (padded to whole words)."""
        info = self.info()
        words = -(-len(image) // 4)
        if not 0 < words <= info.program_words:
            raise LinkError(f"a program image of {words} words does not fit the board's {info.program_words}")
        padded = bytes(image).ljust(4 * words, b"\0")
        for first in range(0, words, CHUNK_BYTES // 4):
            n = min(CHUNK_BYTES // 4, words - first)
            self._send(npu_link.OP_PROGRAM, first, n, padded[4 * first: 4 * (first + n)])
            self._expect(npu_link.OP_PROGRAM, "store the program")

    def write_table(self, table: int, words: Sequence[int], first: int = 0) -> None:
        """``'Q'``: ``words`` into the NPU's table ``table`` (``rq_table``: 0 requantization steps, 1
        channels, 2 vector steps, 3 the fourth) from word ``first``."""
        data = b"".join((w & 0xFFFFFFFF).to_bytes(4, "little") for w in words)
        for start in range(0, len(words), CHUNK_BYTES // 4):
            n = min(CHUNK_BYTES // 4, len(words) - start)
            self.transport.write(bytes([npu_link.OP_TABLE, table]) + (first + start).to_bytes(4, "little")
                                 + n.to_bytes(4, "little") + data[4 * start: 4 * (start + n)])
            self._expect(npu_link.OP_TABLE, f"write words {first + start}..{first + start + n - 1} of table {table}")

    def write_requant(self, table: RequantTable, commands: int) -> None:
        """The host's requantization table for a program of ``commands`` commands: the step words of
        every id below ``commands`` (:func:`accel.encoding.encode_requant_table`; an id the table does not
        configure is written cleared, so nothing an earlier program configured stays), the channel
        entries, and the vector steps (:func:`accel.encoding.encode_vector_table`; of an id above the
        table's highest, word 0, which holds the step's function, is cleared). A board NPU without a
        requantizer (``requant_channels = 0``) takes only an empty table (nothing is written); a table
        with more channels than the board's raises :class:`LinkError`."""
        from accel.encoding import VECTOR_STEP_WORDS, encode_requant_table, encode_vector_table

        info = self.info()
        steps, channels = encode_requant_table(table)
        vector = encode_vector_table(table)
        if not info.requant_channels:
            if steps or channels or vector:
                raise LinkError("the board's NPU has no requantizer (requant_channels = 0): it cannot run a program "
                                "that configures requantization or vector steps")
            return
        if len(table.channels) > info.requant_channels:
            raise LinkError(f"the requantization table has {len(table.channels)} channels, the board's NPU "
                            f"{info.requant_channels}")
        if len(steps) > 2 * commands or len(vector) > VECTOR_STEP_WORDS * commands:
            raise LinkError(f"the requantization table configures a command id beyond the program's {commands}")
        self.write_table(0, [*steps, *[0] * (2 * commands - len(steps))])
        if channels:
            self.write_table(1, channels)
        if vector:
            self.write_table(2, vector)
        for command in range(len(vector) // VECTOR_STEP_WORDS, commands):  # no function: timed only
            self.write_table(2, [0], first=command * VECTOR_STEP_WORDS)

    def write_feeder(self, table: FeederTable, commands: int) -> None:
        """The array's input feeder table (``'Q'`` table 3) for a program of ``commands`` commands: the
        used words of every configured step (:func:`accel.encoding.encode_feeder_table`, the first
        :data:`~accel.encoding.FEEDER_STEP_USED` of each id's :data:`~accel.encoding.FEEDER_STEP_WORDS`),
        and of every other id below ``commands`` word 0 cleared (its enable bit: the command reads its
        input literally, whatever an earlier program configured). A step of an id at or above
        ``commands`` raises :class:`LinkError`."""
        from accel.encoding import FEEDER_STEP_USED, FEEDER_STEP_WORDS, encode_feeder_table

        beyond = sorted(s.command for s in table.steps if s.command >= commands)
        if beyond:
            raise LinkError(f"the feeder table configures command {beyond[0]}, beyond the program's {commands}")
        words = encode_feeder_table(table)
        configured = {s.command for s in table.steps}
        for command in range(commands):
            first = command * FEEDER_STEP_WORDS
            self.write_table(3, words[first:first + FEEDER_STEP_USED] if command in configured else [0], first=first)

    def write_dram(self, addr: int, data: bytes) -> None:
        """``'W'``: ``data`` into the DRAM model at byte ``addr``."""
        self._check_range(addr, len(data))
        for offset in range(0, len(data), CHUNK_BYTES):
            chunk = bytes(data[offset: offset + CHUNK_BYTES])
            self._send(npu_link.OP_WRITE, addr + offset, len(chunk), chunk)
            self._expect(npu_link.OP_WRITE, "write DRAM")

    def read_dram(self, addr: int, n: int) -> bytes:
        """``'R'``: ``n`` bytes of the DRAM model from byte ``addr``."""
        self._check_range(addr, n)
        out = bytearray()
        for offset in range(0, n, CHUNK_BYTES):
            size = min(CHUNK_BYTES, n - offset)
            self._send(npu_link.OP_READ, addr + offset, size)
            self._expect(npu_link.OP_READ, "read DRAM")
            out += self.transport.read(size)
        return bytes(out)

    def start(self) -> None:
        """``'G'``: start the program in program memory (returns at once; :meth:`wait` for the end)."""
        self.transport.write(bytes([npu_link.OP_GO]))
        self._expect(npu_link.OP_GO, "start the NPU")

    def status(self) -> int:
        """``'S'``: the status byte (``rtl.fpga.npu_link.STATUS_*`` bits)."""
        self.transport.write(bytes([npu_link.OP_STATUS]))
        self._expect(npu_link.OP_STATUS, "report its status")
        return self.transport.read(1)[0]

    def wait(self) -> int:
        """Poll ``'S'`` until the NPU is not busy; raise :class:`LinkError` if it stopped with an error
        (or a bus error) or is still busy after ``max_polls`` polls. Returns the status."""
        for _ in range(self.max_polls):
            status = self.status()
            if not status & npu_link.STATUS_BUSY:
                break
            if self.poll_interval:
                time.sleep(self.poll_interval)
        else:
            raise LinkError(f"the NPU is still busy after {self.max_polls} status polls")
        if status & npu_link.STATUS_ERROR:
            raise LinkError("the NPU stopped with an error (it refused the program, or its memories conflicted)")
        if status & npu_link.STATUS_BUS_ERROR:
            raise LinkError("the NPU accessed DRAM outside the board's DRAM model (or read and wrote in one cycle)")
        if not status & npu_link.STATUS_FINISHED:
            raise LinkError(f"the NPU is idle but not finished (status {status:#04x}): was it started?")
        return status

    def read_cycles(self) -> int:
        """``'C'``: the NPU's cycle counter (the last run's total once it finished)."""
        self.transport.write(bytes([npu_link.OP_CYCLES]))
        self._expect(npu_link.OP_CYCLES, "report its cycles")
        return int.from_bytes(self.transport.read(4), "little")

    def read_trace(self, command: int) -> tuple[int, int]:
        """``'T'``: command ``command``'s ``(start, end)`` cycle in the last run."""
        self.transport.write(bytes([npu_link.OP_TRACE]) + command.to_bytes(4, "little"))
        self._expect(npu_link.OP_TRACE, f"report the trace of command {command}")
        raw = self.transport.read(8)
        return int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little")

    def run_program(self, program: Plan | Sequence[Command] | bytes, inputs: Mapping[str, object] | bytes, *,
                    arch: Accelerator | None = None, requant: RequantTable | None = None,
                    feeder: FeederTable | None = None, check: bool = True, trace: bool = True) -> NPURun:
        """Run ``program`` on the board with ``inputs`` and compare it with golden and the simulator.

        ``program`` is a :class:`~mapper.plan.Plan` (its ``arch`` is the design), or commands or an
        encoded image with ``arch`` given. ``inputs`` maps every input tensor of
        :func:`program_tensors` to its bytes (``bytes`` or integer codes, the size of its region), or
        is a whole DRAM image from address 0. ``requant`` is the host's requantization table; when it
        is not given, a plan of a quantized graph (a tensor with quantization parameters) takes
        :func:`rtl.npu.golden.requant_table` of it and anything else an empty table (unit scale).
        ``feeder`` is the array's input feeder table; when it is not given, a plan with a graph on a
        design with the OS dataflow takes :func:`rtl.npu.golden.feeder_table` of it (a step for every
        Compute of a convolution) and anything else an empty table (every input read literally). The
        driver writes the image, the tables (:meth:`write_requant`; :meth:`write_feeder` when the
        design has OS, and so a feeder) and the inputs, starts the run, waits for it, reads the cycle
        counter, every output tensor and (``trace``) every command's start and end. The expectations
        are :func:`rtl.npu.golden.execute` with those tables on the same DRAM image (outputs; for a
        quantized plan what ``sim.execute`` computes) and
        :func:`sim.engine.simulate` (total cycles, trace). With ``check`` any difference raises
        :class:`LinkError`; the returned :class:`NPURun` carries both either way.
        """
        from accel.encoding import FeederTable, RequantTable, decode_program, encode_program
        from accel.hardware import Dataflow
        from mapper.plan import Plan
        from rtl.npu.golden import execute, feeder_table, requant_table
        from sim.engine import simulate

        if requant is None and isinstance(program, Plan) and program.graph is not None and any(
                t.quant is not None for t in program.graph.tensors.values()):
            requant = requant_table(program)
        requant = requant if requant is not None else RequantTable()
        if isinstance(program, Plan):
            arch = arch or program.arch
            commands = tuple(program.commands)
            image = encode_program(commands)
        elif isinstance(program, bytes | bytearray):
            image = bytes(program)
            commands = decode_program(image)
        else:
            commands = tuple(program)
            image = encode_program(commands)
        if arch is None:
            raise LinkError("run_program needs the design (arch=) for a program given as commands or an image")
        has_feeder = Dataflow.OS in arch.array.dataflows
        if feeder is None and has_feeder and isinstance(program, Plan) and program.graph is not None:
            feeder = feeder_table(program)
        feeder = feeder if feeder is not None else FeederTable()
        if feeder.steps and not has_feeder:
            raise LinkError(f"{arch.name!r} has no OS dataflow, so its NPU has no input feeder: it cannot run a "
                            "program that configures feeder steps")
        info = self.info()
        if (info.rows, info.cols) != (arch.array.rows, arch.array.cols):
            raise LinkError(f"the board's NPU has a {info.rows}x{info.cols} array, {arch.name!r} a "
                            f"{arch.array.rows}x{arch.array.cols} one")
        if info.dram_latency != arch.dram.latency_cycles:
            raise LinkError(f"the board's DRAM model answers in {info.dram_latency} cycles, {arch.name!r}'s DRAM in "
                            f"{arch.dram.latency_cycles}: its cycles could not match the simulator's")
        if len(commands) > info.max_commands:
            raise LinkError(f"a program of {len(commands)} commands is more than the board's {info.max_commands}")
        in_regions, out_regions = program_tensors(commands)
        extent = max((a + n for a, n in (*in_regions.values(), *out_regions.values())), default=0)
        if extent > info.dram_bytes:
            raise LinkError(f"the program uses {extent} bytes of DRAM, the board has {info.dram_bytes}")

        dram = bytearray(extent)
        if isinstance(inputs, bytes | bytearray | memoryview):
            dram[:] = bytes(inputs)[:extent].ljust(extent, b"\0")
        else:
            unknown = sorted(set(inputs) - set(in_regions))
            missing = sorted(set(in_regions) - set(inputs))
            if unknown or missing:
                raise LinkError(f"the program's inputs are {', '.join(sorted(in_regions)) or 'none'}"
                                + (f"; missing {', '.join(missing)}" if missing else "")
                                + (f"; unknown {', '.join(unknown)}" if unknown else ""))
            for name, (addr, size) in in_regions.items():
                dram[addr:addr + size] = _codes(name, inputs[name], size)

        self.write_program(image)
        self.write_requant(requant, len(commands))
        if has_feeder:
            self.write_feeder(feeder, len(commands))
        for addr, size in sorted(in_regions.values()):
            if size:
                self.write_dram(addr, bytes(dram[addr:addr + size]))
        self.start()
        self.wait()
        cycles = self.read_cycles()
        outputs = {name: self.read_dram(addr, size) for name, (addr, size) in out_regions.items()}
        board_trace = tuple(self.read_trace(i) for i in range(len(commands))) if trace else ()

        golden = execute(arch, commands, bytes(dram), requant=requant, feeder=feeder).dram
        expected = {name: bytes(golden[addr:addr + size]) for name, (addr, size) in out_regions.items()}
        result = simulate(Plan(arch=arch, graph_name="npu_link", layers=(), commands=commands))
        by_id = {event.command: (event.start, event.end) for event in result.trace}
        run = NPURun(outputs, expected, cycles, result.total_cycles, board_trace,
                     tuple(by_id[i] for i in range(len(commands))))
        if check and run.mismatches():
            raise LinkError("; ".join(run.mismatches()))
        return run

    # -- helpers ---------------------------------------------------------------------------------

    def _send(self, op: int, addr: int, n: int, payload: bytes = b"") -> None:
        self.transport.write(bytes([op]) + addr.to_bytes(4, "little") + n.to_bytes(4, "little") + payload)

    def _check_range(self, addr: int, n: int) -> None:
        size = self.info().dram_bytes
        if addr < 0 or n <= 0 or addr + n > size:
            raise LinkError(f"DRAM bytes [{addr}, {addr + n}) are not within the board's {size}")

    def _expect(self, answer: int, what: str) -> None:
        got = self.transport.read(1)[0]
        if got != answer:
            detail = "refused ('?')" if got == ERROR else f"answered {got:#04x}"
            raise LinkError(f"board {detail} when asked to {what} (expected {chr(answer)!r})")


def fc_layer(arch: Accelerator, m: int = 16, k: int = 32, n: int = 16) -> Plan:
    """The mapper's plan of one fully connected layer ``x (m x k) @ w (k x n)`` (no bias) on ``arch``:
    what ``accel fpga run --design npu`` and the NPU host link's bench run.

    The plan is the mapper's default (its strided DRAM blocks are the NPU's DMA's). A
    :class:`LinkError` says when it has a command the NPU refuses (:func:`rtl.npu.core.refusal`: a
    block whose rows are not whole 4-byte beats, a compute reading an operand through a block, ...)."""
    from workloads.builder import GraphBuilder

    graph = GraphBuilder("fc")
    graph.linear(graph.input("x", (m, k)), n, bias=False, name="fc")
    return _runnable(graph.build(), arch, f"the fc layer {m}x{k} @ {k}x{n}", "--layer")


def conv_layer(arch: Accelerator, c: int = 4, h: int = 6, w: int = 6, o: int = 8) -> Plan:
    """The mapper's plan of one 3x3 convolution with padding 1 (stride 1, no bias) of a ``c x h x w``
    input to ``o`` channels on ``arch``: what ``accel fpga run --design npu --conv`` runs, its computes
    gathering their im2col rows through the array's input feeder (the driver writes
    :func:`rtl.npu.golden.feeder_table` of the plan). A :class:`LinkError` says when it has a command
    the NPU refuses (:func:`rtl.npu.core.refusal`)."""
    from workloads.builder import GraphBuilder

    graph = GraphBuilder("conv")
    graph.conv(graph.input("x", (1, c, h, w)), o, 3, padding=1, bias=False, name="conv")
    return _runnable(graph.build(), arch, f"the 3x3 conv of {c}x{h}x{w} to {o} channels", "--conv")


def _runnable(graph: Graph, arch: Accelerator, what: str, option: str) -> Plan:
    """The mapper's default plan of ``graph`` on ``arch``, or a :class:`LinkError` naming ``what`` and
    the first command the NPU refuses (and the CLI ``option`` to change)."""
    from mapper import map_graph
    from rtl.npu.core import refusal

    plan = map_graph(graph, arch)
    for cmd in plan.commands:
        if (why := refusal(arch, cmd)) is not None:
            raise LinkError(f"{what} on {arch.name}: command {cmd.id} {why}, which the NPU refuses; try another "
                            f"{option}")
    return plan


def random_inputs(commands: Sequence[Command], seed: int = 0, *, low: int = -3, high: int = 4) -> dict[str, bytes]:
    """Random int8 codes in ``[low, high)`` for every input tensor of ``commands`` (small codes keep a
    layer's sums short of the requantizer's saturation, so a wrong product shows in the outputs)."""
    rng = np.random.default_rng(seed)
    regions, _ = program_tensors(commands)
    return {name: (rng.integers(low, high, size) & 0xFF).astype(np.uint8).tobytes()
            for name, (_, size) in sorted(regions.items())}
