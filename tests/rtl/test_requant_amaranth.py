"""Requantizer in Amaranth's simulator: every lane equals sim.numerics.requantize, after its latency."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.formats import INT8, NumberFormat
from rtl.requant import Requantizer
from rtl.verilog import generate
from sim.numerics import INT32_MAX, INT32_MIN, quantize_multiplier, requantize

UINT8 = NumberFormat(8, signed=False)


def random_lane(rng: random.Random, out_format: NumberFormat) -> dict[str, int]:
    multiplier, shift = quantize_multiplier(2.0 ** rng.uniform(-20, 3))
    if rng.random() < 0.1:
        multiplier, shift = rng.randint(0, INT32_MAX), rng.randint(-31, 30)
    zero_point = rng.randint(out_format.min_int, out_format.max_int)
    low = rng.choice([out_format.min_int, zero_point, rng.randint(out_format.min_int, zero_point)])
    high = rng.choice([out_format.max_int, rng.randint(max(low, zero_point), out_format.max_int)])
    acc = rng.choice([rng.randint(INT32_MIN, INT32_MAX), rng.randint(-(1 << 16), 1 << 16), INT32_MIN, INT32_MAX])
    return {"acc": acc, "multiplier": multiplier, "shift": shift, "zero_point": zero_point, "low": low, "high": high}


def reference(lane: dict[str, int], unit: Requantizer) -> int:
    return requantize(lane["acc"], lane["multiplier"], lane["shift"], lane["zero_point"], out_format=unit.out_format,
                      mode=unit.mode, clamp_min=lane["low"], clamp_max=lane["high"])  # type: ignore[arg-type]


def run(unit: Requantizer, beats: list[list[dict[str, int]]], *, ready_every: int = 1) -> tuple[list, list, list]:
    """Drive beats back to back; return (accepted edges, emitted edges, emitted payloads)."""
    accepted, emitted, results = [], [], []

    async def testbench(ctx) -> None:
        cycle, index = 0, 0
        while len(results) < len(beats):
            ctx.set(unit.o.ready, cycle % ready_every == 0)
            ctx.set(unit.i.valid, index < len(beats))
            if index < len(beats):
                ctx.set(unit.i.payload, beats[index])
            if ctx.get(unit.o.valid) and ctx.get(unit.o.ready):
                emitted.append(cycle)
                results.append([int(v) for v in ctx.get(unit.o.payload)])
            if index < len(beats) and ctx.get(unit.i.ready):
                accepted.append(cycle)
                index += 1
            await ctx.tick()
            cycle += 1

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return accepted, emitted, results


@pytest.mark.parametrize("mode", ["double", "single"])
@pytest.mark.parametrize("out_format", [INT8, UINT8], ids=["int8", "uint8"])
def test_random_lanes_match_numerics(mode: str, out_format: NumberFormat) -> None:
    unit = Requantizer(out_format=out_format, mode=mode, lanes=2)
    rng = random.Random(11)
    beats = [[random_lane(rng, out_format) for _ in range(2)] for _ in range(300)]
    accepted, emitted, results = run(unit, beats)
    assert results == [[reference(lane, unit) for lane in beat] for beat in beats]
    assert emitted[0] - accepted[0] == unit.latency == 5
    assert emitted[-1] - accepted[0] == len(beats) - 1 + unit.latency


def test_backpressure_keeps_every_result() -> None:
    unit = Requantizer()
    rng = random.Random(3)
    beats = [[random_lane(rng, INT8)] for _ in range(100)]
    _, _, results = run(unit, beats, ready_every=3)
    assert results == [[reference(beat[0], unit)] for beat in beats]


def test_halves_round_away_in_double_and_up_in_single() -> None:
    lanes = [{"acc": acc, "multiplier": 1 << 30, "shift": -1, "zero_point": 0, "low": -128, "high": 127}
             for acc in (10, -10, 6, -6)]  # 2.5, -2.5, 1.5, -1.5
    _, _, double = run(Requantizer(lanes=4), [lanes])
    _, _, single = run(Requantizer(lanes=4, mode="single"), [lanes])
    assert double == [[3, -3, 2, -2]] and single == [[3, -2, 2, -1]]


def test_manifest_facts_and_refusals() -> None:
    unit = Requantizer(lanes=4)
    assert unit.parameters == {"out_format": "int8", "mode": "double", "lanes": 4}
    assert unit.vector_latency_cycles == 4
    assert "module requant(" in generate(unit, "requant")
    with pytest.raises(ConfigError, match=r"^Requantizer mode must be 'double' or 'single', not 'half'$"):
        Requantizer(mode="half")
    with pytest.raises(ConfigError, match=r"^Requantizer lanes must be a positive integer, not 0$"):
        Requantizer(lanes=0)
