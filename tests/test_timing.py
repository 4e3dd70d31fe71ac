"""The timing datasheet: cycles of one command on one unit."""

from __future__ import annotations

import dataclasses

import pytest

from accel import config
from accel.commands import Block, Compute
from accel.errors import ConfigError
from accel.hardware import Dataflow, SystolicArray
from accel.timing import (
    dma_cycles,
    dma_requests,
    fold_count,
    gemm_tile_cycles,
    late_start_cycles,
    vector_cycles,
    weight_shift_cycles,
)

ARRAY = SystolicArray(rows=4, cols=8, dataflows=(Dataflow.WS, Dataflow.OS, Dataflow.IS))


@pytest.mark.parametrize("dataflow", list(Dataflow))
def test_one_fold_costs_fill_skew_drain_and_stream(dataflow):
    # m=4, k=4, n=8 fits the 4x8 array in one fold for every dataflow, streaming m, k or n.
    stream = {Dataflow.WS: 4, Dataflow.OS: 4, Dataflow.IS: 8}[dataflow]
    m, k, n = (4, 4, 8) if dataflow is not Dataflow.IS else (8, 4, 8)
    assert fold_count(ARRAY, dataflow, m, k, n) == (1, stream)
    preload = 0 if dataflow is Dataflow.OS else 4  # OS keeps outputs, not an operand, in the PEs
    assert gemm_tile_cycles(ARRAY, dataflow, m, k, n) == preload + 4 + 8 + stream - 2


def test_folds_multiply():
    # WS: k=10 on 4 rows -> 3 folds, n=20 on 8 cols -> 3 folds; each streams all m=100 rows.
    assert fold_count(ARRAY, Dataflow.WS, 100, 10, 20) == (9, 100)
    assert gemm_tile_cycles(ARRAY, Dataflow.WS, 100, 10, 20) == 9 * (8 + 8 + 100 - 2)
    # OS: m=10 on rows, n=20 on cols, stream k.
    assert fold_count(ARRAY, Dataflow.OS, 10, 50, 20) == (9, 50)
    # IS: k on rows, m on cols, stream n.
    assert fold_count(ARRAY, Dataflow.IS, 20, 10, 7) == (9, 7)


def _one_stream(arch):
    """``arch`` with a DMA that streams bursts without a request structure (``max_in_flight = 0``)."""
    return dataclasses.replace(arch, dma=dataclasses.replace(arch.dma, max_in_flight=0, max_request_bytes=0))


def test_dma_moves_whole_bursts_after_latency():
    arch = _one_stream(config.load("gemmini"))  # 16 B/cycle, 64 B bursts, 10 + 100 cycles latency
    assert dma_cycles(arch, 64) == 110 + 4
    assert dma_cycles(arch, 65) == 110 + 8  # a partial burst costs a whole one
    assert dma_cycles(arch, 16 * 1024) == 110 + 1024


def test_few_requests_in_flight_bound_a_transfer_by_littles_law():
    arch = config.load("gemmini")  # 16 requests of at most 64 B in flight, 10 + 100 cycles round trip
    assert (arch.dma.max_in_flight, arch.dma.max_request_bytes) == (16, 64)
    assert config.load("gemmini-2021").dma == arch.dma  # Configs.scala's defaults in both
    # 64 KiB contiguous: 1,024 requests, one issued every 110 / 16 cycles, slower than 16 B/cycle
    assert dma_cycles(arch, 64 * 1024) == 110 + -(-1023 * 110 // 16)
    # a block of 256 rows of 16 B: one request per row, 256 requests for 4 KiB
    rows = Block(rows=256, row_bytes=16, row_stride=64)
    assert dma_requests(arch, 4096, rows) == 256 and dma_requests(arch, 4096) == 64
    assert dma_cycles(arch, 4096, rows) == 110 + -(-255 * 110 // 16) > dma_cycles(arch, 4096)
    # without a request structure the rows do not matter
    plain = _one_stream(arch)
    assert dma_cycles(plain, 4096, rows) == dma_cycles(plain, 4096) == 110 + 256


def test_the_request_structure_must_be_non_negative():
    with pytest.raises(ConfigError, match="max_in_flight must be a non-negative integer, not -1"):
        dataclasses.replace(config.load("gemmini").dma, max_in_flight=-1)


def test_fractional_bandwidth_rounds_up():
    tpu = config.load("tpu-v1")  # 48.57 B/cycle, no DMA setup, 100 cycles DRAM latency
    assert dma_cycles(tpu, 4857 * 64) == 100 + 6400


def test_vector_unit_is_latency_plus_one_cycle_per_lane_full():
    arch = config.load("gemmini")
    assert vector_cycles(arch, 16) == 4 + 1
    assert vector_cycles(arch, 17) == 4 + 2


# -- double-buffered weights ------------------------------------------------------------------------

DOUBLE = SystolicArray(rows=4, cols=8, dataflows=(Dataflow.WS, Dataflow.OS, Dataflow.IS), weight_buffers=2)


def test_double_buffered_folds_follow_each_other():
    # WS, 9 folds of a 100-row stream: the first pays 2R + C - 2 around its stream, each later one
    # only its stream (100 >= R + C = 12 cycles of weight shift).
    assert weight_shift_cycles(DOUBLE) == 4 + 8
    assert gemm_tile_cycles(DOUBLE, Dataflow.WS, 100, 10, 20) == (8 + 8 + 100 - 2) + 8 * 100
    # a short stream (3 < 12): each later fold waits for its weights, max(S, R + C) per fold
    assert gemm_tile_cycles(DOUBLE, Dataflow.WS, 3, 10, 20) == (8 + 8 + 3 - 2) + 8 * 12
    # the first fold overlaps the previous command's last fold when the mapper says so
    assert gemm_tile_cycles(DOUBLE, Dataflow.WS, 100, 4, 8, follows=100) == 100
    assert gemm_tile_cycles(DOUBLE, Dataflow.WS, 100, 4, 8, follows=6) == 100 + 6
    # OS keeps outputs in the PEs: nothing to double-buffer; split folds are not overlapped
    assert gemm_tile_cycles(DOUBLE, Dataflow.OS, 10, 50, 20) == gemm_tile_cycles(ARRAY, Dataflow.OS, 10, 50, 20)
    assert gemm_tile_cycles(DOUBLE, Dataflow.WS, 100, 10, 20, drain=False) == \
        gemm_tile_cycles(ARRAY, Dataflow.WS, 100, 10, 20, drain=False)
    # one buffer: follows changes nothing (SCALE-Sim's cycles)
    assert gemm_tile_cycles(ARRAY, Dataflow.WS, 100, 4, 8, follows=100) == gemm_tile_cycles(ARRAY, Dataflow.WS,
                                                                                            100, 4, 8)


def test_late_operands_lose_the_overlap():
    arch = dataclasses.replace(config.load("fpga-small"), array=DOUBLE)
    cmd = Compute(id=1, layer="x", m=100, k=4, n=8, dataflow=Dataflow.WS, follows=100)
    hidden = (7 + 100 + 7) - 100  # the full fold (fill 2R - 1, drain C - 1) minus the overlapped one
    assert late_start_cycles(arch, cmd, operands_ready=0, array_free=500) == 0
    assert late_start_cycles(arch, cmd, operands_ready=500 - hidden + 3, array_free=500) == 3
    assert late_start_cycles(arch, cmd, operands_ready=900, array_free=500) == hidden
    assert late_start_cycles(arch, dataclasses.replace(cmd, follows=0), operands_ready=900, array_free=500) == 0


def test_weight_buffers_must_be_one_or_two():
    with pytest.raises(ConfigError, match="weight_buffers must be 1 or 2, not 3"):
        SystolicArray(rows=4, cols=4, weight_buffers=3)


def test_a_double_buffered_design_maps_and_simulates_faster():
    import mapper
    import sim
    from workloads.builder import GraphBuilder

    base = config.load("fpga-small")
    double = dataclasses.replace(base, array=dataclasses.replace(base.array, weight_buffers=2))
    b = GraphBuilder("small")
    x = b.activation(b.conv(b.input("x", (2, 16, 12, 12)), 32, 3, 1, 1, name="conv"), "relu")
    b.linear(b.flatten(x), 64, name="fc")
    graph = b.build()
    results = {}
    for arch in (base, double):
        plan = mapper.map_graph(graph, arch)
        results[arch.array.weight_buffers] = sim.simulate(plan)
        assert results[arch.array.weight_buffers].dram_bytes == plan.dram_bytes
    follows = [c.follows for c in mapper.map_graph(graph, double).commands if isinstance(c, Compute)]
    assert any(follows) and not any(c.follows for c in results[1].plan.commands if isinstance(c, Compute))
    assert results[2].total_cycles < results[1].total_cycles


def test_one_pricing_of_a_command_gives_its_cycles_energy_and_bytes():
    from accel import config
    from accel.commands import Buffer, Compute, Load, Move, Store, Vector
    from accel.energy import command_energy_pj
    from accel.hardware import Dataflow
    from accel.pricing import PRICING, price
    from accel.timing import command_cycles
    from accel.traffic import command_bytes

    arch = config.load("gemmini")
    commands = [Load(id=0, layer="l", tensor="x", size_bytes=4096), Store(id=1, layer="l", tensor="y", size_bytes=64),
                Move(id=2, layer="l", tensor="y", size_bytes=256, addr=0),
                Compute(id=3, layer="l", m=32, k=64, n=16, dataflow=Dataflow.WS),
                Vector(id=4, layer="l", op="relu", elements=1000)]
    assert set(PRICING) == {type(c) for c in commands}  # every kind has one entry
    for command in commands:
        priced = price(arch, command)
        assert priced.cycles == command_cycles(arch, command) > 0
        assert priced.energy_pj == command_energy_pj(arch, command)
        assert priced.bytes == command_bytes(arch, command)
    assert price(arch, commands[0]).bytes == {"dram": 4096, Buffer.SCRATCHPAD.value: 4096}
    with pytest.raises(TypeError, match=r"^unknown command 'x'$"):
        price(arch, "x")  # type: ignore[arg-type]


def test_a_move_takes_its_beats_plus_the_read_paths_pipeline():
    """``activation.latency_cycles`` (0 in every preset) is added to a Move, not to a Store, and the
    simulator charges it: a TOML design gets it from its [activation] section."""
    from accel.commands import Buffer, Move, Store
    from accel.timing import command_cycles, move_cycles

    arch = config.load("fpga-small")
    assert all(config.load(p).activation.latency_cycles == 0 for p in config.preset_names())
    piped = dataclasses.replace(arch, activation=dataclasses.replace(arch.activation, latency_cycles=8))
    assert (move_cycles(arch, 35), move_cycles(piped, 35)) == (9, 17)
    move = Move(id=0, layer="l", tensor="y", size_bytes=35)
    store = Store(id=1, layer="l", tensor="y", size_bytes=35, buffer=Buffer.ACCUMULATOR)
    assert command_cycles(piped, move) == 17 and command_cycles(piped, store) == command_cycles(arch, store)
    loaded = config.loads(config.dumps(piped))
    assert loaded.activation.latency_cycles == 8
    with pytest.raises(ConfigError, match="latency_cycles must be a non-negative integer, not -1"):
        dataclasses.replace(arch.activation, latency_cycles=-1)


@pytest.mark.parametrize("preset", config.preset_names())
def test_steady_compute_cycles_are_command_cycles_of_the_compute(preset):
    """``steady_compute_cycles`` (what the mapper's search prices a whole-fold compute by) gives the
    cycles of the ``Compute`` that follows one of its shape, on every preset (one and two weight
    buffers), dataflow, shape and batch, on plain ints and elementwise on numpy arrays; and so do
    ``batch x folds x steady_fold_cycles`` (what the search's array bound sums per dimension)."""
    import numpy as np

    from accel.timing import command_cycles, fold_count, steady_compute_cycles, steady_fold_cycles, steady_follows

    arch = config.load(preset)
    shapes = [(m, k, n, b) for m in (1, 7, 16, 33, 200) for k in (1, 15, 16, 64, 129) for n in (1, 8, 17, 256)
              for b in (1, 3)]
    for a in (arch, dataclasses.replace(arch, array=dataclasses.replace(arch.array, weight_buffers=2))):
        for dataflow in Dataflow:
            expected = [command_cycles(a, Compute(id=0, layer="", m=m, k=k, n=n, batch=b, dataflow=dataflow,
                                                  follows=steady_follows(a.array, dataflow, m, k, n)))
                        for m, k, n, b in shapes]
            assert [steady_compute_cycles(a, dataflow, m, k, n, b) for m, k, n, b in shapes] == expected
            m, k, n, b = (np.array(column, dtype=np.int64) for column in zip(*shapes, strict=True))
            assert steady_compute_cycles(a, dataflow, m, k, n, b).tolist() == expected
            folds = [fold_count(a.array, dataflow, *shape[:3]) for shape in shapes]  # per fold, as the search sums
            assert [shape[3] * f * steady_fold_cycles(a, dataflow, s)
                    for shape, (f, s) in zip(shapes, folds, strict=True)] == expected


@pytest.mark.parametrize("preset", config.preset_names())
def test_dma_row_cycles_are_dma_cycles_of_the_rows_block(preset):
    """``dma_row_cycles`` (what the mapper's search prices a new transfer by) gives ``dma_cycles`` of
    the block of the rows, or of no block for one row, with and without a request structure."""
    from accel.timing import dma_row_cycles

    arch = config.load(preset)
    dmas = [dataclasses.replace(arch.dma, max_in_flight=f, max_request_bytes=r) for f, r in ((4, 64), (2, 0))]
    designs = [arch] + [dataclasses.replace(arch, dma=dma) for dma in dmas]
    for a in designs:
        for size in (0, 1, 63, 64, 100, 1000, 4096, 12288, 50000):
            for row in {0, 1, 7, 16, 64, 100, 96, 4096, size}:
                if row and size % row:
                    continue
                block = Block(rows=size // row, row_bytes=row, row_stride=row) if row and row < size else None
                assert dma_row_cycles(a, size, row) == dma_cycles(a, size, block), (preset, a.dma, size, row)
