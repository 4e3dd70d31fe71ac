"""N:M units in Amaranth's simulator: the compressor, the sparse PE and the sparse tile, bit-exact
against sim.numerics and (the tile) cycle-exact against sim.numerics.nm_tile_cycles; the tile's dense
mode against the dense tile, result for result and edge for edge."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.formats import INT32, NumberFormat, Overflow
from accel.hardware import Sparsity
from rtl.nm_compressor import NMCompressor
from rtl.sparse_pe import SparsePE
from rtl.sparse_systolic import SparseSystolicArray, input_lanes, weight_beats
from rtl.systolic import SystolicArray
from rtl.verilog import generate
from sim.numerics import nm_compress, nm_gemm, nm_pack_group, nm_tile_cycles, systolic_tile

INT16_SAT = NumberFormat(16, overflow=Overflow.SATURATE)


# -- the compressor ------------------------------------------------------------------------------

def compress_in_rtl(dut: NMCompressor, groups: list[list[list[int]]], *, stall_every: int = 0) -> list[list[int]]:
    """Send ``groups`` (beats of ``lanes`` groups) and return the group words that come out."""
    out: list[list[int]] = []

    async def testbench(ctx) -> None:
        index, cycle = 0, 0
        while len(out) < len(groups):
            stalled = bool(stall_every) and cycle % stall_every == 0
            ctx.set(dut.compressed.ready, not stalled)
            ctx.set(dut.dense.valid, index < len(groups))
            if index < len(groups):
                ctx.set(dut.dense.payload, groups[index])
            accepted = index < len(groups) and ctx.get(dut.dense.ready)
            if ctx.get(dut.compressed.valid) and not stalled:
                raw = ctx.get(dut.compressed.payload.as_value())
                width = Shape.cast(dut.compressed.payload.shape()).width // dut.lanes
                out.append([(raw >> (lane * width)) & ((1 << width) - 1) for lane in range(dut.lanes)])
            index += bool(accepted)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def expected_words(dut: NMCompressor, beats: list[list[list[int]]]) -> list[list[int]]:
    words = []
    for beat in beats:
        row = []
        for group in beat:
            c = nm_compress(np.array(group)[:, None], dut.n, dut.m, value_format=dut.value_format)
            row.append(nm_pack_group(c.values[0, :, 0], c.indices[0, :, 0], m=dut.m, value_format=dut.value_format))
        words.append(row)
    return words


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4)])
def test_compressor_is_exhaustive_over_small_groups_with_ties(n: int, m: int) -> None:
    dut = NMCompressor(n, m, lanes=3)
    alphabet = [-2, -1, 0, 1, 2]
    groups = [list(g) for g in itertools.product(alphabet, repeat=m)]  # every order and every tie
    groups += [[-128, 127, -127, 0], [127, -128, 127, -128], [-128, -128, -128, -128]]
    groups += [[0] * m] * (-len(groups) % 3)
    beats = [groups[i:i + 3] for i in range(0, len(groups), 3)]
    assert compress_in_rtl(dut, beats) == expected_words(dut, beats)


def test_compressor_2_8_random_with_back_pressure() -> None:
    dut = NMCompressor(2, 8, lanes=2)
    rng = np.random.default_rng(5)
    beats = [[list(rng.integers(-4, 5, 8)) if rng.random() < 0.5 else list(rng.integers(-128, 128, 8))
              for _ in range(2)] for _ in range(60)]
    assert compress_in_rtl(dut, beats, stall_every=3) == expected_words(dut, beats)


def test_compressor_unsigned_weights() -> None:
    fmt = NumberFormat(8, signed=False)
    dut = NMCompressor(2, 4, value_format=fmt)
    beats = [[[255, 0, 255, 128]], [[1, 200, 3, 200]], [[0, 0, 0, 0]]]
    assert compress_in_rtl(dut, beats) == expected_words(dut, beats)


# -- the sparse tile -----------------------------------------------------------------------------

@dataclass
class Run:
    accepted: list[int] = field(default_factory=list)
    emitted: list[int] = field(default_factory=list)
    results: list[list[int]] = field(default_factory=list)


def run_tile(dut: SystolicArray, beats: list[tuple[str, object]], *, stall_every: int = 0, tail: int = 60,
             random_stalls: int | None = None) -> Run:
    """Drive ``(stream, payload)`` beats back to back; record accepting and emitting edges.

    ``stall_every``: producer and consumer both idle every ``stall_every``-th cycle.
    ``random_stalls`` (a seed): the producer leaves random gaps (holding an offered beat until it is
    taken) and the consumer is ready at random, independently.
    """
    out = Run()
    rng = np.random.default_rng(random_stalls)

    async def testbench(ctx) -> None:
        cycle, index, pending = 0, 0, False
        while index < len(beats) or cycle < (out.accepted[-1] if out.accepted else 0) + tail:
            stalled = bool(stall_every) and cycle % stall_every == stall_every - 1
            gap = random_stalls is not None and not pending and rng.random() < 0.3
            ctx.set(dut.outputs.ready, not stalled and (random_stalls is None or rng.random() < 0.6))
            ctx.set(dut.weights.valid, 0)
            ctx.set(dut.inputs.valid, 0)
            current = None
            if index < len(beats) and not stalled and not gap:
                name, payload = beats[index]
                current = getattr(dut, name)
                ctx.set(current.payload, payload)
                ctx.set(current.valid, 1)
            if ctx.get(dut.outputs.valid) and ctx.get(dut.outputs.ready):
                out.emitted.append(cycle)
                out.results.append([int(v) for v in ctx.get(dut.outputs.payload).data])
            pending = current is not None and not ctx.get(current.ready)
            if current is not None and ctx.get(current.ready):
                out.accepted.append(cycle)
                index += 1
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def sparse_fold_beats(dut: SparseSystolicArray, x: np.ndarray, w, *, dense: bool) -> list[tuple[str, object]]:
    beats: list[tuple[str, object]] = [
        ("weights", {"data": [{"value": v, "index": i} for v, i in row], "dense": dense})
        for row in weight_beats(w, rows=dut.rows, n=dut.n)]
    beats += [("inputs", {"data": input_lanes(x[t], rows=dut.rows, n=dut.n, m=dut.m, dense=dense),
                          "last": t == len(x) - 1}) for t in range(len(x))]
    return beats


def random_sparse_fold(dut: SparseSystolicArray, rng: np.random.Generator, s: int):
    k = dut.fold_k(dense=False)
    x = rng.integers(-128, 128, (s, k))
    w = nm_compress(rng.integers(-128, 128, (k, dut.cols)), dut.n, dut.m, value_format=dut.b_format)
    return x, w


@pytest.mark.parametrize(("rows", "cols", "n", "m"), [(2, 3, 2, 4), (4, 2, 2, 4), (2, 2, 1, 4), (4, 3, 2, 8),
                                                      (1, 1, 1, 2)])
def test_sparse_folds_match_nm_gemm_and_the_timing(rows: int, cols: int, n: int, m: int) -> None:
    dut = SparseSystolicArray(rows, cols, n, m, acc_format=INT16_SAT if (rows, m) == (4, 4) else INT32)
    rng = np.random.default_rng(rows * 100 + cols * 10 + m)
    lengths = [5, 1, 3]
    folds = [random_sparse_fold(dut, rng, s) for s in lengths]
    observed = run_tile(dut, [b for x, w in folds for b in sparse_fold_beats(dut, x, w, dense=False)])
    expected = [list(r) for x, w in folds for r in nm_gemm(x, w, acc_format=dut.acc_format)]
    assert observed.results == expected
    per_fold = [dut.fold_cycles(s) for s in lengths]
    assert per_fold == [nm_tile_cycles(dut.description, s, dut.fold_k(dense=False), cols,
                                       sparsity=Sparsity(n, m)) for s in lengths]
    assert per_fold == [2 * rows + cols + s - 2 for s in lengths]
    assert observed.emitted[-1] - observed.accepted[0] == sum(per_fold)


def test_dense_mode_equals_the_dense_tile_result_for_result_and_edge_for_edge() -> None:
    sparse = SparseSystolicArray(4, 3, 2, 4, acc_format=INT16_SAT)
    dense = SystolicArray(4, 3, "ws", acc_format=INT16_SAT)
    rng = np.random.default_rng(11)
    folds = [(rng.integers(-128, 128, (s, 4)), rng.integers(-128, 128, (4, 3))) for s in (6, 2)]
    folds.append((np.full((3, 4), -128), np.full((4, 3), -128)))
    sparse_run = run_tile(sparse, [b for x, w in folds for b in sparse_fold_beats(sparse, x, w, dense=True)])
    dense_beats = [b for x, w in folds for b in
                   [("weights", [int(v) for v in w[i]]) for i in range(4)]
                   + [("inputs", {"data": [int(v) for v in x[t]], "last": t == len(x) - 1}) for t in range(len(x))]]
    dense_run = run_tile(dense, dense_beats)
    assert sparse_run.results == dense_run.results
    assert sparse_run.results == [list(r) for x, w in folds for r in systolic_tile(x, w, dataflow="ws",
                                                                                   acc_format=INT16_SAT)]
    assert sparse_run.emitted == dense_run.emitted and sparse_run.accepted == dense_run.accepted


def test_modes_switch_fold_by_fold_and_survive_stalls() -> None:
    dut = SparseSystolicArray(4, 2, 2, 4)
    rng = np.random.default_rng(2)
    x1, w1 = random_sparse_fold(dut, rng, 7)
    x2, w2 = rng.integers(-128, 128, (4, 4)), rng.integers(-128, 128, (4, 2))
    x3, w3 = random_sparse_fold(dut, rng, 2)
    beats = (sparse_fold_beats(dut, x1, w1, dense=False) + sparse_fold_beats(dut, x2, w2, dense=True)
             + sparse_fold_beats(dut, x3, w3, dense=False))
    expected = [list(r) for r in nm_gemm(x1, w1)] + [list(r) for r in systolic_tile(x2, w2, dataflow="ws")]
    expected += [list(r) for r in nm_gemm(x3, w3)]
    assert run_tile(dut, beats).results == expected
    assert run_tile(dut, beats, stall_every=3, tail=150).results == expected
    for seed in range(8):  # a result taken while the array waits for an input row is emitted once
        assert run_tile(dut, beats, random_stalls=seed, tail=150).results == expected


@pytest.mark.parametrize(("rows", "n", "m"), [(4, 2, 4), (2, 1, 4)])
def test_every_index_pattern_in_every_pe(rows: int, n: int, m: int) -> None:
    dut = SparseSystolicArray(rows, 2, n, m)
    patterns = list(itertools.combinations(range(m), n))
    rng = np.random.default_rng(3)
    beats, expected = [], []
    for f in range(len(patterns)):  # fold f gives PE (g, j) pattern f + g + j: each PE sees them all
        w = np.zeros((dut.fold_k(dense=False), 2), dtype=np.int64)
        for g in range(dut.groups):
            for j in range(2):
                kept = [g * m + i for i in patterns[(f + g + j) % len(patterns)]]
                w[kept, j] = rng.integers(1, 128, n) * rng.choice([-1, 1], n)
        c = nm_compress(w, n, m)
        x = rng.integers(-128, 128, (3, dut.fold_k(dense=False)))
        beats += sparse_fold_beats(dut, x, c, dense=False)
        expected += [list(r) for r in nm_gemm(x, c)]
    assert run_tile(dut, beats).results == expected


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_sparse_pe_and_tile_contracts() -> None:
    pe = SparsePE(2, 4)
    assert pe.latency == 2 and Shape.cast(pe.x_in.shape()).width == 4 * 8
    assert Shape.cast(pe.weight_in.shape()).width == 8 + 2
    assert "module spe(" in generate(pe, "spe")
    tile = SparseSystolicArray(4, 3, 2, 8)
    assert tile.groups == 2 and tile.fold_k(dense=False) == 16 and tile.fold_k(dense=True) == 4
    assert Shape.cast(tile.inputs.payload.shape()).width == 16 * 8 + 1
    assert Shape.cast(tile.weights.payload.shape()).width == 3 * (8 + 3) + 1
    assert tile.latency == 6 and tile.drain_cycles == 5
    assert tile.parameters == {"rows": 4, "cols": 3, "n": 2, "m": 8, "a_format": "int8", "b_format": "int8",
                               "acc_format": "int32", "overflow": "wrap"}
    assert "module sparse(" in generate(tile, "sparse")
    assert "module nmc(" in generate(NMCompressor(2, 4, lanes=2), "nmc")


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize(("build", "message"), [
    (lambda: SparseSystolicArray(3, 2, 2, 4), r"^Sparse systolic array rows must be a multiple of N = 2, not 3$"),
    (lambda: SparseSystolicArray(4, 2, 4, 4), r"^N:M sparsity needs integers 1 <= N < M, not 4:4$"),
    (lambda: NMCompressor(2, 4, lanes=0), r"^Compressor lanes must be a positive integer, not 0$"),
    (lambda: SparsePE(2, 4, acc_format=NumberFormat(12)), r"^Accumulator format must be at least 16 bits"),
])
def test_bad_parameters_are_refused(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()
