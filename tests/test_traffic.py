"""Bytes per memory level of one command, and their sums per layer and per run."""

from __future__ import annotations

import pytest

from accel import config
from accel.commands import Buffer, Compute, Load, Vector
from accel.hardware import Dataflow
from accel.traffic import command_bytes, compute_traffic
from mapper import map_graph
from sim import simulate
from workloads import zoo

GEMMINI = config.load("gemmini")  # 16 x 16, int8 inputs and weights, int32 accumulators


def test_weight_stationary_tile_by_hand():
    c = Compute(id=0, layer="l", m=100, k=40, n=20, dataflow=Dataflow.WS)
    t = compute_traffic(GEMMINI, c)
    # inputs stream once per column fold (ceil(20/16) = 2); weights preload once; each output is
    # updated once per row fold (ceil(40/16) = 3): written 3 times, read back twice.
    assert (t.inputs, t.weights, t.psum_writes, t.psum_reads) == (100 * 40 * 2, 40 * 20, 2000 * 3, 2000 * 2)
    assert command_bytes(GEMMINI, c) == {
        "scratchpad": 100 * 40 * 2 + 40 * 20,
        "accumulator": (6000 + 4000) * 4,
        "array": 100 * 40 * 20 * (1 + 4),  # an input byte and a 4-byte partial sum hop per MAC
    }


def test_output_stationary_accumulates_in_the_pes():
    c = Compute(id=0, layer="l", m=40, k=100, n=20, dataflow=Dataflow.OS, accumulate=True, batch=2)
    t = compute_traffic(GEMMINI, c)
    assert t.psum_writes == 2 * 40 * 20 and t.psum_reads == 2 * 40 * 20  # one update, plus the accumulate
    assert t.weights == 2 * 100 * 20 * 3  # weights stream once per row fold (ceil(40/16) = 3)


def test_transfers_and_vector_ops():
    load = Load(id=0, layer="l", tensor="t", size_bytes=1000, buffer=Buffer.ACCUMULATOR)
    assert command_bytes(GEMMINI, load) == {"dram": 1000, "accumulator": 1000}
    assert command_bytes(GEMMINI, Vector(id=1, layer="l", op="relu", elements=64)) == {"scratchpad": 128}


@pytest.mark.parametrize("model", ["resnet18", "bert_base_layer"])
def test_layer_rows_add_up_to_the_run(model):
    result = simulate(map_graph(zoo.build(model), GEMMINI))
    layers, summary = result.layers(), result.summary()
    for level in ("scratchpad", "accumulator", "array"):
        assert layers[f"{level}_bytes"].sum() == summary[f"{level}_bytes"] > 0
    assert layers["dram_read_bytes"].sum() + layers["dram_write_bytes"].sum() == summary["dram_bytes"]
