"""Operands kept on chip across tiles: a column of weight tiles across a split reduction, loaded once
by the first output tile of its column (``Tile.keep == "w"``), or a row of input tiles across the
output-channel tiles, loaded once by the first output tile of its row (``"x"``, output tiles row by
row); the others read them in place.

Where what is kept fits half the working space with the streamed operand the search offers such
tiles (:attr:`mapper.plan.Tile.keep`); their programs are proven by the plan checker, move exactly
the plan's DRAM bytes in the simulator, and compute the network bit for bit
(``tests/test_execute.py`` runs ResNet-18 on gemmini and fpga-small with both kinds, also reading
kept inputs in place from resident tensors)."""

from __future__ import annotations

from fractions import Fraction

import mapper
import mapper.search
import sim
from accel.config import load
from accel.hardware import Dataflow
from mapper.plan import Tile
from mapper.schedules import Operands, kept_bytes, tile_outer
from workloads import zoo
from workloads.graph import GemmShape


def _ops(m: int, k: int, n: int) -> Operands:
    return Operands(x="x", w="w", out="y", gemm=GemmShape(m, k, n, 1), x_bytes=m * k, in_bytes=Fraction(1),
                    w_bytes=Fraction(1), out_bytes=1, acc_bytes=4)


def test_a_kept_column_loads_each_weight_tile_once_and_later_rows_reuse_it():
    ops = _ops(200, 96, 40)  # 7 row tiles x 3 k tiles x 3 column tiles
    steps = list(tile_outer(ops, Tile(m=32, k=32, n=16, keep="w"), Dataflow.WS))
    weight_loads = [t for s in steps for t in s.loads if t.role == "w"]
    assert len(weight_loads) == 3 * 3 and all(t.stays for t in weight_loads)
    assert {t.origin[1] for t in weight_loads} == {0}  # only the first row tile of each column loads them
    assert sum(s.reuses == ("w",) for s in steps) == 6 * 3 * 3
    assert sum(t.size_bytes for t in weight_loads) == 96 * 40  # every weight read once
    assert kept_bytes(ops, "w", 1, 0, 32, 16) == 96 * 16


def test_without_keep_a_split_reduction_reloads_its_weights_per_row_tile():
    steps = list(tile_outer(_ops(200, 96, 40), Tile(m=32, k=32, n=16), Dataflow.WS))
    assert sum(t.size_bytes for s in steps for t in s.loads if t.role == "w") == 7 * 96 * 40


def test_a_kept_row_loads_each_input_tile_once_and_later_columns_reuse_it():
    ops = _ops(200, 96, 40)
    steps = list(tile_outer(ops, Tile(m=32, k=32, n=16, keep="x"), Dataflow.WS))
    input_loads = [t for s in steps for t in s.loads if t.role == "x"]
    assert len(input_loads) == 7 * 3 and all(t.stays for t in input_loads)
    assert {t.origin[3] for t in input_loads} == {0}  # only the first column tile of each row loads them
    assert sum(t.size_bytes for t in input_loads) == 200 * 96  # the input read once
    assert sum(t.size_bytes for s in steps for t in s.loads if t.role == "w") == 7 * 96 * 40
    assert [s.compute.origin[1] for s in steps[:9]] == [0] * 9  # row by row: the first row's 3 x 3 steps
    assert kept_bytes(ops, "x", 1, 32, 32, 16) == 32 * 96


def _alexnet_plan():
    return mapper.map_graph(zoo.build("alexnet"), load("eyeriss"))


def test_alexnet_on_eyeriss_keeps_columns_and_moves_the_plans_bytes():
    mapper.search.clear_caches()
    plan = _alexnet_plan()  # map_graph proves the plan (mapper.check)
    kept = {m.tile.keep for m in plan.layers if m.tile is not None and m.tile.keep}
    # the 8 KiB accumulator splits AlexNet's reductions (some columns fit the 54 KiB half) and its
    # output tiles are narrow (CONV1's 55 x 55 x 96 outputs in tiles of 72 x 14: its input read once)
    assert kept == {"w", "x"}
    result = sim.simulate(plan)
    assert result.dram_bytes == plan.dram_bytes


def _conv_dram_bytes(plan) -> int:  # noqa: ANN001
    layers = sim.simulate(plan).layers()
    convs = layers[layers.op == "conv"]
    return int((convs.dram_read_bytes + convs.dram_write_bytes).sum())


def test_kept_operands_move_fewer_dram_bytes_on_alexnets_convolutions():
    plain = mapper.map_graph(zoo.build("alexnet"), load("eyeriss"), mapper.MapOptions(keep_operands=False))
    assert _conv_dram_bytes(_alexnet_plan()) < 0.85 * _conv_dram_bytes(plain)  # 29.8 MB against 38.6 MB


def test_tile_outer_bytes_are_what_the_schedule_moves():
    """``tile_outer_bytes`` (what the search reads a convolution's DRAM bytes from) sums the loads and
    stores of ``tile_outer``'s steps, plain and keeping either operand, on convolutions (their bands
    differ by position) and a GEMM."""
    from mapper.decide import operands
    from mapper.schedules import tile_outer_bytes

    graph, arch = zoo.build("resnet18"), load("gemmini")
    array_layers = [layer for layer in graph.layers if layer.gemm is not None]
    layers = array_layers[:2] + array_layers[-1:]  # the 7x7 stride-2 stem, a 3x3 conv, the classifier
    for layer in layers:
        ops = operands(graph, arch, layer, Dataflow.WS)
        g = ops.gemm
        for m, k, n in ((1000, 64, 32), (g.m, g.k, g.n), (g.m // 3 + 5, 48, 48)):
            for keep in ("", "w", "x"):
                tile = Tile(m=min(m, g.m), k=min(k, g.k), n=min(n, g.n), keep=keep)
                moved = sum(t.size_bytes for s in tile_outer(ops, tile, Dataflow.WS) for t in (*s.loads, *s.stores))
                assert tile_outer_bytes(ops, tile) == moved, (layer.name, tile)
