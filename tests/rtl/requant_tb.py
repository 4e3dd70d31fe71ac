"""cocotb testbench of :class:`rtl.requant.Requantizer`, run on its Verilog by ``test_requant_cocotb.py``.

Not a pytest module: cocotb imports it inside the simulator. The reference is
:func:`sim.numerics.requantize`; the expected cycles of a burst are :func:`accel.timing.vector_cycles`
of the ``fpga-small`` preset (whose vector unit is this requantizer). This file only packs bits.
"""

from __future__ import annotations

import logging
import random
from collections import deque

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from tb_common import check_start_refuses_twice, start_clock_and_reset

from accel.config import load
from accel.formats import NumberFormat
from accel.timing import vector_cycles
from rtl.cocotb_runner import testbench_manifest, testbench_parameters
from sim.numerics import INT32_MAX, INT32_MIN, quantize_multiplier, requantize

_log = logging.getLogger("cocotb.requant_tb")

CLOCK_PERIOD_NS = 10
MAX_REPORTED = 8
_FIELDS = (("acc", 32), ("multiplier", 32), ("shift", 6))  # then zero_point, low, high (out_format)


class RequantTestbench:
    """Owns the clock and reset, a lane driver, an output monitor, the reference and a scoreboard."""

    def __init__(self, dut: object) -> None:
        self.dut = dut
        self.parameters = testbench_parameters()
        manifest = testbench_manifest()
        if dict(manifest.parameters) != {key: self.parameters[key] for key in manifest.parameters}:
            raise RuntimeError(f"Verilog was built with {manifest.parameters}, not {self.parameters}")
        self.latency: int = manifest.latency
        self.out_format = NumberFormat.parse(self.parameters["out_format"])
        self.mode: str = self.parameters["mode"]
        self.lanes = int(self.parameters["lanes"])
        self.reference_offset = int(self.parameters.get("reference_offset", 0))
        self.rng = random.Random(self.parameters.get("seed", 0))
        self._beats: deque[list[dict[str, int]]] = deque()
        self.expected: deque[list[int]] = deque()
        self.accepted: list[int] = []
        self.emitted: list[int] = []
        self.compared = 0
        self.mismatch_count = 0
        self.mismatches: list[str] = []
        self.ready_probability = 1.0
        self._started = False

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("RequantTestbench.start() may be called only once")
        self._started = True
        await start_clock_and_reset(
            self.dut, period_ns=CLOCK_PERIOD_NS, idle={"i__valid": 0, "i__payload": 0, "o__ready": 1}
        )
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._monitor())

    # -- stimulus ------------------------------------------------------------------------------

    def send(self, lanes: list[dict[str, int]]) -> None:
        """Queue one beat (``lanes`` dicts of acc, multiplier, shift, zero_point, low, high)."""
        assert len(lanes) == self.lanes
        self._beats.append(lanes)
        self.expected.append([
            requantize(lane["acc"], lane["multiplier"], lane["shift"], lane["zero_point"], out_format=self.out_format,
                       mode=self.mode, clamp_min=lane["low"], clamp_max=lane["high"]) + self.reference_offset
            for lane in lanes])

    def random_lane(self) -> dict[str, int]:
        rng, fmt = self.rng, self.out_format
        if rng.random() < 0.8:  # a real scale, as TFLite would compute it
            multiplier, shift = quantize_multiplier(2.0 ** rng.uniform(-24, 4))
        else:
            multiplier, shift = rng.randint(0, INT32_MAX), rng.randint(-31, 30)
        zero_point = rng.randint(fmt.min_int, fmt.max_int)
        low = rng.choice([fmt.min_int, zero_point, rng.randint(fmt.min_int, zero_point)])
        high = rng.choice([fmt.max_int, rng.randint(max(low, zero_point), fmt.max_int)])
        acc = rng.choice([rng.randint(INT32_MIN, INT32_MAX), rng.randint(-(1 << 18), 1 << 18),
                          rng.randint(-(1 << 8), 1 << 8)])
        return {"acc": acc, "multiplier": multiplier, "shift": shift, "zero_point": zero_point, "low": low,
                "high": high}

    def _pack(self, lanes: list[dict[str, int]]) -> int:
        widths = [*_FIELDS, ("zero_point", self.out_format.bits), ("low", self.out_format.bits),
                  ("high", self.out_format.bits)]
        lane_bits = sum(bits for _, bits in widths)
        word = 0
        for index, lane in enumerate(lanes):
            offset = index * lane_bits
            for name, bits in widths:
                word |= (lane[name] & ((1 << bits) - 1)) << offset
                offset += bits
        return word

    def _unpack(self, word: int) -> list[int]:
        fmt, values = self.out_format, []
        for index in range(self.lanes):
            value = (word >> (index * fmt.bits)) & ((1 << fmt.bits) - 1)
            values.append(value - (1 << fmt.bits) if fmt.signed and value > fmt.max_int else value)
        return values

    # -- driver and monitor ----------------------------------------------------------------------

    def _edge(self) -> int:
        return int(get_sim_time("ns") // CLOCK_PERIOD_NS)

    async def _drive(self) -> None:
        while True:
            await FallingEdge(self.dut.clk)
            self.dut.o__ready.value = int(self.rng.random() < self.ready_probability)
            self.dut.i__valid.value = 0
            if not self._beats:
                continue
            self.dut.i__payload.value = self._pack(self._beats[0])
            self.dut.i__valid.value = 1
            await ReadOnly()
            if int(self.dut.i__ready.value):
                self._beats.popleft()
                self.accepted.append(self._edge())

    async def _monitor(self) -> None:
        while True:
            await FallingEdge(self.dut.clk)
            await ReadOnly()
            if int(self.dut.o__valid.value) and int(self.dut.o__ready.value):
                self.emitted.append(self._edge())
                got = self._unpack(self.dut.o__payload.value.to_unsigned())
                expected = self.expected.popleft() if self.expected else None
                self.compared += 1
                if got != expected:
                    self.mismatch_count += 1
                    if len(self.mismatches) < MAX_REPORTED:
                        self.mismatches.append(f"beat {self.compared - 1}: got {got}, expected {expected}")

    async def finish(self, *, timeout_cycles: int = 100000) -> None:
        for _ in range(timeout_cycles):
            if not self._beats and not self.expected:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"{len(self.expected)} results never came")

    def check(self, *, beats: int) -> None:
        assert self.mismatch_count == 0, (
            f"outputs differed from sim.numerics.requantize on {self.mismatch_count} of {self.compared} beats: "
            f"{self.mismatches}")
        assert self.compared == beats, f"compared {self.compared} beats, sent {beats}"


# -- scenarios ---------------------------------------------------------------------------------

@cocotb.test()
async def random_vectors(dut: object) -> None:
    """Random accumulators, real and raw multipliers, all shifts, zero points and bounds."""
    tb = RequantTestbench(dut)
    await tb.start()
    beats = int(tb.parameters.get("count", 2500))
    for _ in range(beats):
        tb.send([tb.random_lane() for _ in range(tb.lanes)])
    await tb.finish()
    tb.check(beats=beats)
    _log.info("%d beats x %d lanes = %d requantizations matched", beats, tb.lanes, beats * tb.lanes)


@cocotb.test()
async def rounding_edge_cases(dut: object) -> None:
    """Exact halves of both signs at every right shift, saturation at both ends, int32 extremes."""
    tb = RequantTestbench(dut)
    await tb.start()
    fmt = tb.out_format
    lanes: list[dict[str, int]] = []

    def lane(acc: int, multiplier: int, shift: int, zero_point: int = 0) -> None:
        if not INT32_MIN <= acc <= INT32_MAX:
            return
        zero_point = max(fmt.min_int, min(fmt.max_int, zero_point))
        lanes.append({"acc": acc, "multiplier": multiplier, "shift": shift, "zero_point": zero_point,
                      "low": fmt.min_int, "high": fmt.max_int})

    for right in range(1, 31):
        for sign in (1, -1):
            for odd in (1, 3, 5, 2 * fmt.max_int + 1):  # (odd / 2) after the shift: an exact half
                lane(sign * (odd << (right - 1)), 1 << 30, 1 - right)  # 0.5 * 2**(1-right) ... * 2
                lane(sign * (odd << (right - 1)) + sign, 1 << 30, 1 - right)  # just beyond the half
    for acc in (INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX):
        for multiplier, shift in ((INT32_MAX, 30), (INT32_MAX, 0), (1 << 30, -31), (0, 0), (1 << 30, 1)):
            lane(acc, multiplier, shift, zero_point=fmt.min_int)
            lane(acc, multiplier, shift, zero_point=fmt.max_int)
    for acc in (10**6, -(10**6)):  # saturation of the output at both ends, and ReLU's bound
        lane(acc, 1 << 30, 0)
    while len(lanes) % tb.lanes:
        lane(0, 0, 0)
    beats = [lanes[i:i + tb.lanes] for i in range(0, len(lanes), tb.lanes)]
    for beat in beats:
        tb.send(beat)
    await tb.finish()
    tb.check(beats=len(beats))


@cocotb.test()
async def burst_cycles_match_the_vector_datasheet(dut: object) -> None:
    """``n`` lanes-full back to back take accel.timing.vector_cycles(fpga-small) cycles exactly."""
    tb = RequantTestbench(dut)
    await tb.start()
    arch = load("fpga-small")
    assert arch.vector.lanes == tb.lanes, f"fpga-small's vector unit has {arch.vector.lanes} lanes, not {tb.lanes}"
    for elements in (tb.lanes, 10 * tb.lanes, 37 * tb.lanes):
        beats = elements // tb.lanes
        start = len(tb.emitted)
        first = len(tb.accepted)
        for _ in range(beats):
            tb.send([tb.random_lane() for _ in range(tb.lanes)])
        await tb.finish()
        measured = tb.emitted[-1] - tb.accepted[first]
        expected = vector_cycles(arch, elements)
        assert measured == expected, f"{elements} elements took {measured} cycles, accel.timing says {expected}"
        assert len(tb.emitted) - start == beats
        for _ in range(3):
            await RisingEdge(dut.clk)
    tb.check(beats=tb.compared)


@cocotb.test()
async def backpressure(dut: object) -> None:
    tb = RequantTestbench(dut)
    await tb.start()
    tb.ready_probability = 0.5
    for _ in range(300):
        tb.send([tb.random_lane() for _ in range(tb.lanes)])
    await tb.finish()
    tb.check(beats=300)


@cocotb.test()
async def start_refuses_to_run_twice(dut: object) -> None:
    await check_start_refuses_twice(RequantTestbench(dut))
