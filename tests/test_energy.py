"""The energy datasheet: the default technology table, preset overrides, and energy of single commands."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest

import accel
from accel import config
from accel.commands import Buffer, Compute, Load, Store, Vector
from accel.energy import (
    COMPONENTS,
    EnergyTable,
    add_pj,
    command_energy_pj,
    default_table,
    load_table,
    mac_pj,
    multiply_pj,
    sram_pj_per_byte,
    static_power_mw,
    table_to_dict,
)
from accel.errors import ConfigError
from accel.hardware import DMA, DRAM, Accelerator, Dataflow, Memory, SystolicArray, VectorUnit

PRESETS = ("eyeriss", "fpga-small", "gemmini", "tpu-v1")

# Round numbers so that every expected energy below can be checked by hand: single-point curves are
# constants, so a MAC is 0.2 + 0.1 pJ and every SRAM byte costs 8 pJ / 8 B = 1 pJ.
ROUND = EnergyTable(
    multiply_pj_by_bits={8: 0.2},
    add_pj_by_bits={32: 0.1},
    array_hop_pj_per_byte=0.05,
    sram_read_pj_by_size_bytes={8192: 8.0},
    sram_reference_word_bits=64,
    vector_op_pj=0.5,
    dma_pj_per_byte=0.25,
    array_static_mw_per_pe=0.01,
    sram_static_mw_per_kib=0.5,
    vector_static_mw_per_lane=0.1,
    dma_static_mw_per_channel=2.0,
)


@pytest.fixture
def tiny() -> Accelerator:
    """A 4x4 int8 array, 4-byte scratchpad words, 16-byte accumulator words, 16-byte DMA bursts."""
    return Accelerator(
        name="tiny", clock_hz=100e6,
        array=SystolicArray(rows=4, cols=4, dataflows=(Dataflow.WS, Dataflow.OS, Dataflow.IS)),
        scratchpad=Memory(size_bytes=8192, banks=2, word_bytes=4),
        accumulator=Memory(size_bytes=4096, banks=1, word_bytes=16),
        dram=DRAM(bandwidth_bytes_per_cycle=4.0, energy_pj_per_byte=10.0),
        dma=DMA(channels=1, bandwidth_bytes_per_cycle=4.0, burst_bytes=16),
        vector=VectorUnit(lanes=4),
        energy=ROUND,
    )


# -- the default table ---------------------------------------------------------------------------

def test_default_table_is_the_cited_45nm_table_read_once():
    table = default_table()
    assert table is default_table()
    assert table.multiply_pj_by_bits == ((8, 0.2), (32, 3.1))  # Horowitz, ISSCC 2014
    assert table.add_pj_by_bits == ((8, 0.03), (32, 0.1))
    assert table.sram_read_pj_by_size_bytes == ((8192, 10.0), (32768, 20.0), (1048576, 100.0))
    assert table.sram_reference_word_bits == 64
    assert load_table(Path(accel.__file__).parent / "tech" / "default_45nm.toml") == table


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_carries_the_default_table_and_round_trips(preset):
    arch = config.load(preset)
    assert arch.energy is default_table()
    assert "[energy]" not in config.dumps(arch)
    assert config.loads(config.dumps(arch)) == arch


def test_interpolation_hits_the_published_points_and_follows_a_power_law_between():
    table = default_table()
    assert multiply_pj(table, 8, 8) == pytest.approx(0.2)
    assert multiply_pj(table, 32, 32) == pytest.approx(3.1)
    exponent = math.log(3.1 / 0.2) / math.log(4)
    assert multiply_pj(table, 16, 16) == pytest.approx(0.2 * 2**exponent)
    assert multiply_pj(table, 8, 32) == pytest.approx(multiply_pj(table, 16, 16))  # sqrt(8 * 32) = 16
    assert multiply_pj(table, 4, 4) == pytest.approx(0.2 * 0.5**exponent)  # extrapolated below 8 bit
    assert add_pj(table, 32) == pytest.approx(0.1)
    # SRAM per byte at a 64-bit word, charged at the size of one bank.
    assert sram_pj_per_byte(table, Memory(size_bytes=8192)) == pytest.approx(10 / 8)
    assert sram_pj_per_byte(table, Memory(size_bytes=4 * 32768, banks=4)) == pytest.approx(20 / 8)
    between = 20 * 2 ** (math.log(5) / math.log(32)) / 8  # 64 KiB, between 32 KB and 1 MB
    assert sram_pj_per_byte(table, Memory(size_bytes=65536)) == pytest.approx(between)


def test_mac_energy_of_the_presets():
    assert mac_pj(config.load("gemmini")) == pytest.approx(0.2 + 0.1)  # int8 x int8 -> int32
    eyeriss = mac_pj(config.load("eyeriss"))  # int16 x int16 -> int32
    assert eyeriss == pytest.approx(0.2 * 2 ** (math.log(15.5) / math.log(4)) + 0.1)


# -- preset overrides and errors ----------------------------------------------------------------

GEMMINI = config.dumps(config.load("gemmini"))


def test_an_energy_section_overrides_one_field_of_the_default():
    arch = config.loads(GEMMINI + "\n[energy]\nvector_op_pj = 0.5\n")
    assert arch.energy.vector_op_pj == 0.5
    assert table_to_dict(arch.energy, only_diff_from=default_table()) == {"vector_op_pj": 0.5}
    assert config.dumps(arch).endswith("\n[energy]\nvector_op_pj = 0.5\n")
    assert config.loads(config.dumps(arch)) == arch


def test_a_curve_overrides_as_a_toml_table():
    arch = config.loads(GEMMINI + "\n[energy]\nmultiply_pj_by_bits = { 4 = 0.06, 8 = 0.2 }\n")
    assert arch.energy.multiply_pj_by_bits == ((4, 0.06), (8, 0.2))
    assert arch.energy.add_pj_by_bits == default_table().add_pj_by_bits
    assert config.loads(config.dumps(arch)) == arch


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("vector_op = 0.5",
         r"^bad\.toml: unknown field energy\.vector_op \(did you mean vector_op_pj\? expected one of "
         r"multiply_pj_by_bits, add_pj_by_bits, "
         r".*, dma_static_mw_per_channel\)$"),
        ("vector_op_pj = -1",
         r"^bad\.toml: energy\.vector_op_pj must be a non-negative number, not -1$"),
        ('dma_pj_per_byte = "cheap"',
         r"^bad\.toml: energy\.dma_pj_per_byte must be a non-negative number, not 'cheap'$"),
        ("add_pj_by_bits = { 8 = 0.0 }",
         r"^bad\.toml: energy\.add_pj_by_bits must map positive integers to positive numbers, such as "
         r"\{ 8 = 0\.2, 32 = 3\.1 \}, not \{'8': 0\.0\}$"),
        ("sram_reference_word_bits = 12",
         r"^bad\.toml: energy\.sram_reference_word_bits must be a positive multiple of 8, not 12$"),
        ("vector_op_pj = -1\nsram_static_mw_per_kib = -2",
         r"^bad\.toml: energy\.vector_op_pj must be a non-negative number, not -1\n"
         r"bad\.toml: energy\.sram_static_mw_per_kib must be a non-negative number, not -2$"),
    ],
    ids=["unknown-field", "negative", "wrong-type", "zero-in-curve", "odd-word", "every-problem"],
)
def test_bad_energy_fields_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        config.loads(GEMMINI + f"\n[energy]\n{section}\n", source="bad.toml")


def test_the_table_validates_on_construction():
    with pytest.raises(ConfigError, match=r"^array_hop_pj_per_byte must be a non-negative number, not nan$"):
        EnergyTable(**{**table_to_dict(ROUND), "array_hop_pj_per_byte": float("nan")})
    with pytest.raises(ConfigError, match=r"^energy must be an EnergyTable, not 3$"):
        Accelerator(name="x", clock_hz=1e9, array=SystolicArray(rows=2, cols=2), scratchpad=Memory(size_bytes=64),
                    accumulator=Memory(size_bytes=64), dram=DRAM(bandwidth_bytes_per_cycle=1.0), energy=3)


# -- energy of single commands, by hand ------------------------------------------------------------

def test_a_load_costs_dram_and_bus_in_whole_bursts_and_the_buffer_in_whole_words(tiny):
    load = Load(id=0, layer="l", tensor="t", size_bytes=100)  # 7 bursts of 16 B = 112 B; 25 words of 4 B
    assert command_energy_pj(tiny, load) == pytest.approx({"dram": 112 * 10.0, "dma": 112 * 0.25,
                                                           "scratchpad": 100 * 1.0})


def test_a_store_reads_its_buffer(tiny):
    store = Store(id=0, layer="l", tensor="t", size_bytes=10, buffer=Buffer.ACCUMULATOR)  # one 16 B word
    assert command_energy_pj(tiny, store) == pytest.approx({"dram": 16 * 10.0, "dma": 16 * 0.25,
                                                            "accumulator": 16 * 1.0})


@pytest.mark.parametrize(
    ("dataflow", "accumulate", "expected"),
    [
        # 8x8 @ 8x8 = 512 MACs on 4x4: MAC 0.3 pJ; hops 0.05 pJ per byte of the two moving operands.
        # WS: inputs 64 B x ceil(8/4) + weights 64 B; psums: 2 updates of 64 x 4 B, the first a write only.
        (Dataflow.WS, False, {"array": 512 * (0.3 + 5 * 0.05), "scratchpad": 128 + 64, "accumulator": 512 + 256}),
        (Dataflow.WS, True, {"array": 512 * (0.3 + 5 * 0.05), "scratchpad": 128 + 64,
                             "accumulator": 512 + 512}),
        # OS: inputs 64 B x ceil(8/4) + weights 64 B x ceil(8/4); each output written once.
        (Dataflow.OS, False, {"array": 512 * (0.3 + 2 * 0.05), "scratchpad": 128 + 128, "accumulator": 256}),
        # IS: inputs 64 B once + weights 64 B x ceil(8/4); psums as WS.
        (Dataflow.IS, False, {"array": 512 * (0.3 + 5 * 0.05), "scratchpad": 64 + 128, "accumulator": 512 + 256}),
    ],
    ids=["ws", "ws-accumulate", "os", "is"],
)
def test_a_compute_charges_macs_operand_reads_and_partial_sums(tiny, dataflow, accumulate, expected):
    compute = Compute(id=0, layer="l", m=8, k=8, n=8, dataflow=dataflow, accumulate=accumulate)
    assert command_energy_pj(tiny, compute) == pytest.approx(expected)
    batched = Compute(id=0, layer="l", m=8, k=8, n=8, dataflow=dataflow, accumulate=accumulate, batch=3)
    assert command_energy_pj(tiny, batched) == pytest.approx({c: 3 * v for c, v in expected.items()})


def test_a_vector_op_reads_and_writes_each_element(tiny):
    vector = Vector(id=0, layer="l", op="relu", elements=100)
    assert command_energy_pj(tiny, vector) == pytest.approx({"vector": 50.0, "scratchpad": 200.0})


def test_components_are_the_documented_ones(tiny):
    commands = [Load(id=0, layer="l", tensor="t", size_bytes=64),
                Compute(id=1, layer="l", m=4, k=4, n=4, dataflow=Dataflow.WS),
                Vector(id=2, layer="l", op="add", elements=4)]
    for command in commands:
        assert set(command_energy_pj(tiny, command)) <= set(COMPONENTS)
    with pytest.raises(TypeError, match=r"^unknown command"):
        command_energy_pj(tiny, object())


def test_static_power_per_unit(tiny):
    assert static_power_mw(tiny) == pytest.approx({
        "array": 16 * 0.01, "scratchpad": 8 * 0.5, "accumulator": 4 * 0.5, "dma": 2.0, "vector": 4 * 0.1})


def test_derived_figures_memoised_in_the_table_are_the_computed_ones():
    """``mac_pj`` and ``sram_pj_per_byte`` keep what they derive in the (frozen) table, keyed by every
    other number they read: the memoised figure is the one computed afresh, for memories and formats
    that differ in those numbers, and a memory that differs only in what the figure does not read
    (ports, word width) gets the same one."""
    from accel.energy import _interpolate, mac_pj, sram_pj_per_byte

    arch = config.load("gemmini")
    table = arch.energy
    for memory in (Memory(1 << 16), Memory(1 << 18, banks=4), Memory(1 << 18, banks=4, ports=1, word_bytes=64),
                   Memory(3 << 14, banks=3)):
        fresh = _interpolate(table.sram_read_pj_by_size_bytes, memory.size_bytes / memory.banks) \
            / (table.sram_reference_word_bits // 8)
        assert sram_pj_per_byte(table, memory) == fresh
        assert sram_pj_per_byte(table, memory) == fresh  # the second time from the memo
    for bits in ((8, 8, 32), (4, 8, 16), (16, 16, 32)):
        fmt = [dataclasses.replace(f, bits=b) for f, b in zip((arch.array.input_format, arch.array.weight_format,
                                                                arch.array.accumulator_format), bits, strict=True)]
        design = dataclasses.replace(arch, array=dataclasses.replace(
            arch.array, input_format=fmt[0], weight_format=fmt[1], accumulator_format=fmt[2]))
        fresh = _interpolate(table.multiply_pj_by_bits, math.sqrt(bits[0] * bits[1])) \
            + _interpolate(table.add_pj_by_bits, bits[2])
        assert mac_pj(design) == mac_pj(design) == fresh
    assert table == config.load("gemmini").energy and hash(table) == hash(config.load("gemmini").energy)


# shapes around the arrays' edges (1, a fold, a fold and one, odd sizes), batches and N:M patterns
_SHAPES = [(m, k, n) for m in (1, 7, 16, 33, 200) for k in (1, 15, 16, 64, 129) for n in (1, 8, 17, 256)]


@pytest.mark.parametrize("preset", config.preset_names())
def test_the_searchs_compute_energy_is_the_datasheets_bit_for_bit(preset):
    """``compute_energy_function`` (what the mapper's search prices a new compute shape with) gives
    ``sum(command_energy_pj(...).values())`` exactly, for every dataflow, shape, batch, accumulate
    flag and sparsity, whatever the compute's fill, drain and follows."""
    from accel.energy import compute_energy_function
    from accel.hardware import Sparsity

    arch = config.load(preset)
    energy = compute_energy_function(arch)
    checked = 0
    for dataflow in Dataflow:
        for (m, k, n), batch, accumulate, sparsity in itertools.product(
                _SHAPES, (1, 3), (False, True), (None, Sparsity(2, 4))):
            for fill, drain, follows in ((True, True, 0), (True, True, m), (False, True, 0), (True, False, 5)):
                c = Compute(id=0, layer="", m=m, k=k, n=n, batch=batch, dataflow=dataflow, accumulate=accumulate,
                            fill=fill, drain=drain, sparsity=sparsity, follows=follows)
                expected = sum(command_energy_pj(arch, c).values())
                got = energy(dataflow, m, k, n, batch, accumulate, sparsity)
                assert got == expected, (preset, c, got, expected)
                checked += 1
    assert checked == len(Dataflow) * len(_SHAPES) * 2 * 2 * 2 * 4


@pytest.mark.parametrize("preset", config.preset_names())
def test_the_searchs_transfer_energy_is_the_datasheets_bit_for_bit(preset):
    """``transfer_energy_function`` gives ``sum(command_energy_pj(...).values())`` of a load or a
    store (without a fused activation) of any size to or from either buffer, exactly."""
    from accel.energy import transfer_energy_function

    arch = config.load(preset)
    energy = transfer_energy_function(arch)
    for size in (0, 1, 3, 63, 64, 65, 1000, 4096, 12345, 1 << 20):
        for buffer in Buffer:
            for kind in (Load, Store):
                command = kind(id=0, layer="", tensor="t", size_bytes=size, buffer=buffer)
                assert energy(size, buffer) == sum(command_energy_pj(arch, command).values()), (preset, command)
