"""cocotb testbench of :class:`rtl.nm_compressor.NMCompressor`, run on its Verilog by
``test_nm_compressor_cocotb.py``.

Not a pytest module: cocotb imports it inside the simulator. N, M, the format, the lanes and the
seed come from the parameters dict the Verilog was built from. The expected group words are
:func:`sim.numerics.nm_compress` packed by :func:`sim.numerics.nm_pack_group`; this file only packs
bits and counts edges.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from tb_common import check_start_refuses_twice, checked_parameters, start_clock_and_reset

from accel.formats import NumberFormat
from rtl.cocotb_runner import testbench_manifest
from sim.numerics import nm_compress, nm_index_bits, nm_pack_group

_log = logging.getLogger("cocotb.nm_compressor_tb")

CLOCK_PERIOD_NS = 10
MAX_REPORTED = 8


class CompressorTestbench:
    """Owns the clock and reset, a driver of dense beats, a monitor of compressed beats, the
    reference (``sim.numerics``) and a scoreboard of words and latencies.

    ``reference_offset`` (a parameter, normally 0) is added to every expected word: a fault
    injected on purpose to prove that a wrong golden value fails the test.
    """

    def __init__(self, dut: object) -> None:
        self.dut = dut
        self.parameters = checked_parameters()
        self.n, self.m = int(self.parameters["n"]), int(self.parameters["m"])
        self.lanes = int(self.parameters["lanes"])
        self.value_format = NumberFormat.parse(self.parameters["value_format"])
        self.latency = int(testbench_manifest().latency)
        self.word_bits = self.n * (self.value_format.bits + nm_index_bits(self.m))
        self.reference_offset = int(self.parameters.get("reference_offset", 0))
        self.rng = random.Random(self.parameters.get("seed", 0))
        self.valid_probability = 1.0
        self.ready_probability = 1.0
        self._beats: deque[int] = deque()
        self._expected: deque[tuple[list[int], list[list[int]]]] = deque()
        self._accepted: deque[int] = deque()  # edges that accepted a beat, awaiting its output
        self.compared = 0
        self.latencies: set[int] = set()
        self.mismatches: list[str] = []
        self.mismatch_count = 0
        self._started = False

    async def start(self) -> None:
        """Start the clock, reset for two cycles, then start the driver and the monitor."""
        if self._started:
            raise RuntimeError("CompressorTestbench.start() may be called only once")
        self._started = True
        await start_clock_and_reset(
            self.dut, period_ns=CLOCK_PERIOD_NS, idle={"dense__valid": 0, "dense__payload": 0, "compressed__ready": 1}
        )
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._monitor())

    # -- the scenario's side ------------------------------------------------------------------

    def send(self, groups: list[list[int]]) -> None:
        """Queue ``groups`` (each ``m`` codes), ``lanes`` per beat (the last beat padded with zeros)."""
        groups = list(groups) + [[0] * self.m] * (-len(groups) % self.lanes)
        bits = self.value_format.bits
        for start in range(0, len(groups), self.lanes):
            beat = groups[start:start + self.lanes]
            word = 0
            for position, value in enumerate(v for group in beat for v in group):
                word |= (int(value) & ((1 << bits) - 1)) << (position * bits)
            self._beats.append(word)
            self._expected.append((self._expected_words(beat), beat))

    def _expected_words(self, beat: list[list[int]]) -> list[int]:
        words = []
        for group in beat:
            c = nm_compress(np.array(group, dtype=np.int64)[:, None], self.n, self.m, value_format=self.value_format)
            words.append(nm_pack_group(c.values[0, :, 0], c.indices[0, :, 0], m=self.m,
                                       value_format=self.value_format) + self.reference_offset)
        return words

    def random_groups(self, count: int) -> list[list[int]]:
        fmt = self.value_format
        small = [-2, -1, 0, 1, 2] if fmt.signed else [0, 1, 2]
        return [[self.rng.choice(small) if self.rng.random() < 0.3 else self.rng.randint(fmt.min_int, fmt.max_int)
                 for _ in range(self.m)] for _ in range(count)]

    async def finish(self, *, timeout_cycles: int = 50000) -> None:
        for _ in range(timeout_cycles):
            if not self._beats and not self._expected:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"{len(self._expected)} compressed beats still missing after {timeout_cycles} cycles")

    def check(self, *, latency: bool = True) -> None:
        assert self.mismatch_count == 0, (
            f"compressed words differed from sim.numerics.nm_compress on {self.mismatch_count} of "
            f"{self.compared} beats: {self.mismatches}")
        assert self.compared, "no compressed beat was seen"
        if latency:
            assert self.latencies == {self.latency}, (
                f"beats were emitted {sorted(self.latencies)} edges after they were accepted, the manifest says "
                f"{self.latency}")
        _log.info("%d:%d x %d lanes: %d beats compared", self.n, self.m, self.lanes, self.compared)

    # -- driver, monitor, scoreboard ------------------------------------------------------------

    def _edge(self) -> int:
        return int(get_sim_time("ns") // CLOCK_PERIOD_NS)

    async def _drive(self) -> None:
        pending = False
        while True:
            await FallingEdge(self.dut.clk)
            self.dut.compressed__ready.value = int(self.rng.random() < self.ready_probability)
            self.dut.dense__valid.value = 0
            if not self._beats or (not pending and self.rng.random() >= self.valid_probability):
                continue
            self.dut.dense__payload.value = self._beats[0]
            self.dut.dense__valid.value = 1
            await ReadOnly()
            pending = not int(self.dut.dense__ready.value)
            if not pending:
                self._beats.popleft()
                self._accepted.append(self._edge())

    async def _monitor(self) -> None:
        """Every cycle, in the read-only phase after the falling edge: a handshake on the coming
        rising edge is compared with the next expected beat; its latency is that edge minus the
        accepting one (as :mod:`rtl.systolic` counts: one register, latency 1)."""
        mask = (1 << self.word_bits) - 1
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if not (int(self.dut.compressed__valid.value) and int(self.dut.compressed__ready.value)):
                continue
            raw = self.dut.compressed__payload.value.to_unsigned()
            self._score([(raw >> (lane * self.word_bits)) & mask for lane in range(self.lanes)], self._edge())

    def _score(self, words: list[int], edge: int) -> None:
        self.compared += 1
        if not self._expected:
            self.mismatch_count += 1
            self.mismatches.append(f"unexpected beat {words}")
            return
        expected, groups = self._expected.popleft()
        self.latencies.add(edge - self._accepted.popleft())
        if words != expected:
            self.mismatch_count += 1
            if len(self.mismatches) < MAX_REPORTED:
                self.mismatches.append(f"groups {groups}: got {[hex(w) for w in words]}, "
                                       f"expected {[hex(w) for w in expected]}")


# -- scenarios ---------------------------------------------------------------------------------

@cocotb.test()
async def random_groups_every_cycle(dut: object) -> None:
    """Random groups (many small values, so ties are common), one beat per cycle: bit-exact words,
    each leaving exactly the manifest's latency after it was accepted."""
    tb = CompressorTestbench(dut)
    await tb.start()
    tb.send(tb.random_groups(int(tb.parameters.get("random_groups", 400))))
    await tb.finish()
    tb.check()


@cocotb.test()
async def every_order_and_tie_of_a_small_alphabet(dut: object) -> None:
    """Every group over {-2..2} (or {0, 1, 2} unsigned) when there are at most 5**m of them (so
    every ranking, every tie and every index pattern), plus the extremes of the format."""
    tb = CompressorTestbench(dut)
    await tb.start()
    fmt = tb.value_format
    alphabet = [-2, -1, 0, 1, 2] if fmt.signed else [0, 1, 2]
    if len(alphabet) ** tb.m <= 5000:
        tb.send([list(group) for group in itertools.product(alphabet, repeat=tb.m)])
    extremes = [fmt.min_int, fmt.max_int, fmt.min_int + 1, -fmt.max_int if fmt.signed else 0, 0]
    tb.send([[extremes[(i + j) % len(extremes)] for j in range(tb.m)] for i in range(len(extremes))])
    tb.send([[fmt.min_int] * tb.m, [fmt.max_int] * tb.m, [0] * tb.m])
    await tb.finish()
    tb.check()


@cocotb.test()
async def stalls_on_both_sides(dut: object) -> None:
    """Random gaps from the producer and random back-pressure from the consumer: words stay exact."""
    tb = CompressorTestbench(dut)
    await tb.start()
    tb.valid_probability, tb.ready_probability = 0.6, 0.5
    tb.send(tb.random_groups(200))
    await tb.finish()
    tb.check(latency=False)


@cocotb.test()
async def start_refuses_to_run_twice(dut: object) -> None:
    await check_start_refuses_twice(CompressorTestbench(dut))
