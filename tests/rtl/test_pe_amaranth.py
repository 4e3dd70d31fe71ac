"""MacPE in Amaranth's own simulator (fast, no external tools), its contract and its Verilog manifest."""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path

import pytest
from amaranth.hdl import Shape, signed
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow
from rtl.pe import MacPE
from rtl.verilog import generate, read_manifest, write
from sim.numerics import mac

INT20_SAT = NumberFormat(20, overflow=Overflow.SATURATE)
UINT8 = NumberFormat(8, signed=False)


def simulate(pe: MacPE, beats: list[tuple[int, int, bool, bool]]) -> list[tuple[int, int]]:
    """Drive one (a, b, valid, clear) beat per cycle; return (acc seen, acc expected) per cycle.

    The expectation uses sim.numerics.mac and the documented latency: ``acc`` after ``n`` ticks
    reflects the beats presented before tick ``n - latency + 1``.
    """
    observed: list[tuple[int, int]] = []

    async def testbench(ctx) -> None:
        expected = 0
        in_flight: deque[tuple[int, int, bool, bool]] = deque()
        for beat in [*beats, *[(0, 0, False, False)] * pe.latency]:
            a, b, valid, clear = beat
            ctx.set(pe.a, a)
            ctx.set(pe.b, b)
            ctx.set(pe.valid, valid)
            ctx.set(pe.clear, clear)
            in_flight.append(beat)
            await ctx.tick()
            if len(in_flight) >= pe.latency:
                a, b, valid, clear = in_flight.popleft()
                base = 0 if clear else expected
                expected = mac(base, a, b, a_format=pe.a_format, b_format=pe.b_format,
                               acc_format=pe.acc_format) if valid else base
            observed.append((ctx.get(pe.acc), expected))

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return observed


def assert_matches(observed: list[tuple[int, int]]) -> None:
    bad = [(cycle, got, want) for cycle, (got, want) in enumerate(observed) if got != want]
    assert not bad, f"acc differed from sim.numerics.mac on {len(bad)} cycles, first: {bad[:5]}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_signature_is_the_contract() -> None:
    pe = MacPE()
    members = dict(pe.signature.members)
    assert members["a"].shape == signed(8) and members["b"].shape == signed(8)
    assert members["acc"].shape == signed(32) and members["acc"].flow.name == "Out"
    assert Shape.cast(members["valid"].shape).width == 1 and Shape.cast(members["clear"].shape).width == 1
    assert pe.latency == 2
    assert pe.parameters == {"a_format": "int8", "b_format": "int8", "acc_format": "int32", "overflow": "wrap"}


def test_one_product_appears_after_the_latency() -> None:
    observed = simulate(MacPE(), [(-128, -128, True, False)])
    assert [got for got, _ in observed] == [0, 16384, 16384]


def test_random_beats_match_the_reference() -> None:
    rng = random.Random(1)
    beats = [(rng.randint(-128, 127), rng.randint(-128, 127), rng.random() < 0.9, rng.random() < 0.05)
             for _ in range(500)]
    assert_matches(simulate(MacPE(), beats))


@pytest.mark.parametrize("acc_format", [NumberFormat(20, overflow=Overflow.WRAP), INT20_SAT],
                         ids=["wrap", "saturate"])
def test_narrow_accumulator_overflows_as_its_format_says(acc_format: NumberFormat) -> None:
    up = [(-128, -128, True, index == 0) for index in range(40)]  # 40 * 16384 > 2**19
    down = [(-128, 127, True, index == 0) for index in range(40)]
    observed = simulate(MacPE(acc_format=acc_format), up + down)
    assert_matches(observed)
    seen = {got for got, _ in observed}
    if acc_format.overflow is Overflow.SATURATE:
        assert {acc_format.max_int, acc_format.min_int} <= seen
    else:
        assert any(got < 0 for got, _ in observed[:40])  # wrapped while adding positives


def test_unsigned_operands() -> None:
    rng = random.Random(2)
    pe = MacPE(a_format=UINT8, b_format=UINT8, acc_format=NumberFormat(18, signed=False, overflow=Overflow.WRAP))
    beats = [(rng.randint(0, 255), rng.randint(0, 255), True, rng.random() < 0.02) for _ in range(200)]
    assert_matches(simulate(pe, beats))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a_format": "int8"}, r"^Operand a format must be a NumberFormat, not 'int8'$"),
    ({"acc_format": NumberFormat(12)},
     r"^Accumulator format must be at least 16 bits wide to hold a int8 x int8 product, not 12$"),
    ({"acc_format": NumberFormat(32, signed=False)},
     r"^Accumulator format must be signed when an operand is signed, not uint32$"),
    ({"a_format": NumberFormat.parse("q1.6"), "acc_format": INT32},
     r"^Accumulator format must have 6 fractional bits \(those of a q1\.6 x int8 product\), not 0$"),
])
def test_bad_formats_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MacPE(**kwargs)


def test_verilog_and_manifest(tmp_path: Path) -> None:
    pe = MacPE(a_format=INT8, b_format=UINT8, acc_format=INT32)
    path = write(pe, "mac_pe_mixed", tmp_path)
    assert path == tmp_path / "mac_pe_mixed.v"
    assert path.read_text() == generate(pe, "mac_pe_mixed")
    assert "module mac_pe_mixed(" in path.read_text()
    manifest = read_manifest(path)
    assert [(p.name, p.direction, p.width, p.signed) for p in manifest.ports] == [
        ("clk", "input", 1, False), ("rst", "input", 1, False),
        ("a", "input", 8, True), ("b", "input", 8, False),
        ("valid", "input", 1, False), ("clear", "input", 1, False), ("acc", "output", 32, True),
    ]
    assert manifest.latency == 2 and manifest.component == "rtl.pe.MacPE"
    assert manifest.parameters == {"a_format": "int8", "b_format": "uint8", "acc_format": "int32",
                                   "overflow": "wrap"}


def test_verilog_module_name_must_be_an_identifier() -> None:
    pe = MacPE()
    with pytest.raises(ConfigError, match=r"^Module name must be a Verilog identifier like 'mac_pe', not 'mac-pe'$"):
        generate(pe, "mac-pe")
    assert "module mac_pe(" in generate(pe, "mac_pe")
