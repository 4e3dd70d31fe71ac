"""A windowed pool of images runs in bands of output rows: each band's input rows (its windows' rows,
all channels) and output rows are contiguous bytes in channels-last storage, whole images or equal
runs of one image's rows; where not one row's band fits, runs of whole channel planes.

``tests/test_execute.py`` runs such plans bit for bit against onnxruntime (ResNet-18's max pool in
bands and, on the smallest working spaces, in channels)."""

from __future__ import annotations

import dataclasses

import mapper
import sim
from accel.commands import Load, Store
from accel.config import load
from mapper import MapOptions
from workloads.builder import GraphBuilder


def _stem(batch: int = 4):  # noqa: ANN202 - ResNet-50's stem pool on 112 x 112 x 64 (batch 4, as Gemmini's)
    b = GraphBuilder("stem")
    b.pool(b.input("x", (batch, 64, 112, 112)), "max", 3, 2, 1, name="pool")
    return b.build()


def _pool_plan(arch, **options):  # noqa: ANN001, ANN003, ANN202
    plan = mapper.map_graph(_stem(), arch, MapOptions(**options))
    return plan, next(m for m in plan.layers if m.layer == "pool")


def test_a_pool_runs_in_bands_of_whole_rows_and_moves_each_once_but_the_halo():
    arch = load("gemmini-2021")  # a DMA of 64-byte requests: a band's rows are 7 KiB runs
    plan, pool = _pool_plan(arch)
    assert pool.loop_order == "bands" and pool.tiles % 4 == 0  # equal runs of each image's 56 output rows
    transfers = [c for c in plan.commands if isinstance(c, Load | Store) and c.layer == "pool"]
    assert all(c.dram is None for c in transfers)  # contiguous
    stored = sum(c.size_bytes for c in transfers if isinstance(c, Store))
    loaded = sum(c.size_bytes for c in transfers if isinstance(c, Load))
    assert stored == 4 * 56 * 56 * 64
    assert 4 * 112 * 112 * 64 <= loaded < 1.1 * 4 * 112 * 112 * 64  # each band's one-row halo again
    result = sim.simulate(plan)
    assert result.dram_bytes == plan.dram_bytes
    # near the larger of its bounds: DRAM bandwidth, and the vector unit's lanes (9 taps an output)
    bound = max((loaded + stored) / arch.dram.bandwidth_bytes_per_cycle,
                plan.graph.layer("pool").vector_ops / arch.vector.lanes)
    assert bound <= result.total_cycles < 1.15 * bound


def test_where_not_one_rows_band_fits_a_pool_runs_in_channel_planes():
    arch = load("gemmini-2021")
    small = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=40 << 10))
    # half of 40 KiB holds no band of one output row (3 input rows of 7 KiB and the 3.5 KiB row) but a
    # channel plane of one image (12.5 KiB) and its output
    plan = mapper.map_graph(_stem(batch=1), small)
    pool = next(m for m in plan.layers if m.layer == "pool")
    vectors = [c for c in plan.commands if c.layer == "pool" and type(c).__name__ == "Vector"]
    assert pool.loop_order == "" and all(v.extent >= 1 for v in vectors)  # runs of channels, executable
