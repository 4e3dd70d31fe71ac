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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from accel.errors import AccelError, ToolError
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

__all__ = ["Transport", "SerialTransport", "HostLinkDriver", "LinkError", "TileInfo", "TileRun"]


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
