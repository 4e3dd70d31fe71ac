"""The per-layer mapping search: its closed-form prices equal pricing every step, dominated
mappings are pruned, the objective is honoured, and tiles may leave remainders."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from accel import config
from accel.commands import Buffer
from accel.hardware import Dataflow
from mapper.plan import Tile
from mapper.schedules import Operands, Step, fold_outer, tile_outer
from mapper.search import (
    Choice,
    Cost,
    _fold_outer_cost,
    _fold_plan,
    _pricer,
    _tile_outer_cost,
    pareto,
    roofline_cycles,
    search_gemm,
)
from workloads.graph import GemmShape

GEMMINI = config.load("gemmini")


def _ops(b: int, m: int, k: int, n: int) -> Operands:
    from fractions import Fraction

    return Operands(x="x", w="w", out="y", gemm=GemmShape(m, k, n, b), x_bytes=b * m * k, in_bytes=Fraction(1),
                    w_bytes=Fraction(1), out_bytes=1, acc_bytes=4)


def _every_step(steps: list[Step], ops: Operands) -> tuple[float, float, float, int, float]:
    """The reference: price every step, each transfer in the rows it moves (``ops.row_bytes``: what a
    DMA with a request structure issues); compute i overlaps the stores of i and the loads of i + 1.

    Also returns the closed forms' allowance: they pair each output tile's last step with the next
    tile of the same shape, so each hand-over between output tiles of different shapes may be off by
    up to one step's transfers."""
    pricer = _pricer(GEMMINI)
    rows = []
    energy = moved = 0.0
    for step in steps:
        c = step.compute
        array, pj = pricer.compute(c.dataflow, c.m, c.k, c.n, c.batch, c.accumulate, c.fill, c.drain, c.sparsity)
        energy += pj
        loads = stores = 0
        for t in step.loads:
            busy, pj = pricer.transfer(t.size_bytes, t.buffer, False, ops.row_bytes(t))
            loads, energy, moved = loads + busy, energy + pj, moved + t.size_bytes
        for t in step.stores:
            busy, pj = pricer.transfer(t.size_bytes, t.buffer, True, ops.row_bytes(t))
            stores, energy, moved = stores + busy, energy + pj, moved + t.size_bytes
        rows.append((array, loads, stores))
    cycles = rows[0][1] + sum(max(a, s + rows[i + 1][1]) for i, (a, _, s) in enumerate(rows[:-1]))
    cycles += rows[-1][0] + rows[-1][2]
    shape = [(st.compute.batch, st.compute.m, st.compute.n) for st in steps]
    handovers = sum(a != b for a, b in zip(shape, shape[1:], strict=False))
    allowance = (handovers + 1) * max(loads + stores for _, loads, stores in rows)
    return cycles, energy + cycles * pricer.static_pj_per_cycle, moved, len(rows), allowance


shapes = st.tuples(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300), st.integers(1, 200))


@settings(max_examples=60)
@given(shape=shapes, tile=st.tuples(st.integers(1, 4), st.integers(1, 96), st.integers(1, 96), st.integers(1, 96)),
       keep=st.sampled_from(["", "w", "x"]))
def test_tile_outer_closed_form_equals_pricing_every_step(shape, tile, keep):
    """Also for tiles that keep a split reduction's column of weights (loaded by each column's first
    output tile only) or a row of inputs (loaded by each row's first)."""
    ops = _ops(*shape)
    t = Tile(m=tile[1], k=tile[2], n=tile[3], b=tile[0], keep=keep)
    cost = _tile_outer_cost(GEMMINI, ops, t, Dataflow.WS)
    assume(cost.steps <= 3000)  # keeps the step-by-step reference quick
    cycles, energy, moved, steps, allowance = _every_step(list(tile_outer(ops, t, Dataflow.WS)), ops)
    assert cost.dram_bytes == moved and cost.steps == steps
    # cycles: exact but where one output tile shape hands over to another
    assert cost.cycles == pytest.approx(cycles, rel=0.02, abs=allowance)
    assert cost.energy_pj == pytest.approx(energy, rel=0.02, abs=allowance * _pricer(GEMMINI).static_pj_per_cycle)


@settings(max_examples=40)
@given(shape=shapes, dataflow=st.sampled_from(list(Dataflow)), spad=st.sampled_from([4096, 16384, 131072]))
def test_fold_outer_closed_form_equals_pricing_every_step(shape, dataflow, spad):
    ops = _ops(*shape)
    fold = _fold_plan(GEMMINI, ops, dataflow, spad, 32768)
    if fold is None:
        return
    cost = _fold_outer_cost(GEMMINI, ops, fold, dataflow)
    assume(cost.steps <= 3000)
    cycles, energy, moved, steps, allowance = _every_step(list(fold_outer(ops, fold, dataflow, 16, 16)), ops)
    assert cost.dram_bytes == moved and cost.steps == steps
    assert cost.cycles == pytest.approx(cycles, rel=0.05, abs=allowance)
    assert cost.energy_pj == pytest.approx(energy, rel=0.05, abs=allowance * _pricer(GEMMINI).static_pj_per_cycle)


@settings(max_examples=40)
@given(shape=shapes, dataflow=st.sampled_from(list(Dataflow)), spad=st.sampled_from([4096, 16384, 131072]))
def test_fold_outer_cost_without_its_steps_is_the_steps_price(shape, dataflow, spad):
    """The memoised search prices a fold-outer block's steps without making them
    (``mapper.search._fold_block_steps``): bit for bit the price of :func:`fold_outer`'s steps."""
    from unittest import mock

    from mapper import search

    ops = _ops(*shape)
    fold = _fold_plan(GEMMINI, ops, dataflow, spad, 32768)
    if fold is None:
        return
    direct = _fold_outer_cost(GEMMINI, ops, fold, dataflow)
    with mock.patch.object(search, "_MEMO", False):
        stepwise = _fold_outer_cost(GEMMINI, ops, fold, dataflow)
    assert (direct, direct.steps) == (stepwise, stepwise.steps)


def test_dominated_mappings_are_pruned():
    tile = Tile(1, 1, 1)

    def choice(cycles, energy, moved):
        return Choice("tile-outer", Dataflow.WS, tile, tile, Cost(cycles, energy, moved))

    a, b, c, d = choice(1, 5, 5), choice(2, 2, 2), choice(3, 3, 3), choice(1, 5, 5)
    assert pareto([c, b, a, d]) == [a, b]


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_the_choice_is_the_best_of_the_front_for_the_objective(objective):
    ops = _ops(1, 3136, 576, 64)
    best = search_gemm(GEMMINI, ((Dataflow.WS, ops), (Dataflow.OS, ops)), loop_orders=("tile-outer", "fold-outer"),
                       half_spad=128 * 1024, half_acc=32 * 1024, objective=objective)
    assert best.evaluated > best.pareto >= 1
    for other in ("latency", "energy", "edp"):
        rival = search_gemm(GEMMINI, ((Dataflow.WS, ops), (Dataflow.OS, ops)),
                            loop_orders=("tile-outer", "fold-outer"), half_spad=128 * 1024, half_acc=32 * 1024,
                            objective=other)
        assert best.cost.key(objective) <= rival.cost.key(objective)


def test_tiles_need_not_divide_the_layer():
    # 3 x 197 x 768 x 2304: the search may pick sizes that leave a remainder, handled by the last tile
    ops = _ops(3, 197, 768, 2304)
    choice = search_gemm(GEMMINI, ((Dataflow.OS, ops),), loop_orders=("tile-outer",), half_spad=64 * 1024,
                         half_acc=16 * 1024, objective="latency")
    steps = list(choice.steps(ops, GEMMINI))
    macs = sum(s.compute.batch * s.compute.m * s.compute.k * s.compute.n for s in steps)
    assert macs == 3 * 197 * 768 * 2304
    sizes = {(s.compute.m, s.compute.k, s.compute.n) for s in steps}
    assert len(sizes) > 1  # full tiles and remainder tiles


def test_search_results_are_cached_per_design_and_shape():
    ops = _ops(1, 784, 1152, 128)
    args = dict(loop_orders=("tile-outer", "fold-outer"), half_spad=65536, half_acc=16384, objective="latency")
    first = search_gemm(GEMMINI, ((Dataflow.WS, ops),), **args)
    assert search_gemm(GEMMINI, ((Dataflow.WS, _ops(1, 784, 1152, 128)),), **args) is first


def test_roofline_is_the_larger_of_compute_and_bandwidth_bounds():
    assert roofline_cycles(GEMMINI, 256 * 1000, 16) == 1000  # 256 MACs per cycle
    assert roofline_cycles(GEMMINI, 256, 16 * 1000) == 1000  # 16 B per cycle


def test_every_step_helper_sees_buffers():
    # guards the reference itself: partial-sum reloads go to the accumulator
    ops = _ops(1, 64, 4096, 64)
    fold = _fold_plan(GEMMINI, ops, Dataflow.WS, 2048, 512)
    steps = list(fold_outer(ops, fold, Dataflow.WS, 16, 16))
    assert any(t.buffer is Buffer.ACCUMULATOR for s in steps for t in s.loads)
    assert list(itertools.islice(steps, 1))
