"""cocotb testbench of :class:`rtl.systolic.SystolicArray`, run on its Verilog by ``test_systolic_cocotb.py``.

Not a pytest module: cocotb imports it inside the simulator. The array's size, dataflow, formats
and seed come from the parameters dict the Verilog was built from. The expected outputs are
:func:`sim.numerics.systolic_tile` and the expected cycles :func:`accel.timing.gemm_tile_cycles`
(for a fold after the first, with ``follows`` = the previous fold's stream length, which matters
only with double-buffered weights); this file only packs bits and counts edges.

Cycles are counted in clock edges: a handshake seen (in the read-only phase after a falling edge)
with ``valid`` and ``ready`` high happens on the next rising edge, whose index is the clock period
number. The first fold's measured cycles are ``edge(last result emitted) - edge(first operand
accepted)``, every later fold's ``edge(its last result) - edge(the previous fold's last result)``
(the same thing when folds run back to back without overlapping). Each stream (WS: weights and
inputs) has a driver of its own, so a double-buffered array can take the next fold's weights while
the current fold streams.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from tb_common import check_start_refuses_twice, checked_parameters

from accel.formats import NumberFormat, Overflow
from accel.hardware import Dataflow, SystolicArray
from accel.timing import gemm_tile_cycles
from sim.numerics import systolic_tile

_log = logging.getLogger("cocotb.systolic_tb")

CLOCK_PERIOD_NS = 10
MAX_REPORTED = 8


def _pack(values: list[int], bits: int) -> int:
    """Codes packed from bit 0 upward, ``bits`` each (an ArrayLayout)."""
    word = 0
    for index, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (index * bits)
    return word


def _unpack(word: int, count: int, fmt: NumberFormat) -> list[int]:
    mask = (1 << fmt.bits) - 1
    values = [(word >> (index * fmt.bits)) & mask for index in range(count)]
    if fmt.signed:
        values = [v - (1 << fmt.bits) if v > fmt.max_int else v for v in values]
    return values


@dataclass(frozen=True)
class Beat:
    """One operand beat: which stream, its packed payload, the fold it belongs to, whether it opens it."""

    stream: str
    payload: int
    fold: int
    opens_fold: bool


@dataclass
class Fold:
    """What the scoreboard knows about one fold."""

    cycles_expected: int
    results_expected: int
    first_accepted: int | None = None
    last_emitted: int | None = None
    results_seen: int = 0


@dataclass
class Scoreboard:
    expected: deque = field(default_factory=deque)  # (fold index, expected values)
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)
    mismatch_count: int = 0


class SystolicTestbench:
    """Owns the clock and reset, an operand driver, a monitor of every handshake, the reference
    (``sim.numerics``) and a scoreboard of results and cycles.

    ``reference_offset`` (a parameter, normally 0) is added to every expected value: a fault
    injected on purpose to prove that a wrong golden value fails the test.
    """

    def __init__(self, dut: object) -> None:
        self.dut = dut
        self.parameters = checked_parameters()
        self.rows, self.cols = int(self.parameters["rows"]), int(self.parameters["cols"])
        self.dataflow = Dataflow.parse(self.parameters["dataflow"])
        self.a_format = NumberFormat.parse(self.parameters["a_format"])
        self.b_format = NumberFormat.parse(self.parameters["b_format"])
        self.acc_format = NumberFormat.parse(self.parameters["acc_format"],
                                             overflow=Overflow(self.parameters["overflow"]))
        self.array = SystolicArray(self.rows, self.cols, dataflows=(self.dataflow,), input_format=self.a_format,
                                   weight_format=self.b_format, accumulator_format=self.acc_format,
                                   weight_buffers=int(self.parameters.get("weight_buffers", 1)))
        self.reference_offset = int(self.parameters.get("reference_offset", 0))
        self.rng = random.Random(self.parameters.get("seed", 0))
        self.streams = ("weights", "inputs") if self.dataflow is Dataflow.WS else ("operands",)
        self._beats: dict[str, deque[Beat]] = {name: deque() for name in self.streams}
        self._last_stream = 0  # stream length of the last fold queued

        self.folds: list[Fold] = []
        self.scoreboard = Scoreboard()
        self.valid_probability = 1.0  # < 1: the driver leaves random gaps
        self.ready_probability = 1.0  # < 1: the consumer stalls at random
        self._started = False

    # -- set-up --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the clock, reset for two cycles, then start the driver and the monitor."""
        if self._started:
            raise RuntimeError("SystolicTestbench.start() may be called only once")
        self._started = True
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        for name in self.streams:
            getattr(self.dut, f"{name}__valid").value = 0
            getattr(self.dut, f"{name}__payload").value = 0
        self.dut.outputs__ready.value = 1
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        for name in self.streams:
            cocotb.start_soon(self._drive(name))
        cocotb.start_soon(self._monitor())

    # -- the scenario's side: folds in, expectations out ----------------------------------------

    def send_fold(self, x: np.ndarray, w: np.ndarray) -> None:
        """Queue one fold of ``x (m x k) @ w (k x n)``: WS ``k = rows, n = cols``; OS ``m = rows,
        n = cols``; the other dimension is the stream length."""
        fold = len(self.folds)
        m, k = x.shape
        n = w.shape[1]
        a_bits, b_bits = self.a_format.bits, self.b_format.bits
        if self.dataflow is Dataflow.WS:
            assert (k, n) == (self.rows, self.cols), f"a WS fold is x (m x {self.rows}) @ w ({self.rows} x {self.cols})"
            beats = [Beat("weights", _pack(list(w[i]), b_bits), fold, i == 0) for i in range(k)]
            beats += [Beat("inputs", _pack(list(x[t]), a_bits) | (int(t == m - 1) << (k * a_bits)), fold, False)
                      for t in range(m)]
        else:
            assert (m, n) == (self.rows, self.cols), f"an OS fold is a ({self.rows} x k) @ b (k x {self.cols})"
            beats = [Beat("operands", _pack(list(x[:, s]), a_bits) | (_pack(list(w[s]), b_bits) << (m * a_bits))
                          | (int(s == k - 1) << (m * a_bits + n * b_bits)), fold, s == 0) for s in range(k)]
        tile = systolic_tile(x, w, dataflow=self.dataflow, a_format=self.a_format, b_format=self.b_format,
                             acc_format=self.acc_format)
        results = [list(row) for row in tile] if self.dataflow is Dataflow.WS else [list(tile.flatten())]
        for values in results:
            self.scoreboard.expected.append((fold, [int(v) + self.reference_offset for v in values]))
        stream_length = m if self.dataflow is Dataflow.WS else k
        self.folds.append(Fold(cycles_expected=gemm_tile_cycles(self.array, self.dataflow, m, k, n,
                                                                follows=self._last_stream),
                               results_expected=len(results)))
        self._last_stream = stream_length
        self.queue(beats)

    def queue(self, beats: list[Beat]) -> None:
        """Hand ``beats`` to their streams' drivers, in order per stream."""
        for beat in beats:
            self._beats[beat.stream].append(beat)

    def random_fold(self, stream_length: int) -> tuple[np.ndarray, np.ndarray]:
        (x_rows, x_cols), (w_rows, w_cols) = self.fold_shapes(stream_length)
        a, b = self.a_format, self.b_format
        x = np.array([[self.rng.randint(a.min_int, a.max_int) for _ in range(x_cols)] for _ in range(x_rows)])
        w = np.array([[self.rng.randint(b.min_int, b.max_int) for _ in range(w_cols)] for _ in range(w_rows)])
        return x, w

    def fold_shapes(self, stream_length: int) -> tuple[tuple[int, int], tuple[int, int]]:
        if self.dataflow is Dataflow.WS:
            return (stream_length, self.rows), (self.rows, self.cols)
        return (self.rows, stream_length), (stream_length, self.cols)

    async def finish(self, *, timeout_cycles: int = 20000) -> None:
        """Wait until every queued fold's last result has been emitted."""
        for _ in range(timeout_cycles):
            if not any(self._beats.values()) and all(f.results_seen == f.results_expected for f in self.folds):
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"results still missing after {timeout_cycles} cycles: "
                             f"{[(f.results_seen, f.results_expected) for f in self.folds]}")

    def check(self, *, cycles: bool = True) -> None:
        """Assert bit-exact results, and (``cycles``) each fold's and the whole run's cycle count."""
        board = self.scoreboard
        assert board.mismatch_count == 0, (
            f"outputs differed from sim.numerics.systolic_tile on {board.mismatch_count} of {board.compared} "
            f"result beats: {board.mismatches}")
        assert not board.expected, f"{len(board.expected)} expected result beats never came"
        if cycles:
            ends = [self.folds[0].first_accepted] + [f.last_emitted for f in self.folds]
            measured = [end - begin for begin, end in zip(ends, ends[1:], strict=False)]
            expected = [f.cycles_expected for f in self.folds]
            assert measured == expected, (
                f"fold cycles (first operand accepted to last result emitted) were {measured}, "
                f"accel.timing says {expected}")
            total = self.folds[-1].last_emitted - self.folds[0].first_accepted
            assert total == sum(expected), f"back-to-back folds took {total} cycles, accel.timing says {sum(expected)}"
            _log.info("%dx%d %s, %d weight buffer(s): %d folds, cycles %s (accel.timing %s), total %d",
                      self.rows, self.cols, self.dataflow.value, self.array.weight_buffers, len(self.folds), measured,
                      expected, total)

    # -- driver, monitor, scoreboard ------------------------------------------------------------

    def _edge(self) -> int:
        """The index of the next rising edge (called in the half cycle before it)."""
        return int(get_sim_time("ns") // CLOCK_PERIOD_NS)

    async def _drive(self, name: str) -> None:
        """One beat per cycle on stream ``name`` (or a random gap between beats), held until accepted;
        the first stream's driver also drives random ``ready`` on the result stream."""
        beats = self._beats[name]
        valid, payload, ready = (getattr(self.dut, f"{name}__{signal}") for signal in ("valid", "payload", "ready"))
        pending = False  # a beat is on offer and not yet accepted: it must stay valid
        while True:
            await FallingEdge(self.dut.clk)
            if name == self.streams[0]:
                self.dut.outputs__ready.value = int(self.rng.random() < self.ready_probability)
            valid.value = 0
            if not beats or (not pending and self.rng.random() >= self.valid_probability):
                continue
            beat = beats[0]
            payload.value = beat.payload
            valid.value = 1
            await ReadOnly()
            pending = not int(ready.value)
            if not pending:
                beats.popleft()
                if beat.opens_fold:
                    self.folds[beat.fold].first_accepted = self._edge()

    async def _monitor(self) -> None:
        """Every cycle, in the read-only phase after the falling edge: a result handshake on the
        coming rising edge is compared with the next expected result beat."""
        count = self.rows * self.cols if self.dataflow is Dataflow.OS else self.cols
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if not (int(self.dut.outputs__valid.value) and int(self.dut.outputs__ready.value)):
                continue
            values = _unpack(self.dut.outputs__payload.value.to_unsigned(), count, self.acc_format)
            self._score(values, self._edge())

    def _score(self, values: list[int], edge: int) -> None:
        board = self.scoreboard
        board.compared += 1
        if not board.expected:
            board.mismatch_count += 1
            board.mismatches.append(f"unexpected result {values} on edge {edge}")
            return
        fold_index, expected = board.expected.popleft()
        fold = self.folds[fold_index]
        fold.results_seen += 1
        fold.last_emitted = edge
        if values != expected:
            board.mismatch_count += 1
            if len(board.mismatches) < MAX_REPORTED:
                board.mismatches.append(f"fold {fold_index} beat {fold.results_seen - 1}: got {values}, "
                                        f"expected {expected}")


# -- scenarios ---------------------------------------------------------------------------------

@cocotb.test()
async def random_folds_back_to_back(dut: object) -> None:
    """Random operands, streams of several lengths (1 to 3 x rows), folds back to back: results
    bit-exact, each fold's cycles and the whole run's equal accel.timing."""
    tb = SystolicTestbench(dut)
    await tb.start()
    for stream_length in tb.parameters.get("stream_lengths", [1, 5, 2 * tb.rows, 3]):
        tb.send_fold(*tb.random_fold(stream_length))
    await tb.finish()
    tb.check()


@cocotb.test()
async def extreme_operands(dut: object) -> None:
    """All max, all min, max x min and alternating signs, long streams, back to back."""
    tb = SystolicTestbench(dut)
    await tb.start()
    a, b = tb.a_format, tb.b_format
    stream_length = int(tb.parameters.get("extreme_length", 3 * tb.rows))
    x_shape, w_shape = tb.fold_shapes(stream_length)
    checker_x = np.fromfunction(lambda i, j: np.where((i + j) % 2 == 0, a.max_int, a.min_int), x_shape, dtype=int)
    checker_w = np.fromfunction(lambda i, j: np.where((i + j) % 2 == 0, b.min_int, b.max_int), w_shape, dtype=int)
    cases = [
        (np.full(x_shape, a.max_int), np.full(w_shape, b.max_int)),
        (np.full(x_shape, a.min_int), np.full(w_shape, b.min_int)),
        (np.full(x_shape, a.max_int), np.full(w_shape, b.min_int)),
        (checker_x, checker_w),
        (checker_x, np.full(w_shape, b.min_int)),
    ]
    for x, w in cases:
        tb.send_fold(x.astype(np.int64), w.astype(np.int64))
    await tb.finish()
    tb.check()


@cocotb.test()
async def stalls_on_both_sides(dut: object) -> None:
    """Random gaps from the producer and random back-pressure from the consumer: results stay exact."""
    tb = SystolicTestbench(dut)
    await tb.start()
    tb.valid_probability, tb.ready_probability = 0.7, 0.6
    for stream_length in (4, 1, 2 * tb.rows):
        tb.send_fold(*tb.random_fold(stream_length))
    await tb.finish()
    tb.check(cycles=False)


@cocotb.test()
async def start_refuses_to_run_twice(dut: object) -> None:
    await check_start_refuses_twice(SystolicTestbench(dut))
