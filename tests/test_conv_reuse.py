"""Reuse-aware convolution tiling never moves more DRAM bytes than the lowering without it.

Tiles that keep an operand on chip across tiles (a split reduction's column of weight tiles, a row
of input bands: ``Tile.keep``) are what the search adds to the tiling in which every tile loads its
own operands (``MapOptions(keep_operands=False)``, the lowering before them). Over every zoo CNN and
shared ONNX graph at three scratchpad sizes: the plan checker proves each plan (``map_graph`` does),
the simulator moves exactly the plan's DRAM bytes, and no convolution moves more DRAM bytes than it
does without kept operands, while the networks as a whole move fewer. The search compares a
GEMM's mappings by their priced DRAM bytes, which are exactly what their schedules move.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import mapper
import sim
import workloads
from accel.config import load
from mapper import MapOptions, search
from workloads import zoo

CNNS = ("alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v1", "mobilenet_v2")
ONNX = Path(__file__).parents[2] / "shared" / "data" / "onnx"
GRAPHS = [*CNNS, *(f"onnx:{p.stem}" for p in sorted(ONNX.glob("*.onnx")))]
SIZES = (64 << 10, 256 << 10, 1 << 20)  # gemmini's scratchpad is 256 KiB


def _graph(name: str):  # noqa: ANN202
    return workloads.load(ONNX / f"{name[5:]}.onnx") if name.startswith("onnx:") else zoo.build(name)


def _conv_dram_bytes(plan: mapper.Plan) -> dict[str, int]:
    result = sim.simulate(plan)
    assert result.dram_bytes == plan.dram_bytes
    layers = result.layers()
    convs = layers[layers.op == "conv"]
    return dict(zip(convs.layer, (convs.dram_read_bytes + convs.dram_write_bytes).astype(int), strict=True))


def test_the_shared_onnx_graphs_are_there():
    assert len(GRAPHS) > len(CNNS)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s >> 10}KiB")
@pytest.mark.parametrize("name", GRAPHS)
def test_no_convolution_moves_more_dram_bytes_than_without_kept_operands(name: str, size: int):
    graph, arch = _graph(name), load("gemmini")
    kept = _conv_dram_bytes(mapper.map_graph(graph, arch, MapOptions(scratchpad_bytes=size)))
    plain = _conv_dram_bytes(mapper.map_graph(graph, arch, MapOptions(scratchpad_bytes=size, keep_operands=False)))
    assert kept.keys() == plain.keys() and kept
    more = {layer: (kept[layer], plain[layer]) for layer in kept if kept[layer] > plain[layer]}
    assert not more, f"{name} at {size} B: layers moving more DRAM bytes with kept operands: {more}"
    if name == "resnet50":  # keeping pays on a deep network
        assert sum(kept.values()) < 0.97 * sum(plain.values())


def test_a_gemms_priced_dram_bytes_are_what_its_schedule_moves(monkeypatch):
    # so the search compares a GEMM's mappings by their prices (a convolution's it sums step by step)
    calls: list[tuple] = []
    original = search._search
    monkeypatch.setattr(search, "_search", lambda *args: calls.append(args) or original(*args))
    mapper.map_graph(zoo.build("bert_base_layer"), load("gemmini"))
    mapper.map_graph(zoo.build("resnet18"), load("gemmini-2021"))  # its fc: rows priced by DMA requests
    monkeypatch.setattr(search, "_search", original)
    checked = 0
    for arch, operands, _, half_spad, half_acc, objective, keep in dict.fromkeys(calls):
        for dataflow, ops in operands:
            if ops.conv is not None:
                continue
            plain, kept = search._tile_outer_choices(arch, ops, dataflow, half_spad, half_acc, objective, keep)
            fold = search._fold_plan(arch, ops, dataflow, half_spad, half_acc)
            for choice in [*plain, *kept, *([search._fold_choice(arch, ops, dataflow, fold)] if fold else [])]:
                moved = sum(t.size_bytes for step in choice.steps(ops, arch) for t in (*step.loads, *step.stores))
                assert choice.cost.dram_bytes == moved, (choice.order, choice.tile)
                checked += 1
    assert checked > 100


def test_the_most_output_pixels_of_a_band_are_searching_them():
    """``conv_band_most`` (the search's closed form for the most rows of a convolution's tile in a
    room) gives the largest run of output pixels whose band's most pixels (``conv_band_pixels``,
    never fewer for more) fit, as searching every run does, on strided, dilated, padded, pointwise
    and batched geometries and every limit up to the whole input."""
    import itertools

    from mapper.layout import ConvGeometry, conv_band_most, conv_band_pixels

    for n, (h, w), k, s, d in itertools.product((1, 3), ((7, 9), (1, 5)), (1, 3, 7), (1, 2), (1, 2)):
        pad = k // 2
        oh, ow = ((size + 2 * pad - d * (k - 1) - 1) // s + 1 for size in (h, w))
        if oh < 1 or ow < 1:
            continue
        g = ConvGeometry(n, 2, h, w, 4, oh, ow, k, k, s, s, d, d, pad, pad, 1)
        pixels = [conv_band_pixels(g, tm) for tm in range(1, n * oh * ow + 1)]
        assert pixels == sorted(pixels)
        for limit in range(pixels[-1] + 2):
            assert conv_band_most(g, limit) == sum(p <= limit for p in pixels), (g, limit)
