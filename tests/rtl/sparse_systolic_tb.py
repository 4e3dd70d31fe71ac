"""cocotb testbench of :class:`rtl.sparse_systolic.SparseSystolicArray`, run on its Verilog by
``test_sparse_systolic_cocotb.py``.

Not a pytest module: cocotb imports it inside the simulator. It reuses the dense tile's driver,
monitor and scoreboard (:class:`systolic_tb.SystolicTestbench`: the handshakes and the cycle
accounting are the same) and differs only in what a fold sends and expects. Sparse folds expect
:func:`sim.numerics.nm_gemm`, dense folds :func:`sim.numerics.systolic_tile` (the dense tile's
reference), both in :func:`sim.numerics.nm_tile_cycles` cycles; the weights are pruned and
compressed by :func:`sim.numerics.nm_compress`. This file only packs bits and counts edges.
"""

from __future__ import annotations

import itertools

import cocotb
import numpy as np
from systolic_tb import Beat, Fold, SystolicTestbench
from tb_common import check_start_refuses_twice

from accel.hardware import Dataflow, Sparsity
from accel.hardware import SystolicArray as ArrayDescription
from rtl.sparse_systolic import input_lanes, weight_beats
from sim.numerics import NMCompressed, nm_compress, nm_gemm, nm_index_bits, nm_tile_cycles, systolic_tile


def _pack(values: list[int], bits: int) -> int:
    word = 0
    for position, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (position * bits)
    return word


class SparseTestbench(SystolicTestbench):
    """:class:`SystolicTestbench` for the sparse tile: folds are sparse (compressed weights) or dense."""

    def __init__(self, dut: object) -> None:
        super().__init__(dut)
        self.n, self.m = int(self.parameters["n"]), int(self.parameters["m"])
        self.sparsity = Sparsity(self.n, self.m)
        self.groups = self.rows // self.n
        self.array = ArrayDescription(self.rows, self.cols, dataflows=(Dataflow.WS,), input_format=self.a_format,
                                      weight_format=self.b_format, accumulator_format=self.acc_format,
                                      sparsity=(self.sparsity,))

    def fold_k(self, *, dense: bool) -> int:
        return self.rows if dense else self.groups * self.m

    def send_fold(self, x: np.ndarray, w: NMCompressed | np.ndarray) -> None:  # type: ignore[override]
        """Queue one fold: ``w`` compressed (sparse mode) or a dense ``rows x cols`` matrix (dense mode)."""
        dense = not isinstance(w, NMCompressed)
        fold = len(self.folds)
        s = len(x)
        entry_bits = self.b_format.bits + nm_index_bits(self.m)
        beats = []
        for r, row in enumerate(weight_beats(w, rows=self.rows, n=self.n)):
            entries = [(value & ((1 << self.b_format.bits) - 1)) | (index << self.b_format.bits)
                       for value, index in row]
            beats.append(Beat("weights", _pack(entries, entry_bits) | (int(dense) << (self.cols * entry_bits)),
                              fold, r == 0))
        lanes = self.groups * self.m
        for t in range(s):
            flat = [v for group in input_lanes(x[t], rows=self.rows, n=self.n, m=self.m, dense=dense) for v in group]
            last = int(t == s - 1) << (lanes * self.a_format.bits)
            beats.append(Beat("inputs", _pack(flat, self.a_format.bits) | last, fold, False))
        if dense:
            result = systolic_tile(x, w, dataflow="ws", a_format=self.a_format, b_format=self.b_format,
                                   acc_format=self.acc_format)
        else:
            result = nm_gemm(x, w, a_format=self.a_format, acc_format=self.acc_format)
        for row in result:
            self.scoreboard.expected.append((fold, [int(v) + self.reference_offset for v in row]))
        cycles = nm_tile_cycles(self.array, s, self.fold_k(dense=dense), self.cols,
                                sparsity=None if dense else self.sparsity)
        self.folds.append(Fold(cycles_expected=cycles, results_expected=s))
        self.queue(beats)

    def random_x(self, stream_length: int, *, dense: bool) -> np.ndarray:
        a = self.a_format
        return np.array([[self.rng.randint(a.min_int, a.max_int) for _ in range(self.fold_k(dense=dense))]
                         for _ in range(stream_length)], dtype=np.int64)

    def random_dense_w(self, *, dense: bool) -> np.ndarray:
        b = self.b_format
        return np.array([[self.rng.randint(b.min_int, b.max_int) for _ in range(self.cols)]
                         for _ in range(self.fold_k(dense=dense))], dtype=np.int64)

    def compress(self, w: np.ndarray) -> NMCompressed:
        return nm_compress(w, self.n, self.m, value_format=self.b_format)


# -- scenarios ---------------------------------------------------------------------------------

@cocotb.test()
async def random_sparse_folds_back_to_back(dut: object) -> None:
    """Random weights pruned and compressed by sim.numerics, streams of 1 to 2 x rows, back to back:
    results bit-exact with nm_gemm, each fold's and the run's cycles equal nm_tile_cycles."""
    tb = SparseTestbench(dut)
    await tb.start()
    for s in (1, 5, 2 * tb.rows, 3):
        tb.send_fold(tb.random_x(s, dense=False), tb.compress(tb.random_dense_w(dense=False)))
    await tb.finish()
    tb.check()


@cocotb.test()
async def extreme_operands(dut: object) -> None:
    """All max, all min, max x min and alternating signs, in sparse and in dense mode, back to back."""
    tb = SparseTestbench(dut)
    await tb.start()
    a, b = tb.a_format, tb.b_format
    s = 2 * tb.rows
    for dense in (False, True):
        shape_x, shape_w = (s, tb.fold_k(dense=dense)), (tb.fold_k(dense=dense), tb.cols)
        checker_x = np.fromfunction(lambda i, j: np.where((i + j) % 2 == 0, a.max_int, a.min_int), shape_x, dtype=int)
        checker_w = np.fromfunction(lambda i, j: np.where((i + j) % 2 == 0, b.min_int, b.max_int), shape_w, dtype=int)
        for x, w in [(np.full(shape_x, a.max_int), np.full(shape_w, b.max_int)),
                     (np.full(shape_x, a.min_int), np.full(shape_w, b.min_int)),
                     (np.full(shape_x, a.max_int), np.full(shape_w, b.min_int)),
                     (checker_x, checker_w)]:
            x, w = x.astype(np.int64), w.astype(np.int64)
            tb.send_fold(x, w if dense else tb.compress(w))
    await tb.finish()
    tb.check()


@cocotb.test()
async def every_index_pattern_in_every_pe(dut: object) -> None:
    """All C(M, N) index patterns of a group, each in every PE: fold f gives PE (g, j) pattern
    f + g + j, with random non-zero values and activations."""
    tb = SparseTestbench(dut)
    await tb.start()
    patterns = list(itertools.combinations(range(tb.m), tb.n))
    for f in range(len(patterns)):
        w = np.zeros((tb.fold_k(dense=False), tb.cols), dtype=np.int64)
        for g in range(tb.groups):
            for j in range(tb.cols):
                for i in patterns[(f + g + j) % len(patterns)]:
                    w[g * tb.m + i, j] = tb.rng.choice([-1, 1]) * tb.rng.randint(1, tb.b_format.max_int)
        c = tb.compress(w)
        assert all(tuple(c.indices[g, :, j]) == patterns[(f + g + j) % len(patterns)]
                   for g in range(tb.groups) for j in range(tb.cols))
        tb.send_fold(tb.random_x(2, dense=False), c)
    await tb.finish()
    tb.check()


@cocotb.test()
async def dense_mode_is_the_dense_tile(dut: object) -> None:
    """Dense folds: the dense tile's reference results (systolic_tile) in the dense tile's cycles
    (accel.timing.gemm_tile_cycles), also right after sparse folds."""
    tb = SparseTestbench(dut)
    await tb.start()
    for s in (4, 1):
        tb.send_fold(tb.random_x(s, dense=True), tb.random_dense_w(dense=True))
    tb.send_fold(tb.random_x(3, dense=False), tb.compress(tb.random_dense_w(dense=False)))
    tb.send_fold(tb.random_x(2 * tb.rows, dense=True), tb.random_dense_w(dense=True))
    await tb.finish()
    tb.check()
    from accel.timing import gemm_tile_cycles

    dense_tile = ArrayDescription(tb.rows, tb.cols, input_format=tb.a_format, weight_format=tb.b_format,
                                  accumulator_format=tb.acc_format)
    measured = [f.last_emitted - f.first_accepted for f in tb.folds]
    assert [measured[i] for i in (0, 1, 3)] == [gemm_tile_cycles(dense_tile, Dataflow.WS, s, tb.rows, tb.cols)
                                                for s in (4, 1, 2 * tb.rows)], measured


@cocotb.test()
async def stalls_on_both_sides(dut: object) -> None:
    """Random gaps from the producer and back-pressure from the consumer, modes interleaved."""
    tb = SparseTestbench(dut)
    await tb.start()
    tb.valid_probability, tb.ready_probability = 0.7, 0.6
    tb.send_fold(tb.random_x(4, dense=False), tb.compress(tb.random_dense_w(dense=False)))
    tb.send_fold(tb.random_x(3, dense=True), tb.random_dense_w(dense=True))
    tb.send_fold(tb.random_x(2 * tb.rows, dense=False), tb.compress(tb.random_dense_w(dense=False)))
    await tb.finish()
    tb.check(cycles=False)


@cocotb.test()
async def start_refuses_to_run_twice(dut: object) -> None:
    await check_start_refuses_twice(SparseTestbench(dut))
