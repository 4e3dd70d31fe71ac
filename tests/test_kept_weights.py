"""Weight columns kept across a split reduction: each column of weight tiles is loaded once, by the
first output tile of its column, and the column's other output tiles read it in place.

Where the column and an input tile fit half the working space the search offers such tiles
(:attr:`mapper.plan.Tile.keep`); their programs are proven by the plan checker, move exactly the
plan's DRAM bytes in the simulator, and compute the network bit for bit (``tests/test_execute.py``
runs ResNet-18 on fpga-small with them; here one case asserts that they are there)."""

from __future__ import annotations

from fractions import Fraction

import mapper
import mapper.search
import sim
from accel.config import load
from accel.hardware import Dataflow
from mapper.plan import Tile
from mapper.schedules import Operands, kept_column_bytes, tile_outer
from workloads import zoo
from workloads.graph import GemmShape


def _ops(m: int, k: int, n: int) -> Operands:
    return Operands(x="x", w="w", out="y", gemm=GemmShape(m, k, n, 1), x_bytes=m * k, in_bytes=Fraction(1),
                    w_bytes=Fraction(1), out_bytes=1, acc_bytes=4)


def test_a_kept_column_loads_each_weight_tile_once_and_later_rows_reuse_it():
    ops = _ops(200, 96, 40)  # 7 row tiles x 3 k tiles x 3 column tiles
    steps = list(tile_outer(ops, Tile(m=32, k=32, n=16, keep=True), Dataflow.WS))
    weight_loads = [t for s in steps for t in s.loads if t.role == "w"]
    assert len(weight_loads) == 3 * 3 and all(t.stays for t in weight_loads)
    assert {t.origin[1] for t in weight_loads} == {0}  # only the first row tile of each column loads them
    assert sum(s.reuses == ("w",) for s in steps) == 6 * 3 * 3
    assert sum(t.size_bytes for t in weight_loads) == 96 * 40  # every weight read once
    assert kept_column_bytes(ops, 1, 32, 16) == 96 * 16


def test_without_keep_a_split_reduction_reloads_its_weights_per_row_tile():
    steps = list(tile_outer(_ops(200, 96, 40), Tile(m=32, k=32, n=16), Dataflow.WS))
    assert sum(t.size_bytes for s in steps for t in s.loads if t.role == "w") == 7 * 96 * 40


def _alexnet_plan():
    return mapper.map_graph(zoo.build("alexnet"), load("eyeriss"))


def test_alexnet_on_eyeriss_keeps_columns_and_moves_the_plans_bytes():
    mapper.search.clear_caches()
    plan = _alexnet_plan()  # map_graph proves the plan (mapper.check)
    kept = [m for m in plan.layers if m.tile is not None and m.tile.keep and m.tile.k < m.gemm.k]
    assert kept, "the 8 KiB accumulator splits AlexNet's reductions; some columns fit the 54 KiB half"
    result = sim.simulate(plan)
    assert result.dram_bytes == plan.dram_bytes


def test_kept_columns_move_fewer_dram_bytes_on_alexnet(monkeypatch):
    mapper.search.clear_caches()
    kept = _alexnet_plan().dram_bytes
    monkeypatch.setattr(mapper.search, "_kept_tms", lambda *args: set())  # the search without them
    mapper.search.clear_caches()
    try:
        assert kept < 0.95 * _alexnet_plan().dram_bytes  # 148.2 MB against 157.0 MB
    finally:
        mapper.search.clear_caches()
