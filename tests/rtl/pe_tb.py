"""cocotb testbench of :class:`rtl.pe.MacPE`, run on its generated Verilog by ``test_pe_cocotb.py``.

Not a pytest module (no ``test_`` prefix): cocotb imports it inside the simulator. The design's
formats, seed and operation count come from the parameters dict the pytest side built the Verilog
with (:func:`rtl.cocotb_runner.testbench_parameters`); its latency comes from the manifest.

The reference is :func:`sim.numerics.mac`; this file only decides *when* an operand pair takes
effect (the pipeline latency and the ``valid``/``clear`` protocol), never *what* it computes.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from tb_common import check_start_refuses_twice

from accel.formats import NumberFormat, Overflow
from rtl.cocotb_runner import testbench_manifest, testbench_parameters
from sim.numerics import mac

_log = logging.getLogger("cocotb.pe_tb")

CLOCK_PERIOD_NS = 10
MAX_REPORTED_MISMATCHES = 10


@dataclass(frozen=True)
class Beat:
    """What the PE's inputs held at one rising edge."""

    a: int
    b: int
    valid: bool
    clear: bool


class MacPETestbench:
    """Owns the PE's clock and reset, an input driver, an input/output monitor, the reference
    model (``sim.numerics.mac``) and a scoreboard that compares ``acc`` on every cycle.

    ``reference_offset`` (a parameter, normally 0) is added to every expected value: a fault
    injected on purpose to prove that a wrong golden value makes the test fail.
    """

    def __init__(self, dut: object) -> None:
        self.dut = dut
        self.parameters = testbench_parameters()
        self.manifest = testbench_manifest()
        self.latency: int = self.manifest.latency
        self.a_format = NumberFormat.parse(self.parameters["a_format"])
        self.b_format = NumberFormat.parse(self.parameters["b_format"])
        self.acc_format = NumberFormat.parse(self.parameters["acc_format"],
                                             overflow=Overflow(self.parameters["overflow"]))
        if dict(self.manifest.parameters) != {key: self.parameters[key] for key in self.manifest.parameters}:
            raise RuntimeError(f"Verilog was built with {self.manifest.parameters}, "
                               f"but the testbench was given {self.parameters}")
        self.reference_offset: int = self.parameters.get("reference_offset", 0)
        self.rng = random.Random(self.parameters.get("seed", 0))

        self.model_acc = 0  # the reference accumulator
        self._in_flight: deque[Beat] = deque()  # sampled beats whose effect is not yet on acc
        self.cycles_checked = 0
        self.beats_applied = 0
        self.mismatch_count = 0
        self.mismatches: list[str] = []
        self._started = False

    # -- set-up --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the clock, reset the PE for two cycles, then start checking every cycle."""
        if self._started:
            raise RuntimeError("MacPETestbench.start() may be called only once")
        self._started = True
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        self._drive(0, 0, valid=False, clear=False)
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        cocotb.start_soon(self._monitor())

    # -- driver --------------------------------------------------------------------------------

    async def send(self, a: int, b: int, *, clear: bool = False) -> None:
        """Present one operand pair for one cycle."""
        await FallingEdge(self.dut.clk)
        self._drive(a, b, valid=True, clear=clear)

    async def idle(self, cycles: int = 1, *, clear: bool = False) -> None:
        """Present no operands (random data on ``a``/``b``, ``valid`` low) for ``cycles`` cycles."""
        for _ in range(cycles):
            await FallingEdge(self.dut.clk)
            self._drive(self._random(self.a_format), self._random(self.b_format), valid=False, clear=clear)

    async def drain(self) -> None:
        """Idle until every operand pair sent so far has been checked on ``acc``."""
        await self.idle(self.latency + 1)

    def _drive(self, a: int, b: int, *, valid: bool, clear: bool) -> None:
        self.dut.a.value = a
        self.dut.b.value = b
        self.dut.valid.value = int(valid)
        self.dut.clear.value = int(clear)

    # -- monitor, model and scoreboard ---------------------------------------------------------

    async def _monitor(self) -> None:
        """On every rising edge: sample the inputs, retire the beat whose effect is now due, and
        compare ``acc`` with the model. ``acc`` after edge ``n`` reflects beats sampled at edges
        up to ``n - (latency - 1)``."""
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            self._in_flight.append(Beat(
                a=self.dut.a.value.to_signed() if self.a_format.signed else self.dut.a.value.to_unsigned(),
                b=self.dut.b.value.to_signed() if self.b_format.signed else self.dut.b.value.to_unsigned(),
                valid=bool(self.dut.valid.value),
                clear=bool(self.dut.clear.value),
            ))
            if len(self._in_flight) >= self.latency:
                self._apply(self._in_flight.popleft())
            self._compare()

    def _apply(self, beat: Beat) -> None:
        base = 0 if beat.clear else self.model_acc
        if beat.valid:
            self.model_acc = mac(base, beat.a, beat.b, a_format=self.a_format, b_format=self.b_format,
                                 acc_format=self.acc_format)
            self.beats_applied += 1
        else:
            self.model_acc = base

    def _compare(self) -> None:
        value = self.dut.acc.value
        got = value.to_signed() if self.acc_format.signed else value.to_unsigned()
        expected = self.model_acc + self.reference_offset
        self.cycles_checked += 1
        if got != expected:
            self.mismatch_count += 1
            if len(self.mismatches) < MAX_REPORTED_MISMATCHES:
                self.mismatches.append(f"cycle {self.cycles_checked}: acc={got}, expected {expected}")

    def check(self, *, beats: int) -> None:
        """Assert that exactly ``beats`` operand pairs were applied and ``acc`` never differed."""
        assert self.mismatch_count == 0, (
            f"acc differed from sim.numerics.mac on {self.mismatch_count} of {self.cycles_checked} "
            f"cycles: {self.mismatches}"
        )
        assert self.beats_applied == beats, f"applied {self.beats_applied} operand pairs, sent {beats}"
        _log.info("acc matched on %d cycles (%d operand pairs)", self.cycles_checked, beats)

    def _random(self, fmt: NumberFormat) -> int:
        return self.rng.randint(fmt.min_int, fmt.max_int)

    def random_operands(self) -> tuple[int, int]:
        return self._random(self.a_format), self._random(self.b_format)


# -- scenarios ---------------------------------------------------------------------------------

@cocotb.test()
async def random_operands(dut: object) -> None:
    """Random operand pairs with random bubbles and the odd clear, checked every cycle."""
    tb = MacPETestbench(dut)
    await tb.start()
    beats = 0
    for _ in range(tb.parameters.get("count", 2000)):
        roll = tb.rng.random()
        if roll < 0.1:
            await tb.idle(clear=roll < 0.02)
        else:
            await tb.send(*tb.random_operands(), clear=roll > 0.97)
            beats += 1
    await tb.drain()
    tb.check(beats=beats)


@cocotb.test()
async def extreme_operands(dut: object) -> None:
    """Runs of the largest products of each sign, then alternating signs, back to back."""
    tb = MacPETestbench(dut)
    await tb.start()
    a, b = tb.a_format, tb.b_format
    corners = [(a.max_int, b.max_int), (a.min_int, b.min_int), (a.min_int, b.max_int),
               (a.max_int, b.min_int), (0, b.min_int), (a.min_int, 0)]
    beats = 0
    for pair in corners:
        for index in range(40):
            await tb.send(*pair, clear=index == 0)
            beats += 1
    for index in range(200):  # alternating signs: +max*max, min*max, ...
        await tb.send(*(corners[0] if index % 2 else corners[2]))
        beats += 1
    for index in range(200):
        await tb.send(*(corners[1] if index % 2 else corners[3]))
        beats += 1
    await tb.drain()
    tb.check(beats=beats)


@cocotb.test()
async def accumulator_overflow(dut: object) -> None:
    """Accumulate the largest product until the accumulator passes its maximum (and wraps or
    saturates), then the most negative one until it passes its minimum."""
    tb = MacPETestbench(dut)
    await tb.start()
    a, b, acc = tb.a_format, tb.b_format, tb.acc_format
    largest = a.min_int * b.min_int if a.signed and b.signed else a.max_int * b.max_int
    most_negative = min(a.min_int * b.max_int, a.max_int * b.min_int)
    up = (a.min_int, b.min_int) if a.signed and b.signed else (a.max_int, b.max_int)
    down = (a.min_int, b.max_int) if a.min_int * b.max_int == most_negative else (a.max_int, b.min_int)
    steps_up = acc.max_int // largest + 3
    beats = 0
    for index in range(steps_up):  # past the maximum
        await tb.send(*up, clear=index == 0)
        beats += 1
    for _ in range(8):  # from the top (saturated) or the bottom (wrapped) downwards
        await tb.send(*down)
        beats += 1
    if most_negative < 0:
        for index in range(abs(acc.min_int) // abs(most_negative) + 3):  # past the minimum
            await tb.send(*down, clear=index == 0)
            beats += 1
    await tb.drain()
    tb.check(beats=beats)


@cocotb.test()
async def clear_restarts(dut: object) -> None:
    """``clear`` with and without ``valid``, on consecutive cycles, and after bubbles."""
    tb = MacPETestbench(dut)
    await tb.start()
    beats = 0
    for _ in range(20):
        for _ in range(tb.rng.randint(1, 6)):
            await tb.send(*tb.random_operands())
            beats += 1
        pattern = tb.rng.choice(["clear_valid", "clear_idle", "double_clear", "clear_bubble"])
        if pattern == "clear_valid":
            await tb.send(*tb.random_operands(), clear=True)
            beats += 1
        elif pattern == "clear_idle":
            await tb.idle(clear=True)
        elif pattern == "double_clear":
            await tb.send(*tb.random_operands(), clear=True)
            await tb.send(*tb.random_operands(), clear=True)
            beats += 2
        else:
            await tb.idle(clear=True)
            await tb.idle(3)
    await tb.drain()
    tb.check(beats=beats)


@cocotb.test()
async def start_refuses_to_run_twice(dut: object) -> None:
    await check_start_refuses_twice(MacPETestbench(dut))
