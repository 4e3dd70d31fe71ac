"""The timing datasheet: cycles of one command on one unit."""

from __future__ import annotations

import pytest

from accel import config
from accel.hardware import Dataflow, SystolicArray
from accel.timing import dma_cycles, fold_count, gemm_tile_cycles, vector_cycles

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


def test_dma_moves_whole_bursts_after_latency():
    arch = config.load("gemmini")  # 16 B/cycle, 64 B bursts, 10 + 100 cycles latency
    assert dma_cycles(arch, 64) == 110 + 4
    assert dma_cycles(arch, 65) == 110 + 8  # a partial burst costs a whole one
    assert dma_cycles(arch, 16 * 1024) == 110 + 1024


def test_fractional_bandwidth_rounds_up():
    tpu = config.load("tpu-v1")  # 48.57 B/cycle, no DMA setup, 100 cycles DRAM latency
    assert dma_cycles(tpu, 4857 * 64) == 100 + 6400


def test_vector_unit_is_latency_plus_one_cycle_per_lane_full():
    arch = config.load("gemmini")
    assert vector_cycles(arch, 16) == 4 + 1
    assert vector_cycles(arch, 17) == 4 + 2
